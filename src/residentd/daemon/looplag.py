"""Loop lag: how late the event loop runs a callback scheduled for a known time.

A probe is scheduled every ``interval`` seconds; the gap between when it should have run and
when it did is the lag every other callback suffered at that moment. The last minute of samples
is kept in a fixed ring, so ``max`` and ``p99`` cover the last minute at a fixed memory cost.
Probes come every 20 ms, 3,000 a minute: enough that the p99 is a percentile and not just the
largest sample (with 100 samples it would be), at a cost of 50 tiny callbacks a second.
A blocked loop (synchronous I/O in a handler, a CPU-heavy job) shows up here first.
"""

from __future__ import annotations

import asyncio
from collections import deque


class LoopLagMonitor:
    __slots__ = ("_due", "_handle", "_loop", "interval", "samples")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, interval: float = 0.02, window: float = 60.0
    ) -> None:
        self._loop = loop
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=max(1, int(window / interval)))
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._due = self._loop.time() + self.interval
        self._handle = self._loop.call_at(self._due, self._probe)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _probe(self) -> None:
        now = self._loop.time()
        self.samples.append(max(now - self._due, 0.0))
        self._due = now + self.interval
        self._handle = self._loop.call_at(self._due, self._probe)

    def summary(self) -> dict[str, float]:
        """Lag over the window in milliseconds: max, p99 and the latest sample."""
        if not self.samples:
            return {"max_ms": 0.0, "p99_ms": 0.0, "last_ms": 0.0}
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {
            "max_ms": round(ordered[-1] * 1000, 3),
            "p99_ms": round(p99 * 1000, 3),
            "last_ms": round(self.samples[-1] * 1000, 3),
        }
