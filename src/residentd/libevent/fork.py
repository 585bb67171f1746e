"""After ``fork()``: leaving behind a loop the child inherited without harming the parent's.

A forked child shares the parent's epoll instance: the inherited loop's descriptor and the
parent's refer to one kernel object, so when the child unregisters a descriptor (closing the
loop does, for its own self-pipe and every watched fd), the parent stops hearing about it too.
libevent's ``event_reinit`` makes the child a new backend; here ``EventBase.reinit`` makes a new
loop and, before closing the old one, gives it a private, empty epoll instance in place of the
shared one, so that closing it only touches the child's copy. Where the loop's epoll descriptor
cannot be found the old loop is kept, open and unused, for the life of the process.
"""

from __future__ import annotations

import asyncio
import os
import select
import selectors
from typing import Final

# Loops left open because closing them could reach into the parent's epoll instance.
_kept: Final[list[asyncio.AbstractEventLoop]] = []


def abandon(loop: asyncio.AbstractEventLoop) -> None:
    """Close ``loop``, inherited across ``fork()``, without unregistering anything from the
    epoll instance it shares with the parent process."""
    fd = _poller_fd(loop)
    if fd is None:
        _kept.append(loop)
        return
    fresh = select.epoll()
    try:
        os.dup2(fresh.fileno(), fd, inheritable=False)
    finally:
        fresh.close()
    loop.close()


def _poller_fd(loop: asyncio.AbstractEventLoop) -> int | None:
    # uvloop: libuv's backend descriptor. asyncio: the selector's, if it is an epoll one. Both
    # are private accessors; without them the loop is kept instead.
    backend = getattr(loop, "_get_backend_id", None)
    if backend is not None:
        fd = backend()
        return fd if isinstance(fd, int) and fd >= 0 else None
    selector = getattr(loop, "_selector", None)
    if hasattr(selectors, "EpollSelector") and isinstance(selector, selectors.EpollSelector):
        return selector.fileno()
    return None
