"""Echo with ``workers = 1`` against ``workers = 2``: what a second worker buys on this machine.

Each round starts ``residentd run echo`` once with one worker (no master: the default) and
once with two (a master and two workers, one SO_REUSEPORT socket each), in alternating order,
and drives each with echo_load.c (bench/echo.py's C load generator: one epoll loop for every
connection) at depth 1 (one line per round trip: the request rate) and depth 16 (pipelined).
No process is pinned: the workers need both cores, so the load generator shares them, and on a
2-core machine it is a limit of its own (its CPU share is printed). The figures are medians
over the rounds, with the ratio two workers / one; "per server CPU-s" is lines per CPU second
of every server process (master and workers), which says whether a second worker costs more
per line than it brings.

    python bench/workers.py                      # 3 rounds, about 90 seconds
    python bench/workers.py --rounds 5 --duration 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from echo import build_load_generator
from harness import (
    HOST,
    busy_cpu_seconds,
    free_port,
    raise_nofile_limit,
    tree_cpu_seconds,
    wait_workers_ready,
)

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Window:
    workers: int
    depth: int
    lines_per_s: float
    server_cpu: float  # CPU seconds of the server processes in the window
    client_cpu: float
    busy_cpu: float  # the whole machine's
    elapsed: float

    @property
    def per_server_cpu(self) -> float:
        return self.lines_per_s * self.elapsed / self.server_cpu if self.server_cpu else 0.0


class Echo:
    """``residentd run echo`` with ``workers`` workers, ready when every worker is."""

    def __init__(self, workers: int, folder: str) -> None:
        self.workers = workers
        self.port = free_port()
        self.pidfile = os.path.join(folder, f"echo-{workers}-{self.port}.pid")
        command = [
            sys.executable, "-m", "residentd", "run", "echo", "--listen", f"{HOST}:{self.port}",
            "--workers", str(workers), "--pidfile", self.pidfile, "--log-level", "WARNING",
            "--max-connections", "20000",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_workers_ready(self.process, self.pidfile, workers)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def measure(binary: str, server: Echo, args: argparse.Namespace, depth: int) -> Window:
    process = subprocess.Popen(
        [binary, str(server.port), str(args.connections), str(depth), str(args.size),
         str(args.warmup), str(args.duration)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    started = process.stdout.readline()
    server_cpu, busy = server.cpu_seconds(), busy_cpu_seconds()
    ended = process.stdout.readline()
    server_cpu = server.cpu_seconds() - server_cpu
    busy = busy_cpu_seconds() - busy
    rest = process.stdout.read()
    if process.wait() != 0 or started != b"start\n" or not ended.startswith(b"end "):
        raise RuntimeError("the load generator failed")
    if int(rest.split()[1]) != 0:
        raise RuntimeError(f"the load generator saw errors: {rest!r}")
    lines, elapsed, client_cpu = (float(field) for field in ended.split()[1:])
    return Window(server.workers, depth, lines / elapsed, server_cpu, client_cpu, busy, elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--size", type=int, default=16, help="bytes per line")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--json", help="write every window here")
    parser.add_argument("--depths", default="1,16", help="lines per write, a window each (1,16)")
    args = parser.parse_args()
    depths = [int(depth) for depth in args.depths.split(",")]
    raise_nofile_limit()
    windows: list[Window] = []
    with tempfile.TemporaryDirectory() as folder:
        binary = build_load_generator(folder)
        if binary is None:
            raise SystemExit("bench/workers.py needs a C compiler for echo_load.c")
        for index in range(args.rounds):
            order = (1, 2) if index % 2 == 0 else (2, 1)
            for workers in order:
                server = Echo(workers, folder)
                try:
                    for depth in depths:
                        window = measure(binary, server, args, depth)
                        windows.append(window)
                        print(
                            f"round {index + 1} workers={workers} depth={depth}: "
                            f"{window.lines_per_s:,.0f} lines/s, server CPU "
                            f"{window.server_cpu / window.elapsed:.2f} cores, load generator "
                            f"{window.client_cpu / window.elapsed:.2f}",
                            flush=True,
                        )
                finally:
                    server.stop()
    print()
    print(f"{os.cpu_count()} cores; {args.connections} connections, {args.size}-byte lines; "
          f"medians of {args.rounds} rounds")  # fmt: skip
    header = (
        "depth | workers | lines/s | server cores | load gen cores | machine busy cores"
        " | per server CPU-s"
    )
    print(header)
    for depth in depths:
        medians = {}
        for workers in (1, 2):
            chosen = [w for w in windows if w.workers == workers and w.depth == depth]
            medians[workers] = statistics.median(w.lines_per_s for w in chosen)
            print(
                f"{depth:>5} | {workers:>7} | {medians[workers]:>9,.0f} | "
                f"{statistics.median(w.server_cpu / w.elapsed for w in chosen):.2f} | "
                f"{statistics.median(w.client_cpu / w.elapsed for w in chosen):.2f} | "
                f"{statistics.median(w.busy_cpu / w.elapsed for w in chosen):.2f} | "
                f"{statistics.median(w.per_server_cpu for w in chosen):,.0f}"
            )
        print(f"depth {depth}: two workers / one = {medians[2] / medians[1]:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps([vars(w) for w in windows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
