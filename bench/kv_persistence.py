"""kv's persistence beside Redis's, in the same run: what ``appendonly yes`` costs.

    python bench/kv_persistence.py                      # 3 rounds, 100,000 round trips a test
    python bench/kv_persistence.py --rounds 5 --keys 1000000
    python bench/kv_persistence.py --policies always --compare OTHER/src --keys 0   # an A/B

Servers, each on a fresh folder: ``kv`` without persistence, ``kv`` and ``redis-server``
with ``--appendonly yes`` and ``--appendfsync everysec``, and both with ``always``. Each
round runs redis-benchmark SET, INCR and LPUSH at pipeline 1 and 16 (50 clients) against
every server, the order rotating from round to round; the table gives the medians and the
ratios the targets are about (kv everysec / kv without persistence, kv everysec / Redis
everysec, kv always / Redis always), each the median over the rounds of that round's ratio
(the two ran minutes apart at most, so the host's drift between rounds cancels). A second
table gives each server's CPU time per request, with the same ratios taken on it (the inverse
ratio of CPU per request: above 1 is better), and a third redis-benchmark's own CPU over the
run's wall time: near 1.00, the load generator's core, not the server, set the rate.
``--compare`` adds kv run from another source tree ("kv-other": an A/B of two commits in the
same run) and ``--policies`` keeps only some of the servers.
The CPU time is the scheduler's own count of every thread's run time (``/proc/PID/task/*/
schedstat``, nanoseconds) where Linux has it, else psutil's (10 ms ticks).
Servers run pinned to CPU 0, redis-benchmark to CPU 1, as in bench/peers.py.

Then, with ``--keys`` small keys (``key:<i>``, 8 bytes) loaded into kv and into
redis-server: the time SAVE takes, the time a restart takes to load the dump (until the
server answers PING), and the round-trip time of PINGs sent back to back on one connection
during a BGSAVE (p50, p99, max: an upper bound on the loop's lag while it forks and the
child writes).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import peers
from peers import HOST, Peer, benchmark, cpu_seconds, load_keys, paired_ratio, record, start, stop

TESTS = ["set", "incr", "lpush"]


def port_args(peer: Peer) -> list[str]:
    if peer.name.startswith("kv"):
        return ["--listen", f"{HOST}:{peer.port}"]
    return ["--port", str(peer.port)]


peers.port_args = port_args  # the servers here are named "kv everysec", "redis always", ...
PIPELINES = [1, 16]


def servers(root: Path, policies: list[str], compare: str | None) -> list[Peer]:
    base_kv = peers.peers()[0].command
    redis = [peers.peers()[1].command[0], "--bind", HOST, "--save", ""]
    made = []
    kinds: list[tuple[str, str | None]] = [("kv", None)] if "off" in policies else []
    for policy in ("everysec", "always"):
        if policy in policies:
            kinds += [("kv", policy), ("redis", policy)]
            kinds += [("kv-other", policy)] if compare else []
    for name, fsync in kinds:
        label = f"{name} {fsync or 'off'}"
        folder = root / label.replace(" ", "-")
        folder.mkdir()
        if name == "kv-other":  # the same kv from another source tree (an A/B of two commits)
            command = ["env", f"PYTHONPATH={compare}", *base_kv, "--dir", str(folder)]
            command += ["--appendonly", "yes", "--appendfsync", str(fsync)]
        elif name == "kv":
            command = [*base_kv, "--dir", str(folder)]
            if fsync:
                command += ["--appendonly", "yes", "--appendfsync", fsync]
        else:
            command = [*redis, "--dir", str(folder), "--appendonly", "yes"]
            command += ["--appendfsync", str(fsync)]
        made.append(Peer(label, command))
    return made


def run_time(peer: Peer) -> float:
    """CPU seconds the server's threads have run: the scheduler's nanosecond count where
    /proc has it (psutil's figure moves in 10 ms ticks: 5% of a pipeline-16 test here)."""
    assert peer.process is not None
    tasks = f"/proc/{peer.process.pid}/task"
    try:
        total = 0
        for task in os.listdir(tasks):
            with open(f"{tasks}/{task}/schedstat") as file:
                total += int(file.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        return cpu_seconds(peer)


def rounds(running: list[Peer], count: int, requests: int, clients: int) -> None:
    for round_ in range(count):
        order = running[round_ % len(running) :] + running[: round_ % len(running)]
        for pipeline in PIPELINES:
            for test in TESTS:
                for peer in order:
                    used = run_time(peer)
                    run = benchmark(peer.port, test, requests * pipeline, clients, pipeline)
                    used = run_time(peer) - used
                    record(peer, (test, pipeline), run, used / (requests * pipeline) * 1e6)
        print(f"round {round_ + 1}/{count} done", flush=True)


RATIOS = [  # (heading, numerator, denominator) of requests per second; CPU: the inverse
    ("ev/off", "kv everysec", "kv off"),
    ("ev/redis", "kv everysec", "redis everysec"),
    ("al/redis", "kv always", "redis always"),
    ("ev/other", "kv everysec", "kv-other everysec"),
    ("al/other", "kv always", "kv-other always"),
]


def report(running: list[Peer]) -> None:
    by = {peer.name: peer for peer in running}
    names = [peer.name for peer in running]
    ratios = [ratio for ratio in RATIOS if ratio[1] in by and ratio[2] in by]

    def table(title: str, figures: str, fmt: str, inverse: bool | None) -> None:
        """Medians of the rounds, and the targets' ratios: of requests per second, the median
        of the rounds' ratios (``paired_ratio``); of CPU per request, the ratio of the medians,
        inverted (above 1 is better); none for the client's busy share."""

        def rounds_of(name: str, test: str, pipeline: int) -> list[float]:
            figures_of: dict[tuple[str, int], list[float]] = getattr(by[name], figures)
            return figures_of[(test, pipeline)]

        def med(name: str, test: str, pipeline: int) -> float:
            return statistics.median(rounds_of(name, test, pipeline))

        def ratio(mine: str, theirs: str, test: str, pipeline: int) -> float:
            if inverse:
                return med(theirs, test, pipeline) / med(mine, test, pipeline)
            return paired_ratio(rounds_of(mine, test, pipeline), rounds_of(theirs, test, pipeline))

        shown = ratios if inverse is not None else []
        print(f"\n{title}")
        print(f"{'test':<10}{'P':>3}" + "".join(f"{name:>18}" for name in names), end="")
        print("".join(f"{heading:>10}" for heading, _, _ in shown))
        for pipeline in PIPELINES:
            for test in TESTS:
                cells = "".join(f"{med(name, test, pipeline):>18{fmt}}" for name in names)
                values = [ratio(a, b, test, pipeline) for _, a, b in shown]
                print(f"{test:<10}{pipeline:>3}{cells}" + "".join(f"{v:>10.2f}" for v in values))

    table(
        "requests per second (median of rounds; ratios: the median of the rounds' ratios)",
        "rps",
        ",.0f",
        inverse=False,
    )
    table(
        "server CPU time per request, µs (median of rounds; a busy machine disturbs it less); "
        "ratios of the medians, inverted: above 1 is better",
        "cpu",
        ".2f",
        inverse=True,
    )
    table(
        "redis-benchmark's CPU over the run's wall time (median of rounds; 1.00: its core was "
        "full, so it set the rate)",
        "client_busy",
        ".2f",
        inverse=None,
    )


def rounds_figures(running: list[Peer]) -> dict[str, dict[str, dict[str, list[float]]]]:
    return {
        kind: {
            peer.name: {f"{t}/P{p}": values for (t, p), values in getattr(peer, kind).items()}
            for peer in running
        }
        for kind in ("rps", "cpu", "client_busy")
    }


def call(port: int, *args: bytes, timeout: float = 600.0) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(peers.resp(*args))
        return sock.recv(65536)


def ping_times(port: int, until: float) -> list[float]:
    times = []
    with socket.create_connection((HOST, port), timeout=30) as sock:
        while time.monotonic() < until:
            sent = time.perf_counter()
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            sock.recv(64)
            times.append((time.perf_counter() - sent) * 1000)
    return times


def save_and_load(peer: Peer, keys: int) -> dict[str, float]:
    start(peer)
    try:
        load_keys(peer.port, keys)
        started = time.perf_counter()
        reply = call(peer.port, b"SAVE")
        saved = time.perf_counter() - started
        assert reply == b"+OK\r\n", reply
        # BGSAVE under a ping loop: the round trips while the parent forks and serves.
        assert call(peer.port, b"BGSAVE").startswith(b"+Background saving started")
        lags = ping_times(peer.port, time.monotonic() + 3.0)
    finally:
        stop(peer)
    started = time.perf_counter()
    start(peer)  # waits until PING is answered: the dump is loaded
    loaded = time.perf_counter() - started
    stop(peer)
    lags.sort()
    return {
        "save": saved,
        "load": loaded,
        "p50": lags[len(lags) // 2],
        "p99": lags[int(len(lags) * 0.99)],
        "max": lags[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--requests",
        type=int,
        default=100_000,
        help="per test at -P 1; times the depth at 16",
    )
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys for save/load (0: skip)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--json", help="also write the throughput figures to this file")
    parser.add_argument(
        "--policies", default="off,everysec,always", help="of off, everysec, always"
    )
    parser.add_argument(
        "--compare", metavar="SRC", help="also run kv from this source tree (PYTHONPATH)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kv-persistence-") as root:
        if not args.skip_throughput:
            running = servers(Path(root), args.policies.split(","), args.compare)
            try:
                for peer in running:
                    start(peer)
                rounds(running, args.rounds, args.requests, args.clients)
            finally:
                for peer in running:
                    stop(peer)
            report(running)
            if args.json:
                Path(args.json).write_text(json.dumps(rounds_figures(running), indent=2))
        if args.keys:
            print(f"\n{args.keys:,} keys: SAVE, load at start-up, PING round trips during BGSAVE")
            for label, command in (
                ("kv", [*peers.peers()[0].command, "--dir"]),
                ("redis", [peers.peers()[1].command[0], "--bind", HOST, "--save", "", "--dir"]),
            ):
                folder = Path(root) / f"save-{label}"
                folder.mkdir()
                figures = save_and_load(Peer(label, [*command, str(folder)]), args.keys)
                print(
                    f"{label:<6} save {figures['save']:.2f} s  load {figures['load']:.2f} s  "
                    f"ping p50 {figures['p50']:.2f} ms  p99 {figures['p99']:.2f} ms  "
                    f"max {figures['max']:.2f} ms"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
