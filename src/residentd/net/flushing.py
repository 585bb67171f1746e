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
the journal. ``gate_each`` says whether the app must see every flush (True, the default) or
only those it woke and those with held output: with no journal to fsync before every reply,
a flush of replies alone costs no call into the app.

The app may set ``gate`` instead, which also returns a ticket. -1: the app commits next
iteration (``appendfsync always`` lets one more iteration's requests join an fsync), and this
iteration's output waits for that flush. Above 0: no output of the iteration may leave before
the app calls ``release`` with a ticket at least as high (an fsync failed: nothing may reveal
the writes it should have covered, until one succeeds). Each waiting item's output is taken out
of it then, with the ticket, so that what the connection sends later waits for its own ticket
and never leaves ahead of, or together with, what was held first. ``commit`` stays the
synchronous form, for a connection that closes (connection.py) and the app's own retries.
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
    __slots__ = (
        "_due",
        "_held",
        "_loop",
        "_pending",
        "_scheduled",
        "_waiting",
        "commit",
        "gate",
        "gate_each",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []
        self._held: list[Flushable] = []
        self._scheduled = False
        self._due = False  # woken: the app has records to commit
        self.commit: Callable[[], Collection[object]] | None = None
        self.gate: Callable[[], tuple[Collection[object], int]] | None = None
        # (ticket, item, its output taken out at the gate), in ticket order.
        self._waiting: list[tuple[int, Flushable, bytes | None]] = []
        # The app's commit (gate) runs at every flush; when False, only at those it woke and
        # while output is held. The app sets it (Persistence: with ``always`` only).
        self.gate_each = True

    def add(self, item: Flushable) -> None:
        """Flush ``item`` at the end of this loop iteration (the caller adds it only once)."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)
        self._pending.append(item)

    def wake(self) -> None:
        """Run ``commit`` at the end of this loop iteration, even with no output pending."""
        self._due = True
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        # Items added while flushing (a paused session that sends again) wait for the next run.
        self._scheduled = False
        pending, self._pending = self._pending, []
        ticket = 0
        held: Collection[object] = ()
        if self._due or self.gate_each or self._held:
            self._due = False
            if self.gate is not None:
                held, ticket = self.gate()
                if ticket < 0:  # the app commits next iteration: this output waits for it
                    self._pending = pending + self._pending
                    self.wake()
                    return
            elif self.commit is not None:
                held = self.commit()
        if held or self._held:
            if held:
                self._held.extend(item for item in pending if item in held)
                pending = [item for item in pending if item not in held]
            else:
                pending.extend(self._held)
                self._held = []
        if ticket:
            self._wait(pending, ticket)
            return
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

    @property
    def waiting(self) -> int:
        """Items whose output waits for a ticket's release."""
        return len(self._waiting)

    def _wait(self, items: list[Flushable], ticket: int) -> None:
        waiting = self._waiting
        for item in items:
            out = getattr(item, "_out", None)
            if out is None and not hasattr(item, "_write_now"):
                waiting.append((ticket, item, None))  # not a connection: flushed whole
                continue
            item._flush_scheduled = False  # type: ignore[attr-defined]  # later output: later ticket
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                waiting.append((ticket, item, data))

    def release(self, ticket: int | None = None) -> None:
        """Write, now and in order, the output held for tickets up to ``ticket`` (all if None)."""
        waiting = self._waiting
        if not waiting:
            return
        count = len(waiting)
        if ticket is not None:
            count = 0
            for held_for, _, _ in waiting:
                if held_for > ticket:
                    break
                count += 1
        released, self._waiting = waiting[:count], waiting[count:]
        for _, item, data in released:
            try:
                if data is None:
                    item._flush()
                else:
                    item._write_now(data)  # type: ignore[attr-defined]
            except Exception:
                log.exception("flushing output failed")
