"""Errors of the libevent layer that say what a port from libevent should do instead."""

from __future__ import annotations

import os
import stat

from residentd.errors import ResidentdError


class UnwatchableFileError(ResidentdError, PermissionError):
    """An event waits for ``EV_READ``/``EV_WRITE`` on a descriptor epoll cannot watch.

    epoll refuses regular files and directories (``EPERM``); libevent's select and poll
    backends report them always ready, which the "timer on a tmpfile" trick relied on. It is a
    ``PermissionError`` too, so code that caught the bare one still does.
    """

    def __init__(self, fd: int, what: str, kind: str) -> None:
        super().__init__(
            f"cannot wait for {what} on fd {fd}: it is a {kind}, which epoll cannot watch"
            " (a regular file is always ready). For a timer, use"
            " Timer(base, callback, persist=True).add(seconds), which needs no descriptor;"
            " to follow a growing file, read it on a Timer"
        )
        self.fd = fd


def unwatchable_kind(fd: int) -> str | None:
    """``"regular file"`` or ``"directory"`` if epoll cannot watch ``fd``, else None."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "directory"
    return None
