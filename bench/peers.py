"""kv beside its peers: the same redis-benchmark workloads against residentd's kv, redis-server
itself and minimal Redis servers written on other Python and JavaScript stacks.

    python bench/peers.py                       # 3 rounds, 200,000 round trips per test
    python bench/peers.py --rounds 5 --requests 500000 --servers kv,redis-server
    python bench/peers.py --memory-keys 1000000 # and memory per million small keys
    python bench/peers.py --servers kv --compare OTHER/src  # an A/B of two commits' kv

The servers:

* ``kv``: ``python -m residentd run kv`` (uvloop);
* ``redis-server``: Redis itself, persistence off (``--save '' --appendonly no``);
* ``raw-uvloop``, ``asyncio-streams``, ``twisted``, ``gevent``: bench/kv_peers/, one file
  per framework around the same hiredis parsing and command code (common.py);
* ``node-net``: bench/kv_peers/node_server.js, Node.js ``net`` with a hand-written parser;
* ``kv-other`` with ``--compare SRC``: kv run from another source tree (its C modules built
  there), beside this tree's kv in the same rounds, so two commits are compared on the same
  minutes of the machine.

A peer whose runtime is missing (twisted or gevent not installed: ``pip install -e
'.[bench]'``; no ``node``; no ``redis-server``) is skipped with a note. redis-benchmark
(Debian's redis-tools) is required.

Method: every server runs pinned to CPU 0, redis-benchmark to CPU 1 (taskset). Each round
runs every test (SET, GET, INCR, LPUSH, MSET by default, ``--tests all`` for redis-benchmark's
whole default list; 50 clients; keys from a space of
100,000) at each pipeline depth (1 and 16; ``--requests`` at depth 1, that many times the
depth when pipelined, so every run makes as many round trips, divided by ``WEIGHTS`` for the
pipelined LRANGE tests, whose replies carry hundreds of elements) against every server, the
server order rotating from round to round, so that a slow moment of the machine does not
land on one server only. The table gives the median requests per second over the rounds, the
ratio to redis-server for the same test (the median over the rounds of that round's ratio: the
two ran back to back, so the host's drift between rounds cancels), and each server's resident
memory after start and after the run; a second table the server's CPU time per request
(psutil), which a busy machine disturbs less than throughput; and a third redis-benchmark's
own CPU time over the run's wall time: at 1.00 its core was full, and the rate it reports is
its own limit, not the server's (compare the servers' CPU per request there).
``--memory-keys N`` then loads N small keys (``key:<i>`` = 8 bytes) into a fresh kv and a
fresh redis-server and reports the memory each key costs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from harness import free_port

HERE = Path(__file__).resolve().parent
PEERS = HERE / "kv_peers"
PYTHON = sys.executable
HOST = "127.0.0.1"
SERVER_CPU = "0"
CLIENT_CPU = "1"
TESTS = "set,get,incr,lpush,mset"
# Our test names and the rows redis-benchmark prints for them; "all" is its whole default list.
# "ping" is run as -t ping_mbulk: -t ping would also run PING_INLINE, whose requests the
# server's CPU time would then include.
TEST_FLAGS = {"ping": "ping_mbulk"}
NAMES = {
    "ping": "PING_MBULK", "set": "SET", "get": "GET", "incr": "INCR", "lpush": "LPUSH",
    "rpush": "RPUSH", "lpop": "LPOP", "rpop": "RPOP", "sadd": "SADD", "hset": "HSET",
    "spop": "SPOP", "zadd": "ZADD", "zpopmin": "ZPOPMIN",
    **{f"lrange_{n}": f"LRANGE_{n} (first {n} elements)" for n in (100, 300, 500, 600)},
    "mset": "MSET (10 keys)",
}  # fmt: skip
# How many times a plain request's work one of the test's requests is (an LRANGE reply carries
# up to 600 elements): its pipelined runs make that many times fewer requests, so they last
# seconds, as the others do (unpipelined, they take seconds already).
WEIGHTS = {"lrange_100": 4, "lrange_300": 10, "lrange_500": 16, "lrange_600": 20}


@dataclass
class Peer:
    name: str
    command: list[str]
    missing: str | None = None  # why it cannot run here
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    rss_start: int = 0
    rss_end: int = 0
    rps: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # µs per request
    # redis-benchmark's own CPU time over the run's wall time, against this server: near 1.0,
    # the load generator's core, not the server, set the rate.
    client_busy: dict[tuple[str, int], list[float]] = field(default_factory=dict)


def peers() -> list[Peer]:
    def python_peer(name: str, script: str, module: str | None = None) -> Peer:
        missing = None
        if module and importlib.util.find_spec(module) is None:
            missing = f"{module} is not installed (pip install -e '.[bench]')"
        return Peer(name, [PYTHON, str(PEERS / script)], missing)

    redis_server = shutil.which("redis-server")
    node = shutil.which("node")
    return [
        Peer(
            "kv",
            [
                PYTHON,
                "-m",
                "residentd",
                "run",
                "kv",
                "--admin",
                "off",
                "--log-level",
                "WARNING",
                "--max-connections-per-ip",
                "0",
                "--idle-timeout",
                "0",
                "--handshake-timeout",
                "0",
            ],
        ),
        Peer(
            "redis-server",
            [
                redis_server or "redis-server",
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                HOST,
                "--dir",
                "/tmp",
            ],
            None
            if redis_server
            else "redis-server is not installed (apt-get install redis-server)",
        ),
        python_peer("raw-uvloop", "raw_uvloop.py"),
        python_peer("asyncio-streams", "asyncio_streams.py"),
        python_peer("twisted", "twisted_server.py", "twisted"),
        python_peer("gevent", "gevent_server.py", "gevent"),
        Peer(
            "node-net",
            [node or "node", str(PEERS / "node_server.js")],
            None if node else "node is not installed",
        ),
    ]


def kv_other(source: str) -> Peer:
    """kv from the source tree ``source`` (``--compare``)."""
    kv = next(peer for peer in peers() if peer.name == "kv")
    return Peer("kv-other", ["env", f"PYTHONPATH={source}", *kv.command])


def port_args(peer: Peer) -> list[str]:
    if peer.name.startswith("kv"):
        return ["--listen", f"{HOST}:{peer.port}"]
    return ["--port", str(peer.port)]


def answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(peer: Peer) -> None:
    peer.port = free_port()
    pin = ["taskset", "-c", SERVER_CPU] if shutil.which("taskset") else []
    peer.process = subprocess.Popen(
        [*pin, *peer.command, *port_args(peer)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not answers(peer.port):
        if peer.process.poll() is not None or time.monotonic() > deadline:
            stop(peer)
            raise RuntimeError(f"{peer.name} did not start: {' '.join(peer.command)}")
        time.sleep(0.05)
    peer.rss_start = rss(peer)


def rss(peer: Peer) -> int:
    assert peer.process is not None
    return int(psutil.Process(peer.process.pid).memory_info().rss)


def cpu_seconds(peer: Peer) -> float:
    """CPU time the server process has used (taskset execs the server in place)."""
    assert peer.process is not None
    times = psutil.Process(peer.process.pid).cpu_times()
    return float(times.user + times.system)


def stop(peer: Peer) -> None:
    if peer.process is None:
        return
    if peer.process.poll() is None:
        peer.process.send_signal(signal.SIGTERM)
        try:
            peer.process.wait(15)
        except subprocess.TimeoutExpired:
            peer.process.kill()
            peer.process.wait()
    peer.process = None


@dataclass
class Run:
    rps: float  # what redis-benchmark reports
    client_busy: float  # its CPU time over the run's wall time (1.0: its core was full)


def benchmark(port: int, test: str, requests: int, clients: int, pipeline: int) -> Run:
    """One redis-benchmark run of one test."""
    pin = ["taskset", "-c", CLIENT_CPU] if shutil.which("taskset") else []
    command = [
        *pin, "redis-benchmark", "-h", HOST, "-p", str(port), "-t", TEST_FLAGS.get(test, test),
        "-n", str(requests), "-c", str(clients), "-P", str(pipeline), "-r", "100000",
        "-q", "--csv",
    ]  # fmt: skip
    before = children_cpu_seconds()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    busy = (children_cpu_seconds() - before) / wall
    for line in done.stdout.splitlines()[1:]:
        cells = [cell.strip('"') for cell in line.split(",")]
        if cells[0] == NAMES[test]:
            return Run(float(cells[1]), busy)
    raise RuntimeError(f"redis-benchmark gave no {test} figure: {done.stdout}{done.stderr}")


def children_cpu_seconds() -> float:
    """CPU time of this process's waited-for children (taskset execs redis-benchmark)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_rounds(
    running: list[Peer], tests: list[str], pipelines: list[int], args: argparse.Namespace
) -> None:
    for round_ in range(args.rounds):
        order = running[round_ % len(running) :] + running[: round_ % len(running)]
        for pipeline in pipelines:
            for test in tests:
                # As many round trips per client at every depth: a pipelined run is then
                # seconds long too, not a fraction of one dominated by connecting.
                weight = WEIGHTS.get(test, 1) if pipeline > 1 else 1
                requests = args.requests * pipeline // weight
                for peer in order:
                    used = cpu_seconds(peer)
                    run = benchmark(peer.port, test, requests, args.clients, pipeline)
                    used = cpu_seconds(peer) - used
                    record(peer, (test, pipeline), run, used / requests * 1e6)
        print(f"round {round_ + 1}/{args.rounds} done (load {os.getloadavg()[0]:.2f})")


def record(peer: Peer, cell: tuple[str, int], run: Run, cpu_micros: float) -> None:
    peer.rps.setdefault(cell, []).append(run.rps)
    peer.cpu.setdefault(cell, []).append(cpu_micros)
    peer.client_busy.setdefault(cell, []).append(run.client_busy)


def median(peer: Peer, test: str, pipeline: int) -> float:
    return statistics.median(peer.rps[(test, pipeline)])


def paired_ratio(mine: list[float], theirs: list[float]) -> float:
    """The median over the rounds of one round's ratio. The two ran back to back in every
    round, so a round's ratio compares the same minutes of the machine; the ratio of the two
    medians can pair one's fast round with the other's slow one when the host drifts."""
    return statistics.median(a / b for a, b in zip(mine, theirs, strict=True))


def report(running: list[Peer], tests: list[str], pipelines: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    redis = next((peer for peer in running if peer.name == "redis-server"), None)
    table = Table(
        title="requests per second, median of the rounds "
        "(ratio to redis-server: the median of the rounds' ratios)"
    )
    table.add_column("server")
    table.add_column("-P")
    for test in tests:
        table.add_column(NAMES[test], justify="right")
    table.add_column("RSS start / end", justify="right")
    for peer in running:
        for pipeline in pipelines:
            cells = []
            for test in tests:
                value = median(peer, test, pipeline)
                text = f"{value / 1000:,.1f}k"
                if redis is not None:
                    ratio = paired_ratio(peer.rps[(test, pipeline)], redis.rps[(test, pipeline)])
                    text += f" ({ratio:.2f}x)"
                cells.append(text)
            memory = f"{peer.rss_start / 2**20:.1f} / {peer.rss_end / 2**20:.1f} MiB"
            table.add_row(peer.name, str(pipeline), *cells, memory)
    console = Console(width=200)
    console.print(table)
    for title, figures in (
        ("server CPU time per request, µs, median of the rounds", "cpu"),
        ("redis-benchmark's CPU over the run's wall time (1.00: its core was full)", "client_busy"),
    ):
        medians = Table(title=title)
        medians.add_column("server")
        medians.add_column("-P")
        for test in tests:
            medians.add_column(NAMES[test], justify="right")
        for peer in running:
            rounds: dict[tuple[str, int], list[float]] = getattr(peer, figures)
            for pipeline in pipelines:
                values = [statistics.median(rounds[(test, pipeline)]) for test in tests]
                medians.add_row(peer.name, str(pipeline), *(f"{value:.2f}" for value in values))
        console.print(medians)
    kv = next((peer for peer in running if peer.name == "kv"), None)
    if kv is None:
        return
    for peer in running:
        if peer.name == "kv":
            continue
        for pipeline in pipelines:
            ratios = {
                test: paired_ratio(kv.rps[(test, pipeline)], peer.rps[(test, pipeline)])
                for test in tests
            }
            listed = ", ".join(f"{test} {ratio:.2f}x" for test, ratio in ratios.items())
            print(f"kv / {peer.name} at -P {pipeline}, median of the rounds' ratios: {listed}")
            if peer.name == "redis-server":  # issue 18's targets
                target = 1.0 if pipeline > 1 else 0.95
                under = [test for test, ratio in ratios.items() if ratio < target]
                print(f"  under {target:.2f}x: {', '.join(under) or 'none'}")


def resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


def load_keys(port: int, count: int) -> None:
    """SET ``key:<i>`` to an 8-byte value for i < count, pipelined 1,000 at a time."""
    with socket.create_connection((HOST, port)) as sock:
        for start_ in range(0, count, 1000):
            batch = range(start_, min(start_ + 1000, count))
            sock.sendall(b"".join(resp(b"SET", b"key:%d" % i, b"%08d" % i) for i in batch))
            expected = 5 * len(batch)  # "+OK\r\n" each
            received = 0
            while received < expected:
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                received += len(chunk)


def memory_per_key(candidates: list[Peer], count: int) -> dict[str, float]:
    results = {}
    for peer in candidates:
        if peer.name not in ("kv", "kv-other", "redis-server") or peer.missing:
            continue
        start(peer)
        try:
            time.sleep(0.5)
            before = rss(peer)
            load_keys(peer.port, count)
            time.sleep(0.5)
            results[peer.name] = (rss(peer) - before) / count
        finally:
            stop(peer)
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


@contextlib.contextmanager
def started(selected: list[Peer]) -> Iterator[list[Peer]]:
    running = []
    try:
        for peer in selected:
            start(peer)
            running.append(peer)
        yield running
    finally:
        for peer in running:
            if peer.process is not None:
                peer.rss_end = rss(peer)
            stop(peer)


def main() -> int:
    parser = argparse.ArgumentParser(description="kv beside its peers, with redis-benchmark")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests",
        type=int,
        default=200_000,
        help="per test and round at pipeline 1; times the depth when pipelined",
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pipelines", default="1,16")
    parser.add_argument("--tests", default=TESTS, help=f"({TESTS}; all: {','.join(NAMES)})")
    parser.add_argument("--servers", default=",".join(peer.name for peer in peers()))
    parser.add_argument("--memory-keys", type=int, default=0, help="keys for the memory test")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--compare", metavar="SRC", help="also run kv from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        print("redis-benchmark is needed (Debian: apt-get install redis-tools)", file=sys.stderr)
        return 2
    wanted = args.servers.split(",")
    selected = [peer for peer in peers() if peer.name in wanted]
    for peer in selected:
        if peer.missing:
            print(f"skipping {peer.name}: {peer.missing}")
    selected = [peer for peer in selected if not peer.missing]
    if args.compare:
        selected.append(kv_other(str(Path(args.compare).resolve())))
    tests = list(NAMES) if args.tests == "all" else args.tests.split(",")
    pipelines = [int(p) for p in args.pipelines.split(",")]
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.2f}")
    with started(selected) as running:
        run_rounds(running, tests, pipelines, args)
    report(selected, tests, pipelines)
    memory = memory_per_key(selected, args.memory_keys) if args.memory_keys else {}
    for name, size in memory.items():
        print(f"memory per key, {args.memory_keys:,} small keys: {name} {size:.0f} bytes")
    if args.json:
        figures = {
            "machine": machine(),
            "args": vars(args),
            "rps": {
                peer.name: {f"{t}/P{p}": values for (t, p), values in peer.rps.items()}
                for peer in selected
            },
            "cpu_us_per_request": {
                peer.name: {f"{t}/P{p}": values for (t, p), values in peer.cpu.items()}
                for peer in selected
            },
            "client_busy": {
                peer.name: {f"{t}/P{p}": values for (t, p), values in peer.client_busy.items()}
                for peer in selected
            },
            "rss": {peer.name: [peer.rss_start, peer.rss_end] for peer in selected},
            "memory_per_key": memory,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
