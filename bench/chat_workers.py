"""Chat on workers and a broker: ``--workers 2`` against ``--workers 1``, both on one Redis.

Three chat set-ups, each started afresh for every round, in an order that rotates from round
to round (medians over the rounds):

* ``local``: one process, no broker (the world in its memory), for reference;
* ``broker w1``: ``--workers 1 --broker redis://...``, one process that is one broker node;
* ``broker w2``: ``--workers 2 --broker redis://...``, a master and two workers on
  SO_REUSEPORT sockets, each worker a broker node.

The broker is a private redis-server (no persistence, flushed before each start). Every
process is unpinned: two workers need both cores, so chat, redis-server and the load
generator share the machine's two cores, and each one's CPU is reported.

The load generator is chat_load.c, compiled at the start (a C compiler is needed): one epoll
loop for every connection, reading up to 256 KiB per readable socket and counting newlines
with memchr, so that it costs a fraction of what a chat process costs per delivery; its CPU
time per delivery and share of the two cores are printed. Two workloads per start:

1. *Fan-out*: ``--members`` guests (spread over source addresses 127.0.0.2, 127.0.0.3, ...,
   ``--per-source`` each, so the kernel spreads them over the workers) join one room;
   ``--posters`` of them post, keeping at most *window* posts not yet delivered to every
   member, for each of ``--windows``. Deliveries (lines counted at the members) per second,
   and lines per read at the load generator: about how many messages the daemon put in one
   write to a member (its coalescing: posts fanned out in the same loop iteration share a
   write, so the more lines per read, the less a delivery costs both sides).
2. *Requests*: ``--connections`` guests each send ``--depth`` requests in one write, wait for
   the replies and send again: ``state.incr`` (a script in Redis with a broker), and ``ping``
   (answered by the worker alone). Replies per second at the client.

For each window: the rate; the CPU of the chat processes (master and workers, psutil),
redis-server and the load generator, in cores and in microseconds per delivery or reply; and
the whole machine's busy cores ("busy" near 2.0: the machine, not one process, was the limit);
and each worker's open connections, read from the master mid-window (how the kernel spread
them).

    python bench/chat_workers.py                 # 3 rounds, about 2 minutes
    python bench/chat_workers.py --rounds 5 --json chat_workers.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from chat_broker import Redis
from chat_fanout import ROOM
from harness import (
    HOST,
    busy_cpu_seconds,
    free_port,
    raise_nofile_limit,
    tree_cpu_seconds,
    wait_workers_ready,
)

MODES = ("local", "broker w1", "broker w2")
REQUESTS = {
    "state.incr": '{"op":"state.incr","key":"n"}',
    "ping": '{"op":"ping"}',
}


@dataclass
class Window:
    round: int
    mode: str
    workload: str
    per_s: float  # deliveries or replies a second, counted at the client
    chat_cpu: float  # CPU seconds of the chat processes in the window
    redis_cpu: float
    client_cpu: float
    busy_cpu: float  # the whole machine's
    elapsed: float
    per_read: float  # lines per read at the load generator: how much the daemon coalesced
    spread: list[int]  # connections open on each worker during the window
    chat_writes: int  # write system calls of the chat processes in the window

    def cpus(self) -> list[tuple[str, float]]:
        return [("chat", self.chat_cpu), ("redis", self.redis_cpu),
                ("load gen", self.client_cpu), ("busy", self.busy_cpu)]  # fmt: skip

    def cores(self, cpu: float) -> float:
        return cpu / self.elapsed

    def us_per(self, cpu: float) -> float:
        return cpu / (self.per_s * self.elapsed) * 1e6 if self.per_s else 0.0


def build_load_generator(directory: str) -> str:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        sys.exit("bench/chat_workers.py needs a C compiler for chat_load.c")
    binary = os.path.join(directory, "chat_load")
    source = Path(__file__).resolve().parent / "chat_load.c"
    subprocess.run([compiler, "-O2", "-o", binary, str(source)], check=True)
    return binary


class Chat:
    """``residentd run chat`` with ``workers`` workers, ready when every worker signs users in."""

    def __init__(self, workers: int, broker: str | None, folder: str) -> None:
        self.workers = workers
        self.port = free_port()
        self.pidfile = os.path.join(folder, f"chat-{self.port}.pid")
        command = [
            sys.executable, "-m", "residentd", "run", "chat", "--workers", str(workers),
            "--listen", f"{HOST}:{self.port}", "--http-listen", f"{HOST}:{free_port()}",
            "--pidfile", self.pidfile, "--log-level", "WARNING", "--ping-interval", "0",
            "--max-connections", "0", "--max-connections-per-ip", "0", "--rate-limit", "0",
            "--presence-push-limit", "0", "--rooms", ROOM, "--max-rooms-per-user", "1",
        ]  # fmt: skip
        if broker:
            command += ["--broker", broker]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        wait_workers_ready(self.process, self.pidfile, self.workers)
        # A brokered node listens before its link is up: wait until hellos are answered, on
        # enough connections that every worker has had some.
        for index in range(8 * self.workers):
            with socket.create_connection((HOST, self.port), 10) as probe:
                probe.settimeout(max(deadline - time.monotonic(), 1))
                probe.sendall(b'{"op":"hello","v":1,"user":"probe%d"}\n' % index)
                if b'"op":"hello"' not in probe.recv(4096):
                    raise RuntimeError("chat did not sign a probe in")

    def spread(self) -> list[int]:
        """Connections open on each worker (one process: on it)."""
        from residentd.daemon.control import admin_json

        status = admin_json(f"unix:{self.pidfile}.sock", "GET", "/status")
        rows = status.get("workers")
        if rows is None:
            return [int(status["connections_open"])]
        return [int(row["connections_open"]) for row in rows]

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def write_calls(self) -> int:
        """The write system calls the chat processes made so far (/proc/PID/io's syscw)."""
        main = psutil.Process(self.process.pid)
        total = 0
        for process in [main, *main.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.io_counters().write_count
        return total

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure(
    argv: list[str],
    chat: Chat,
    redis: Redis,
    number: int,
    mode: str,
    workload: str,
    duration: float,
) -> Window:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE)
    assert process.stdout is not None
    started = process.stdout.readline()
    before = chat.cpu_seconds(), redis.cpu_seconds(), busy_cpu_seconds()
    writes_before = chat.write_calls()
    time.sleep(min(1.2, duration / 2))  # the master's view of its workers is a second old
    spread = chat.spread()
    ended = process.stdout.readline()
    after = chat.cpu_seconds(), redis.cpu_seconds(), busy_cpu_seconds()
    writes = chat.write_calls() - writes_before
    rest = process.stdout.read()
    if process.wait() != 0 or started != b"start\n" or not ended.startswith(b"end "):
        raise RuntimeError(f"the load generator failed ({workload}, {mode})")
    if int(rest.split()[1]) != 0:
        raise RuntimeError(f"the load generator saw errors ({workload}, {mode}): {rest!r}")
    lines, elapsed, client_cpu, reads = (float(field) for field in ended.split()[1:])
    chat_cpu, redis_cpu, busy = (b - a for a, b in zip(before, after, strict=True))
    return Window(number, mode, workload, lines / elapsed, chat_cpu, redis_cpu, client_cpu,
                  busy, elapsed, lines / reads if reads else 0.0, spread, writes)  # fmt: skip


def run_round(
    binary: str, redis: Redis, number: int, mode: str, args: argparse.Namespace, folder: str
) -> list[Window]:
    redis.flush()
    workers = 2 if mode == "broker w2" else 1
    chat = Chat(workers, redis.url if mode != "local" else None, folder)
    timing = [str(args.per_source), str(args.warmup), str(args.duration)]
    windows = []
    try:
        for size in args.windows:
            fanout = [binary, "fanout", str(chat.port), str(args.members), str(args.posters),
                      str(size), *timing, str(args.read_interval)]  # fmt: skip
            windows.append(
                measure(fanout, chat, redis, number, mode, f"fan-out {size}", args.duration)
            )
        for name in args.requests:
            requests = [binary, "requests", str(chat.port), str(args.connections),
                        str(args.depth), *timing, REQUESTS[name]]  # fmt: skip
            windows.append(measure(requests, chat, redis, number, mode, name, args.duration))
    finally:
        chat.stop()
    for window in windows:
        print(f"round {number}  {mode:<9}  {window.workload:<14} {window.per_s:>11,.0f}/s  "
              + "  ".join(f"{name} {window.cores(cpu):.2f}" for name, cpu in window.cpus())
              + f" cores; {window.per_read:.1f} lines per read;"
              f" {window.per_s * window.elapsed / max(window.chat_writes, 1):.1f} per chat write;"
              f" connections {'+'.join(map(str, window.spread))}", flush=True)  # fmt: skip
    return windows


COLUMNS = "chat", "redis", "load gen", "busy"


def report(windows: list[Window], args: argparse.Namespace) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{os.cpu_count()} cores, load average {load}; fan-out: {args.members:,} members,"
        f" {args.posters} posters, windows {args.windows}; requests: {args.connections}"
        f" connections, depth {args.depth}; medians of {args.rounds} rounds"
    )
    print("CPU in cores over the window, and in us per delivery or reply (busy: the machine)")
    print(
        f"{'workload':<14} | {'mode':<9} | {'per s':>9} | "
        + " | ".join(f"{name} cores" for name in COLUMNS)
        + " | "
        + " | ".join(f"{name} us" for name in COLUMNS[:3])
        + " | lines per read | lines per chat write"
    )
    for workload in [*(f"fan-out {size}" for size in args.windows), *args.requests]:
        rates = {}
        for mode in MODES:
            chosen = [w for w in windows if w.mode == mode and w.workload == workload]
            if not chosen:
                continue
            rates[mode] = statistics.median(w.per_s for w in chosen)
            cells = [
                f"{statistics.median(w.cores(w.cpus()[i][1]) for w in chosen):>{len(name) + 6}.2f}"
                for i, name in enumerate(COLUMNS)
            ]
            cells += [
                f"{statistics.median(w.us_per(w.cpus()[i][1]) for w in chosen):>{len(name) + 3}.2f}"
                for i, name in enumerate(COLUMNS[:3])
            ]
            cells.append(f"{statistics.median(w.per_read for w in chosen):>13.1f}")
            per_write = [w.per_s * w.elapsed / w.chat_writes for w in chosen if w.chat_writes]
            cells.append(f"{statistics.median(per_write) if per_write else 0:>20.1f}")
            print(f"{workload:<14} | {mode:<9} | {rates[mode]:>9,.0f} | " + " | ".join(cells))
        if "broker w1" in rates and "broker w2" in rates:
            ratio = rates["broker w2"] / rates["broker w1"]
            print(f"{workload}: workers=2 / workers=1 = {ratio:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="(3)")
    parser.add_argument("--modes", default=",".join(MODES), help="(local,broker w1,broker w2)")
    parser.add_argument("--members", type=int, default=2000, help="fan-out room members (2000)")
    parser.add_argument("--posters", type=int, default=8, help="members that post (8)")
    parser.add_argument(
        "--windows", default="32,128", help="fan-out: posts not yet everywhere, a run each (32,128)"
    )
    parser.add_argument(
        "--per-source", type=int, default=250, help="connections per source address (250)"
    )
    parser.add_argument(
        "--read-interval", type=int, default=0,
        help="fan-out: microseconds at least between the load generator's epoll waits (0)",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=200, help="requests: connections (200)")
    parser.add_argument("--depth", type=int, default=16, help="requests per write (16)")
    parser.add_argument("--requests", default="state.incr,ping", help="(state.incr,ping)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds (0.5)")
    parser.add_argument("--duration", type=float, default=2.0, help="measured seconds (2)")
    parser.add_argument("--json", metavar="FILE", help="write every window to FILE")
    args = parser.parse_args()
    modes = [mode for mode in args.modes.split(",") if mode]
    args.windows = [int(size) for size in args.windows.split(",") if size]
    args.requests = [name for name in args.requests.split(",") if name]
    for name in args.requests:
        if name not in REQUESTS:
            parser.error(f"--requests: one of {', '.join(REQUESTS)}")
    if unknown := set(modes) - set(MODES):
        parser.error(f"--modes: unknown {', '.join(sorted(unknown))}")
    limit = raise_nofile_limit()
    if 2 * max(args.members, args.connections) + 200 > limit:
        sys.exit(f"{args.members} members need more than the {limit} open files allowed")
    print(
        f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}; modes {modes};"
        f" {args.rounds} rounds",
        flush=True,
    )
    windows: list[Window] = []
    redis = Redis()
    try:
        with tempfile.TemporaryDirectory() as folder:
            binary = build_load_generator(folder)
            for number in range(1, args.rounds + 1):
                shift = (number - 1) % len(modes)
                for mode in modes[shift:] + modes[:shift]:
                    windows += run_round(binary, redis, number, mode, args, folder)
    finally:
        redis.stop()
    report(windows, args)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "windows": [asdict(w) for w in windows]}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
