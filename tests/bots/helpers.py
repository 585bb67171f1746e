"""Test servers with known behaviour, scenarios for them, and ``residentd`` as a subprocess."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

from residentd.bots.load import Plan, Think, run_generator
from residentd.bots.scenario import Context, Scenario
from residentd.bots.stats import Interval, Recorder, RunStats
from support import residentd_command, run_residentd, spawn, stop, wait_for_file, wait_for_port


class LineServer:
    """An asyncio line server: each line comes back after ``delay`` seconds, and not before
    ``stall_until`` (a loop time) when a stall is set. It remembers its peers' addresses."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.stall_until = 0.0
        self.replies = True
        self.peers: set[str] = set()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def start(self) -> LineServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self.peers.add(writer.get_extra_info("peername")[0])
        try:
            while line := await reader.readline():
                if not self.replies:
                    continue
                due = max(loop.time() + self.delay, self.stall_until)
                loop.call_at(due, writer.write, line)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


async def run_load(
    scenario: type[Scenario], port: int, plan: Plan, **context: Any
) -> tuple[RunStats, list[Interval]]:
    """One generator in this process against ``127.0.0.1:port``; returns the merged stats."""
    intervals: list[Interval] = []
    ctx = Context([("127.0.0.1", port)], scenario.transport, Recorder(), **context)
    await run_generator(scenario, ctx, plan, intervals.append)
    stats = RunStats(1)
    for interval in intervals:
        stats.add(interval)
    stats.finish()
    return stats, intervals


def closed(users: int, duration: float, think: str = "0", **kw: Any) -> Plan:
    return Plan("closed", users, 1000.0, Think.parse(think), duration, **kw)


def bots(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    """``residentd bots ARGS`` as a subprocess."""
    return run_residentd("bots", "--no-live", *args, timeout=timeout)


class Daemon:
    """``residentd run APP ...`` as a child process with a pidfile; stopped by its pid."""

    def __init__(self, tmp: Path, app: str, *args: str) -> None:
        self.pidfile = str(tmp / f"{app}.pid")
        self.log = open(tmp / f"{app}.log", "w")  # noqa: SIM115
        self.process = spawn(
            residentd_command(
                "run", app, "--pidfile", self.pidfile, "--log-level", "WARNING", *args
            ),
            self.log,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def admin(self) -> str:
        return f"unix:{self.pidfile}.sock"

    def wait_port(self, port: int, timeout: float = 20.0) -> None:
        """Until ``port`` answers and the admin socket is there."""
        wait_for_port(port, self.process, timeout)
        wait_for_file(f"{self.pidfile}.sock", timeout)

    def stop(self) -> None:
        stop(self.process)
        self.log.close()


def sample_latencies_ns(seed: int, n: int) -> list[int]:
    """``n`` latencies from 20 us to 2 s, long-tailed, the same for the same seed."""
    import random

    rng = random.Random(seed)
    return [int(min(2e9, 20_000 + rng.paretovariate(1.2) * 50_000)) for _ in range(n)]


def record_in_process(args: tuple[int, int, int]) -> Interval:
    """What one generator process ships: its samples recorded, as one interval."""
    worker, seed, n = args
    recorder = Recorder(worker)
    for latency in sample_latencies_ns(seed, n):
        recorder.record("step", latency)
    recorder.error("step", "timeout")
    recorder.users = 10
    return recorder.interval(1)
