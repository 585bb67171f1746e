"""The dashboard's numbers: one sample of the chat's world each second, the last minutes kept.

A sample counts users online, connections by transport and rooms, turns the hub's counters
into rates (requests, posts and deliveries per second), and reads the process's RSS with
psutil. *Memory per online user* is the RSS growth since the sampler started divided by the
users online: what holding one more user costs, not the interpreter's fixed size. Loop lag is
the worst lag of the last second, measured by a ``LoopLagMonitor`` of our own that probes
every 50 ms.

Samples are msgspec structs in a ring; ``/stats`` sends the ring as JSON, so a dashboard that
opens late still draws the last two minutes at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import msgspec
import psutil

from residentd.apps.chat.hub import Hub
from residentd.apps.chat.wire import LINES, TEXT_FRAMES
from residentd.daemon.looplag import LoopLagMonitor

WINDOW = 120  # samples kept (seconds)


class Sample(msgspec.Struct):
    t: float
    online: int
    tcp: int
    ws: int
    rooms: int
    requests_per_s: float
    posts_per_s: float
    deliveries_per_s: float
    rss: int
    bytes_per_user: float
    lag_ms: float


class Sampler:
    __slots__ = ("_baseline", "_last", "_process", "hub", "lag", "samples")

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        self.hub = hub
        self.lag = LoopLagMonitor(loop, interval=0.05, window=1.0)
        self.samples: deque[Sample] = deque(maxlen=WINDOW)
        self._process = psutil.Process()
        self._baseline = self._process.memory_info().rss
        stats = hub.stats
        self._last = (time.monotonic(), stats.requests, stats.posts, stats.deliveries)

    def start(self) -> None:
        self.lag.start()

    def stop(self) -> None:
        self.lag.stop()

    def sample(self) -> Sample:
        hub = self.hub
        stats = hub.stats
        now = time.monotonic()
        then, requests, posts, deliveries = self._last
        elapsed = max(now - then, 1e-3)
        self._last = (now, stats.requests, stats.posts, stats.deliveries)
        rss = self._process.memory_info().rss
        online = len(hub.presence.online)
        lag = max(self.lag.samples, default=0.0)
        sample = Sample(
            t=round(time.time(), 3),
            online=online,
            tcp=hub.connections[LINES],
            ws=hub.connections[TEXT_FRAMES],
            rooms=len(hub.rooms),
            requests_per_s=round((stats.requests - requests) / elapsed, 1),
            posts_per_s=round((stats.posts - posts) / elapsed, 1),
            deliveries_per_s=round((stats.deliveries - deliveries) / elapsed, 1),
            rss=rss,
            bytes_per_user=round(max(rss - self._baseline, 0) / online, 1) if online else 0.0,
            lag_ms=round(lag * 1000, 3),
        )
        self.samples.append(sample)
        return sample

    def to_json(self) -> bytes:
        return msgspec.json.encode({"interval": 1.0, "samples": list(self.samples)})
