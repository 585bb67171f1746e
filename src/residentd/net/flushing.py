"""Output queued outside a read, written once per loop iteration for all connections at once.

A message sent while a connection handles its own input goes out with that chunk's write. One
sent at any other time (a timer, a broadcast from another connection's handler) waits until the
end of the loop iteration, so that everything sent to a peer in that iteration costs one
``transport.write``. Instead of one ``loop.call_soon`` handle per connection, a server keeps
one ``FlushQueue``: connections with pending output join its list, and a single callback per
iteration flushes them all. A post fanned out to 5,000 members schedules one callback, not 5,000.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("residentd.conn")


class Flushable(Protocol):
    def _flush(self) -> None: ...


class FlushQueue:
    __slots__ = ("_loop", "_pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []

    def add(self, item: Flushable) -> None:
        """Flush ``item`` at the end of this loop iteration (the caller adds it only once)."""
        pending = self._pending
        if not pending:
            self._loop.call_soon(self._run)
        pending.append(item)

    def _run(self) -> None:
        # Items added while flushing (a paused session that sends again) wait for the next run.
        pending, self._pending = self._pending, []
        for item in pending:
            try:
                item._flush()
            except Exception:  # one broken transport must not keep the others' output back
                log.exception("flushing output failed")
