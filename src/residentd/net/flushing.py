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

What every iteration runs (``add``, ``wake``, and a run the app need not see) is the base class
``FlushCore``: flush_core.py, or the same class in C, which the C connection core adds itself
to without a Python frame. This module adds the app's side: the gate, held output, tickets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from residentd.net import flush_core
from residentd.net.flush_core import Flushable
from residentd.speedups import choose

__all__ = ["FlushQueue", "Flushable"]

# The per-iteration part's C version when it was built (the two are the same class; mypy
# reads the Python one).
if TYPE_CHECKING:
    from residentd.net.flush_core import FlushCore
else:
    FlushCore = choose("residentd.net._connection_core", "FlushCore", flush_core.FlushCore)


class FlushQueue(FlushCore):
    __slots__ = ("_waiting", "commit", "gate")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.commit: Callable[[], Collection[object]] | None = None
        self.gate: Callable[[], tuple[Collection[object], int]] | None = None
        # (ticket, item, its output taken out at the gate), in ticket order.
        self._waiting: list[tuple[int, Flushable, bytes | None]] = []

    def _run_gated(self, pending: list[Flushable]) -> None:
        ticket = 0
        held: Collection[object] = ()
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
        self._flush_all(pending)

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
                self._flush_failed()
