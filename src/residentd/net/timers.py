"""Timers: one-shot and fixed-rate periodic callbacks, owned and released with their owner.

A ``Timer`` wraps one loop handle at a time. A periodic timer computes each next run from its
start time (``start + n * interval``), not from when the last run happened, so it does not drift;
if the loop fell behind by whole intervals, the missed runs are skipped, not bunched up.

A ``TimerGroup`` is the set of live timers of one owner (an app or a connection). Cancelling the
group cancels every timer in it; closing it does that and also cancels any timer started in it
later, which is how a closed connection releases its timers, even those its session starts in
``on_close`` or after. A one-shot timer leaves its group when it fires.

Callbacks run on the loop; an exception in one is logged and, for a periodic timer, does not
stop later runs.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

log = logging.getLogger("residentd.timers")


class Timer:
    __slots__ = (
        "_args",
        "_callback",
        "_due",
        "_group",
        "_handle",
        "_loop",
        "_runs",
        "_slot",
        "interval",
        "start",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        callback: Callable[..., Any],
        args: tuple[Any, ...] = (),
        *,
        interval: float | None = None,
        group: TimerGroup | None = None,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("a periodic timer needs an interval above 0")
        self._loop = loop
        self._callback = callback
        self._args = args
        self._group = group
        self.interval = interval
        self.start = loop.time() + max(delay, 0.0)
        self._runs = 0
        self._slot = 0  # index of the next run on the grid start + n * interval
        # The deadline is kept here: uvloop hands back a plain Handle, without when(), for a
        # call_at that is already due.
        self._due = self.start
        self._handle: asyncio.Handle | None = loop.call_at(self.start, self._fire)

    @property
    def active(self) -> bool:
        return self._handle is not None

    @property
    def runs(self) -> int:
        """How many times the callback has run."""
        return self._runs

    @property
    def when(self) -> float | None:
        """Loop time of the next run, or None once the timer is done or cancelled."""
        return self._due if self._handle is not None else None

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._group is not None:
            self._group._timers.discard(self)
            self._group = None

    def _fire(self) -> None:
        self._runs += 1
        if self.interval is None:
            self._handle = None
            if self._group is not None:
                self._group._timers.discard(self)
                self._group = None
        else:
            now = self._loop.time()
            self._slot += 1
            due = self.start + self._slot * self.interval
            if due <= now:
                # Skip the runs the loop missed instead of running them back to back.
                missed = math.floor((now - due) / self.interval) + 1
                self._slot += missed
                due += missed * self.interval
            self._due = due
            self._handle = self._loop.call_at(due, self._fire)
        try:
            self._callback(*self._args)
        except Exception:
            log.exception("timer callback %r raised", self._callback)


class TimerGroup:
    """The timers of one owner, all cancelled together by ``cancel_all``."""

    __slots__ = ("_closed", "_loop", "_timers")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timers: set[Timer] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._timers)

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, ``delay`` seconds from now."""
        return self._add(Timer(self._loop, delay, callback, args, group=self))

    def call_every(
        self, interval: float, callback: Callable[..., Any], *args: Any, delay: float | None = None
    ) -> Timer:
        """Run ``callback(*args)`` every ``interval`` seconds, first after ``delay`` (default:
        one interval), at a fixed rate."""
        first = interval if delay is None else delay
        return self._add(Timer(self._loop, first, callback, args, interval=interval, group=self))

    def _add(self, timer: Timer) -> Timer:
        if self._closed:
            timer.cancel()  # the owner is gone: the timer never runs
        else:
            self._timers.add(timer)
        return timer

    def cancel_all(self) -> None:
        for timer in list(self._timers):
            timer.cancel()

    def close(self) -> None:
        """Cancel every timer, and every timer started in this group from now on."""
        self._closed = True
        self.cancel_all()
