"""The master's view of one worker process (daemon/supervisor.py): its pid, its end of the
control channel, its last status, and the futures the master waits on (ready, exited, the
answer to an upgrade); and of a slot, the place a worker fills, with its run of deaths.

The master learns of a worker's end from a pidfd on its loop and reaps it here; it signals
a worker by pid, which stays the worker's until it is reaped. A worker adopted across the
master's exec has no ``Popen``: it is reaped with ``waitpid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
from typing import Any

from residentd.net.handover import Channel


def exit_text(code: int) -> str:
    """How a worker ended, from its Popen returncode: ``exit code 3`` or ``signal SIGKILL``."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class WorkerProcess:
    """One worker process and the master's end of its control channel."""

    def __init__(
        self,
        slot: int,
        pid: int,
        channel: Channel,
        popen: subprocess.Popen[bytes] | None = None,
        lived: float = 0.0,
    ) -> None:
        self.slot = slot
        #: None for a worker adopted across the master's exec (a child all the same).
        self.popen = popen
        self.pid = pid
        self.channel = channel
        loop = asyncio.get_running_loop()
        self.started = time.monotonic() - lived
        self.spawned_at = loop.time()
        #: When the oldest ping not answered yet was sent (None: every ping was answered).
        self.unanswered_since: float | None = None
        self.ready: asyncio.Future[None] = loop.create_future()
        self.exited: asyncio.Future[int] = loop.create_future()
        self.upgrade_answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        #: Its last status (from its heartbeat answers).
        self.stats: dict[str, Any] = {}
        #: Asked to stop (not to be replaced); a candidate is a slot's next worker, not yet
        #: the slot's (a rolling restart's or an upgrade's).
        self.retiring = False
        self.candidate = False
        self.killed = False
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count()
        self._lock = asyncio.Lock()
        self.reader: asyncio.Task[None] | None = None
        self.pidfd = -1

    async def send(self, header: dict[str, Any], fds: list[int] | None = None) -> None:
        async with self._lock:
            await self.channel.send(header, fds=fds or ())

    async def ask(self, header: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``header`` with a fresh ``id``; the answer that carries it back."""
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            async with asyncio.timeout(timeout):
                await self.send({**header, "id": ident})
                return await future
        finally:
            self._pending.pop(ident, None)

    def answered(self, header: dict[str, Any]) -> None:
        future = self._pending.pop(header.get("id", -1), None)
        if future is not None and not future.done():
            future.set_result(header)

    def kill(self) -> None:
        self.killed = True
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        # Never a reused pid: until the master reaps it, the pid stays this child's.
        if not self.exited.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def reap(self) -> int:
        """Its exit status, once it has ended (negative: the signal that ended it)."""
        if self.popen is not None:
            return self.popen.wait()
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return 0
        return os.waitstatus_to_exitcode(status)

    def row(self, restarts: int) -> dict[str, Any]:
        """Its line in ``residentd status``."""
        stats = self.stats
        state = "retiring" if self.retiring else "ready" if self.ready.done() else "starting"
        if self.candidate:
            state = "starting"
        return {
            "slot": self.slot,
            "pid": self.pid,
            "state": state,
            "uptime": round(time.monotonic() - self.started, 3),
            "connections_open": stats.get("connections_open", 0),
            "connections_total": stats.get("connections_total", 0),
            "messages_in": stats.get("messages_in", 0),
            "messages_out": stats.get("messages_out", 0),
            "rss_bytes": stats.get("rss_bytes", 0),
            "loop_lag": stats.get("loop_lag", {}),
            "restarts": restarts,
        }


class Slot:
    """A place for one worker: its sockets, its worker, and how often it died lately."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.worker: WorkerProcess | None = None
        self.deaths = 0  # in a row, each lived less than STABLE_AFTER
        self.restarts = 0
        self.restart: asyncio.TimerHandle | None = None
