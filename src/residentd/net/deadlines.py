"""Coarse deadlines for many connections on one loop timer.

Idle and first-message timeouts must stay cheap with 20,000 open connections, so no connection
owns a loop timer and nothing is rescheduled per message. Connections sit in buckets keyed by
their deadline rounded up to the wheel's resolution. One periodic tick takes the buckets that
came due and asks each connection for its current deadline (it only stores the time of its last
input): a connection that is past it closes, one that saw input since is put back in a later
bucket. The cost is one check per connection per timeout period, whatever the message rate.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol


class HasDeadline(Protocol):
    _deadline_slot: int

    def check_deadline(self, now: float) -> float | None:
        """Close if past due and return None, else return the next deadline (None: no more)."""
        ...


class DeadlineWheel:
    __slots__ = ("_buckets", "_loop", "_ticker", "resolution")

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = 0.25) -> None:
        self._loop = loop
        self.resolution = resolution
        self._buckets: dict[int, set[HasDeadline]] = {}
        self._ticker: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return sum(map(len, self._buckets.values()))

    def schedule(self, item: HasDeadline, deadline: float) -> None:
        self.discard(item)
        slot = math.ceil(deadline / self.resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
        bucket.add(item)
        item._deadline_slot = slot
        if self._ticker is None:
            self._ticker = self._loop.call_later(self.resolution, self._tick)

    def discard(self, item: HasDeadline) -> None:
        slot = item._deadline_slot
        if slot:
            item._deadline_slot = 0
            bucket = self._buckets.get(slot)
            if bucket is not None:
                bucket.discard(item)
                if not bucket:
                    del self._buckets[slot]

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for bucket in self._buckets.values():
            for item in bucket:
                item._deadline_slot = 0
        self._buckets.clear()

    def _tick(self) -> None:
        self._ticker = None
        now = self._loop.time()
        due_slot = math.floor(now / self.resolution)
        for slot in [slot for slot in self._buckets if slot <= due_slot]:
            for item in self._buckets.pop(slot):
                item._deadline_slot = 0
                deadline = item.check_deadline(now)
                if deadline is not None:
                    self.schedule(item, deadline)
        if self._buckets and self._ticker is None:
            self._ticker = self._loop.call_later(self.resolution, self._tick)
