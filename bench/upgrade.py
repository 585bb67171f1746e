"""Live upgrade beside a plain restart: how long it takes, and what the clients lose.

Two loads, each run once with ``residentd upgrade`` and once with a plain restart
(``residentd stop``, then ``residentd run`` again with the same command line), alternated
over ``--rounds``:

* ``chat``: ``--users`` signed-in TCP users, idle (10,000 by default: with the bench client and
  the daemon on one machine, each process holds one descriptor per user, under the 20,000 of
  this machine's limit);
* ``kv``: ``--keys`` keys (1,000,000 by default; 1 in 10 with a TTL), with ``dir`` and
  ``appendonly`` set, so that a restart loses no data either and the two compare fairly.

Beside the idle ones, ``--probes`` probe connections each send a request every 5 ms (chat
``ping``, kv ``INCR`` of its own key) and time its reply; a probe whose connection ends
reconnects (and, for chat, signs in again) and counts the break. Per run: the wall time of the
command (upgrade) or from stop to serving again (restart), the old generation's own handover
time (its log), the longest a probe waited for a reply from the command's start until a second
after, the idle users (or probes) disconnected, and what the state looks like after.

    python bench/upgrade.py --app chat --users 10000 --rounds 2
    python bench/upgrade.py --app kv --keys 1000000 --rounds 2

Loopback only; the daemon runs with ``--max-connections`` and ``--max-connections-per-ip``
raised for the users.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import HOST, PYTHON, free_port, raise_nofile_limit  # noqa: E402
from residentd.daemon.pidfile import read_pid  # noqa: E402


class Daemon:
    def __init__(self, tmp: Path, app: str, args: list[str]) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.pidfile = str(tmp / f"{app}.pid")
        self.log = tmp / f"{app}.log"
        self.command = [
            PYTHON, "-m", "residentd", "run", app, "--listen", f"{HOST}:{self.port}",
            "--pidfile", self.pidfile, "--log-file", str(self.log),
            "--max-connections", "30000", "--max-connections-per-ip", "0", *args,
        ]  # fmt: skip

    def start(self) -> float:
        started = time.monotonic()
        subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not os.path.exists(self.pidfile + ".sock") or read_pid(self.pidfile) is None:
            time.sleep(0.01)
        return time.monotonic() - started

    def control(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, "-m", "residentd", *args, "--pidfile", self.pidfile],
            capture_output=True,
            text=True,
            timeout=600,
        )

    def handover_seconds(self) -> float | None:
        found = re.findall(r"connections handed over, ([\d.]+) s\)", self.log.read_text())
        return float(found[-1]) if found else None

    def handover_steps(self) -> str:
        """The old generation's seconds per step (settle, dump, wait_ready, paused)."""
        found = re.findall(r"connections handed over, [\d.]+ s\) (.*)", self.log.read_text())
        return found[-1] if found else ""


class Probe(asyncio.Protocol):
    """A connection that sends one request every 5 ms and times each reply."""

    def __init__(self, bench: Load, index: int) -> None:
        self.bench = bench
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.buffer = b""
        self.ready = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.bench.app == "chat":
            transport.write(b'{"op":"hello","v":1,"user":"probe%d"}\n' % self.index)  # type: ignore[attr-defined]
        else:
            self.ready = True

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = b"\n" if self.bench.app == "chat" else b"\r\n"
        while end in self.buffer:
            _, _, self.buffer = self.buffer.partition(end)
            if not self.ready:
                self.ready = True
                continue
            broken_at = self.bench.broken_at.pop(self.index, None)
            if broken_at is not None:  # the first reply since the connection broke
                self.bench.latency(time.monotonic() - broken_at)
            elif self.sent_at:
                self.bench.latency(time.monotonic() - self.sent_at)
                self.sent_at = 0.0

    def tick(self) -> None:
        if self.ready and not self.sent_at and self.transport is not None:
            self.sent_at = time.monotonic()
            if self.bench.app == "chat":
                self.transport.write(b'{"op":"ping"}\n')
            else:
                key = b"probe:%d" % self.index
                self.transport.write(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.bench.probe_breaks += 1
        # The pause this probe sees lasts until its first reply on a new connection.
        self.bench.broken_at.setdefault(self.index, self.sent_at or time.monotonic())
        if not self.bench.stopping:
            asyncio.get_running_loop().create_task(self.bench.connect_probe(self.index))


class Idle(asyncio.Protocol):
    def __init__(self, bench: Load) -> None:
        self.bench = bench

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.bench.stopping:
            self.bench.idle_lost += 1


class Load:
    """The clients, on a uvloop in a thread."""

    def __init__(self, app: str, port: int, users: int, probes: int) -> None:
        self.app, self.port, self.users, self.probes = app, port, users, probes
        self.loop = uvloop.new_event_loop()
        self.window = False
        self.max_latency = 0.0
        self.idle_lost = 0
        self.probe_breaks = 0
        self.stopping = False
        self.ready = threading.Event()
        self.idle: list[asyncio.Transport] = []
        self.probe_list: dict[int, Probe] = {}
        self.broken_at: dict[int, float] = {}

    def latency(self, seconds: float) -> None:
        if self.window:
            self.max_latency = max(self.max_latency, seconds)

    async def connect_probe(self, index: int) -> None:
        while not self.stopping:
            try:
                _, probe = await self.loop.create_connection(
                    lambda: Probe(self, index), HOST, self.port
                )
            except OSError:
                await asyncio.sleep(0.005)
                continue
            self.probe_list[index] = probe
            return

    async def main(self) -> None:
        for start in range(0, self.users, 500):
            batch = []
            for _ in range(start, min(start + 500, self.users)):
                batch.append(self.loop.create_connection(lambda: Idle(self), HOST, self.port))
            for transport, _ in await asyncio.gather(*batch):
                self.idle.append(transport)
            if self.app == "chat":
                for index, transport in enumerate(self.idle[start:], start):
                    transport.write(b'{"op":"hello","v":1,"user":"idle%d"}\n' % index)
        for index in range(self.probes):
            await self.connect_probe(index)
        self.ready.set()
        while not self.stopping:
            for probe in self.probe_list.values():
                probe.tick()
            await asyncio.sleep(0.005)
        for transport in self.idle:
            transport.close()

    def run(self) -> None:
        self.loop.run_until_complete(self.main())


def fill_kv(port: int, keys: int) -> None:
    import socket

    with socket.create_connection((HOST, port)) as sock:
        sent = 0
        while sent < keys:
            batch = []
            for index in range(sent, min(sent + 10_000, keys)):
                key, value = b"key:%d" % index, b"value %d" % index
                batch.append(
                    b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                    % (len(key), key, len(value), value)
                )
                if index % 10 == 0:
                    batch.append(
                        b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%s\r\n$5\r\n86400\r\n" % (len(key), key)
                    )
            sock.sendall(b"".join(batch))
            expected = len(batch)
            got = 0
            buffer = b""
            while got < expected:
                buffer += sock.recv(1 << 20)
                got = buffer.count(b"\r\n")
            sent = min(sent + 10_000, keys)


def dbsize(port: int) -> int:
    import socket

    with socket.create_connection((HOST, port)) as sock:
        sock.sendall(b"*1\r\n$6\r\nDBSIZE\r\n")
        return int(sock.recv(100)[1:].split(b"\r\n")[0])


def chat_online(port: int) -> int:
    import socket

    with socket.create_connection((HOST, port)) as sock:
        sock.sendall(b'{"op":"hello","v":1,"user":"counter","id":1}\n')
        line = sock.makefile("rb").readline()
        return int(json.loads(line)["online"]) - 1


def one_run(args: argparse.Namespace, how: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--http-listen", f"{HOST}:0"] if args.app == "chat" else []
        if args.app == "kv":
            extra += ["--dir", str(Path(tmp) / "data"), "--appendonly", "yes"]
        daemon = Daemon(Path(tmp), args.app, [*extra, "--upgrade-timeout", "300"])
        daemon.start()
        if args.app == "kv":
            fill_kv(daemon.port, args.keys)
        load = Load(args.app, daemon.port, args.users if args.app == "chat" else 0, args.probes)
        thread = threading.Thread(target=load.run, daemon=True)
        thread.start()
        load.ready.wait(600)
        time.sleep(1.0)
        before = chat_online(daemon.port) if args.app == "chat" else dbsize(daemon.port)
        old_pid = read_pid(daemon.pidfile)
        load.window = True
        started = time.monotonic()
        if how == "upgrade":
            result = daemon.control("upgrade", "--timeout", "600")
            assert result.returncode == 0, result.stderr
        else:
            assert daemon.control("stop", "--timeout", "600").returncode == 0
            daemon.start()
        seconds = time.monotonic() - started
        time.sleep(1.0)
        load.window = False
        after = chat_online(daemon.port) if args.app == "chat" else dbsize(daemon.port)
        assert read_pid(daemon.pidfile) != old_pid
        outcome = {
            "how": how,
            "seconds": round(seconds, 3),
            "handover": daemon.handover_seconds() if how == "upgrade" else None,
            "steps": daemon.handover_steps() if how == "upgrade" else "",
            "max_wait_ms": round(load.max_latency * 1000, 1),
            "idle_lost": load.idle_lost,
            "probe_breaks": load.probe_breaks,
            "state_before": before,
            "state_after": after,
        }
        load.stopping = True
        thread.join(60)
        daemon.control("stop", "--timeout", "600")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=["chat", "kv"], default="chat")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    raise_nofile_limit()
    runs: dict[str, list[dict[str, Any]]] = {"upgrade": [], "restart": []}
    for _ in range(args.rounds):
        for how in ("upgrade", "restart"):
            outcome = one_run(args, how)
            print(json.dumps(outcome), flush=True)
            runs[how].append(outcome)
    print(f"\n{args.app}: medians of {args.rounds} rounds")
    for how, outcomes in runs.items():
        median = {
            key: statistics.median(o[key] for o in outcomes)
            for key in ("seconds", "max_wait_ms", "idle_lost", "probe_breaks", "state_after")
        }
        print(how, json.dumps(median))


if __name__ == "__main__":
    main()
