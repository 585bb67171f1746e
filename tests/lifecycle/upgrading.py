"""Helpers of the live upgrade tests: a daemon whose generations follow one another, and
clients that count every request and reply while it upgrades."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from residentd.daemon.control import admin_request
from residentd.daemon.pidfile import read_pid

from .helpers import free_port, port_answers, residentd, wait_until


class Generations:
    """``residentd run APP`` whose pid changes with each upgrade: found by its pidfile, its
    output in files (a pipe would stay open as long as any later generation runs)."""

    def __init__(self, tmp: Path, app: str, *args: str, loop: str = "auto") -> None:
        self.tmp = tmp
        self.port = free_port()
        self.pidfile = str(tmp / "daemon.pid")
        self.log_file = tmp / "daemon.log"
        self.command = [
            sys.executable, "-m", "residentd", "run", app,
            "--listen", f"127.0.0.1:{self.port}", "--pidfile", self.pidfile,
            "--log-file", str(self.log_file), "--loop", loop, *args,
        ]  # fmt: skip
        self.first: subprocess.Popen[bytes] | None = None

    def start(self) -> Generations:
        with open(self.tmp / "output", "wb") as output:
            self.first = subprocess.Popen(self.command, stdout=output, stderr=output)
        wait_until(self._ready, what="the daemon listening")
        return self

    def _ready(self) -> bool:
        assert self.first is not None
        if self.first.poll() is not None:
            raise AssertionError(f"daemon exited: {(self.tmp / 'output').read_text()}")
        return port_answers(self.port) and os.path.exists(self.pidfile + ".sock")

    @property
    def pid(self) -> int | None:
        return read_pid(self.pidfile)

    def upgrade(self, *args: str) -> subprocess.CompletedProcess[str]:
        return residentd("upgrade", "--pidfile", self.pidfile, *args, timeout=90)

    def upgrade_ok(self, cli: bool = False) -> int:
        """Upgrade (with ``residentd upgrade``, or POST /upgrade from here, which spares a
        process start), check that it worked and that the old generation is gone; the new
        pid."""
        old = self.pid
        if cli:
            result = self.upgrade()
            assert result.returncode == 0, result.stdout + result.stderr + self.log()
            new = self.pid
            assert f"to pid {new}" in result.stdout
        else:
            status, body = admin_request(
                f"unix:{self.pidfile}.sock", "POST", "/upgrade", timeout=90
            )
            assert status == 200, body.decode() + self.log()
            new = self.pid
            assert json.loads(body)["pid"] == new
        assert new is not None and new != old
        assert old is not None
        wait_until(lambda: not _alive(old), what=f"old generation {old} gone")
        return new

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def stop(self) -> None:
        pid = self.pid
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not _alive(pid), timeout=20, what="the daemon stopped")
        if self.first is not None and self.first.poll() is None:
            self.first.kill()
        if self.first is not None:
            self.first.wait()

    def __enter__(self) -> Generations:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@dataclass
class Counts:
    """What the clients saw; all but ``requests``, ``replies`` and ``connects`` must be 0."""

    requests: int = 0
    replies: int = 0
    connects: int = 0
    refused: int = 0
    closed: int = 0
    wrong: int = 0
    errors: list[str] = field(default_factory=list)


class Load:
    """Clients on a loop in a thread: ``clients`` connections each with ``depth`` requests in
    flight, plus one that opens a new connection every few milliseconds, until ``stop``.

    ``exchange(index, n)`` gives the bytes of request ``n`` of client ``index`` and the reply
    it must get."""

    def __init__(
        self,
        port: int,
        clients: int,
        exchange: Callable[[int, int], tuple[bytes, bytes]],
        depth: int = 2,
    ) -> None:
        self.port = port
        self.clients = clients
        self.exchange = exchange
        self.depth = depth
        self.counts = Counts()
        self._stopping = False
        self._connected = 0
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def start(self) -> Load:
        self._thread.start()
        wait_until(lambda: self._connected >= self.clients, what="every client connected")
        wait_until(lambda: self.counts.replies >= self.clients * 4, what="replies flowing")
        return self

    def stop(self) -> Counts:
        self._stopping = True
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "clients did not finish"
        return self.counts

    async def _main(self) -> None:
        tasks = [self._client(index) for index in range(self.clients)]
        await asyncio.gather(*tasks, self._connector())

    async def _guard(self, what: str, work: Awaitable[None]) -> None:
        try:
            await work
        except (ConnectionRefusedError, ConnectionResetError) as exc:
            self.counts.refused += isinstance(exc, ConnectionRefusedError)
            self.counts.closed += isinstance(exc, ConnectionResetError)
            self.counts.errors.append(f"{what}: {exc!r}")
        except (asyncio.IncompleteReadError, OSError, TimeoutError) as exc:
            self.counts.closed += 1
            self.counts.errors.append(f"{what}: {exc!r}")

    async def _client(self, index: int) -> None:
        await self._guard(f"client {index}", self._run_client(index))

    async def _run_client(self, index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.counts.connects += 1
        self._connected += 1
        n = 0
        try:
            while True:  # a round at least: a connection made late (SYN retried) still counts
                expected = []
                for _ in range(self.depth):
                    n += 1
                    request, reply = self.exchange(index, n)
                    writer.write(request)
                    expected.append(reply)
                    self.counts.requests += 1
                for reply in expected:
                    got = await asyncio.wait_for(reader.readexactly(len(reply)), 20)
                    self.counts.replies += 1
                    if got != reply:
                        self.counts.wrong += 1
                        self.counts.errors.append(f"client {index}: {got!r} != {reply!r}")
                        return
                if self._stopping:
                    break
                await asyncio.sleep(0.01)
        finally:
            writer.close()

    async def _connector(self) -> None:
        index = self.clients
        while not self._stopping:
            index += 1
            await self._guard(f"connector {index}", self._one_shot(index))
            await asyncio.sleep(0.01)

    async def _one_shot(self, index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.counts.connects += 1
        request, reply = self.exchange(index, 1)
        writer.write(request)
        self.counts.requests += 1
        got = await asyncio.wait_for(reader.readexactly(len(reply)), 20)
        self.counts.replies += 1
        if got != reply:
            self.counts.wrong += 1
            self.counts.errors.append(f"connector {index}: {got!r} != {reply!r}")
        writer.close()


def upgrade_under_load(daemon: Generations, load: Load, times: int) -> Counts:
    """Upgrade ``times`` times while ``load`` runs, each generation answering hundreds of
    requests before the next; every upgrade must change the pid. What the clients saw."""
    load.start()
    pids = {daemon.pid}
    try:
        for _ in range(times):
            replies = load.counts.replies
            pids.add(daemon.upgrade_ok())
            wait_until(lambda: load.counts.replies > replies + 400, what="replies")  # noqa: B023
    finally:
        counts = load.stop()
    assert len(pids) == times + 1
    return counts


def assert_clean(counts: Counts) -> None:
    assert counts.errors == [], counts.errors[:10]
    assert (counts.refused, counts.closed, counts.wrong) == (0, 0, 0)
    assert counts.requests == counts.replies > 0


def dataset(client: Any, skip: Callable[[bytes], bool] = lambda key: False) -> dict[bytes, Any]:
    """Every key of a kv (redis-py client, bytes replies): type, value and expiry time (Unix
    ms, or -1: compare with ``same_dataset``, as PTTL is read at a slightly different time)."""
    import time

    keys = [key for key in client.scan_iter(count=1000) if not skip(key)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = pipe.execute()
    readers = {
        b"string": pipe.get,
        b"list": lambda key: pipe.lrange(key, 0, -1),
        b"hash": pipe.hgetall,
        b"set": pipe.smembers,
    }
    for key, kind in zip(keys, kinds, strict=True):
        readers.get(kind, pipe.type)(key)
        pipe.pttl(key)
    now = time.time() * 1000
    replies = pipe.execute()
    found: dict[bytes, Any] = {}
    for index, (key, kind) in enumerate(zip(keys, kinds, strict=True)):
        value, ttl = replies[2 * index], replies[2 * index + 1]
        value = sorted(value) if kind == b"set" else value
        found[key] = (kind, value, -1 if ttl < 0 else now + ttl)
    return found


def same_dataset(before: dict[bytes, Any], after: dict[bytes, Any]) -> None:
    assert sorted(before) == sorted(after)
    for key, (kind, value, expires) in before.items():
        assert after[key][:2] == (kind, value), key
        if expires == -1:
            assert after[key][2] == -1, key
        else:
            assert abs(after[key][2] - expires) < 250, key
