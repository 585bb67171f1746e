"""The part of the flush queue that every loop iteration runs: ``add``, ``wake``, a plain run.

``FlushQueue`` (flushing.py) is built on ``FlushCore``: a connection with output to send outside
its own read joins the queue (``add``), the first addition of an iteration schedules one
callback (``_run``), and that callback flushes every item. When the app must see the flush
first (it woke the queue, it wants every flush, or output is held for it), ``_run`` hands the
items to the subclass's ``_run_gated``, which owns the app's gate, held output and tickets.

This module is the plain Python version; when a compiler was at hand at install,
``_connection_core.c`` provides the same class in C (``FlushCore``), which the C
``ConnectionCore`` calls without a Python frame (``RESIDENTD_PURE_PYTHON=1`` forces this one).
The two must behave the same, down to the order of the calls they make.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("residentd.conn")


class Flushable(Protocol):
    def _flush(self) -> None: ...


class FlushCore:
    __slots__ = ("_due", "_held", "_loop", "_pending", "_scheduled", "gate_each")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[Flushable] = []
        self._held: list[Flushable] = []
        self._scheduled = False
        self._due = False  # woken: the app has records to commit
        # The app's gate runs at every flush; when False, only at those it woke and while
        # output is held. The app sets it (Persistence: with ``always`` only).
        self.gate_each = True

    def add(self, item: Flushable) -> None:
        """Flush ``item`` at the end of this loop iteration (the caller adds it only once)."""
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)
        self._pending.append(item)

    def wake(self) -> None:
        """Run the app's gate at the end of this loop iteration, even with no output pending."""
        self._due = True
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        # Items added while flushing (a paused session that sends again) wait for the next run.
        self._scheduled = False
        pending, self._pending = self._pending, []
        if self._due or self.gate_each or self._held:
            self._run_gated(pending)
        else:
            self._flush_all(pending)

    def _run_gated(self, pending: list[Flushable]) -> None:
        """The run when the app must see it first (the subclass's)."""
        self._flush_all(pending)

    def _flush_all(self, items: list[Flushable]) -> None:
        for item in items:
            try:
                item._flush()
            except Exception:  # one broken transport must not keep the others' output back
                self._flush_failed()

    def _flush_failed(self) -> None:
        """Called while the exception an item's flush raised is being handled."""
        log.exception("flushing output failed")
