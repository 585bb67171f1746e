"""Output queued outside a read, written once per loop iteration for all connections at once.

A message sent while a connection handles its own input goes out with that chunk's write. One
sent at any other time (a timer, a broadcast from another connection's handler) waits until the
end of the loop iteration, so that everything sent to a peer in that iteration costs one
``transport.write``. Instead of one ``loop.call_soon`` handle per connection, a server keeps
one ``FlushQueue``: connections with pending output join its list, and a single callback per
iteration flushes them all. A post fanned out to 5,000 members schedules one callback, not 5,000.

A durable app sets ``commit``: it runs first in each flush, before any output is written, and
writes (with ``appendfsync always``, fsyncs) the journal records of the iteration, so that a
reply never leaves before the write it acknowledges is on disk (Redis's beforeSleep). It returns
the items whose output must wait because the disk refused the records; they are held until
``release_held``. The app calls ``wake`` when it has records to commit: the same single callback
runs the commit, so a durable iteration costs one callback, not one for the flush and one for
the journal.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Protocol

log = logging.getLogger("residentd.conn")


class Flushable(Protocol):
    def _flush(self) -> None: ...


class FlushQueue:
    __slots__ = ("_held", "_loop", "_pending", "_scheduled", "commit")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []
        self._held: list[Flushable] = []
        self._scheduled = False
        self.commit: Callable[[], Collection[object]] | None = None

    def add(self, item: Flushable) -> None:
        """Flush ``item`` at the end of this loop iteration (the caller adds it only once)."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)
        self._pending.append(item)

    def wake(self) -> None:
        """Run ``commit`` at the end of this loop iteration, even with no output pending."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        # Items added while flushing (a paused session that sends again) wait for the next run.
        self._scheduled = False
        pending, self._pending = self._pending, []
        if self.commit is not None:
            held = self.commit()
            if held:
                self._held.extend(item for item in pending if item in held)
                pending = [item for item in pending if item not in held]
            elif self._held:
                pending.extend(self._held)
                self._held = []
        for item in pending:
            try:
                item._flush()
            except Exception:  # one broken transport must not keep the others' output back
                log.exception("flushing output failed")

    def release_held(self) -> None:
        """Flush the held items at the end of this iteration (their records are on disk)."""
        held, self._held = self._held, []
        for item in held:
            self.add(item)
