"""Loop lag while logging: does writing 50,000 log lines a second stall the event loop?

Two servers, alternated round by round, run the same paced echo workload (``--rate`` lines a
second, spread over ``--connections`` connections, sent every millisecond by a uvloop client
pinned to the other CPU):

* ``quiet``: the built-in echo, logging at WARNING (nothing is written);
* ``logging``: an echo that logs one INFO line per message (bench/apps/logged_echo.py) to a
  file, so the daemon writes ``--rate`` lines a second through its queue and writer thread.

Each run starts a fresh daemon, so its loop-lag window (the admin endpoint's ``loop_lag``,
sampled every 20 ms over the last minute) covers the run alone. The table gives, per server,
the medians over rounds of lag p99 and max, the daemon's CPU use (all threads, on its one
pinned core), the lines it wrote per second (counted in the file), and the echo replies per
second the client saw; ``lost`` sums, over all rounds, the lines sent but missing from the file
after the daemon was stopped with SIGTERM.

    python bench/log_lag.py                      # 3 rounds of 15 s each, about 2 minutes
    python bench/log_lag.py --rate 50000 --seconds 20 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from harness import CLIENT_CPU, HOST, PYTHON, ServerProcess, free_port, pin_to_cpu
from residentd.daemon.control import admin_json

APP = str(Path(__file__).resolve().parent / "apps" / "logged_echo.py") + ":app"


class PacedClient(asyncio.Protocol):
    """One connection: lines are written by the pacer, replies only counted."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received += data.count(b"\n")


async def drive(port: int, rate: int, connections: int, seconds: float) -> tuple[int, int]:
    """Send ``rate`` lines/s for ``seconds``; return the lines sent and the replies received."""
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(connections):
        _, client = await loop.create_connection(PacedClient, HOST, port)
        clients.append(client)
    tick = 0.001
    per_tick = rate * tick
    line = b"x" * 40 + b"\n"
    owed = 0.0
    start = loop.time()
    next_tick = start
    index = 0
    while loop.time() - start < seconds:
        owed += per_tick
        while owed >= 1:
            client = clients[index % connections]
            assert client.transport is not None
            client.transport.write(line)
            index += 1
            owed -= 1
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    await asyncio.sleep(0.5)
    received = sum(client.received for client in clients)
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return index, received


def run_once(kind: str, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    port = free_port()
    admin = f"unix:{tmp}/{kind}-{port}.sock"
    log_file = tmp / f"{kind}-{port}.log"
    common = ["--listen", f"{HOST}:{port}", "--admin", admin, "--max-connections-per-ip", "0"]
    if kind == "quiet":
        argv = [PYTHON, "-m", "residentd", "run", "echo", *common, "--log-level", "WARNING"]
    else:
        argv = [PYTHON, "-m", "residentd", "run", APP, *common, "--log-level", "INFO",
                "--log-file", str(log_file)]  # fmt: skip
    with ServerProcess(kind, argv) as server:
        cpu_before = server.cpu_seconds()
        sent, replies = uvloop.run(drive(port, args.rate, args.connections, args.seconds))
        cpu = server.cpu_seconds() - cpu_before
        status = admin_json(admin, "GET", "/status")
        time.sleep(0.5)
    # ServerProcess stops the daemon with SIGTERM: every line it was sent must be in the file.
    lines = log_file.read_text().count("echo 40 bytes") if log_file.exists() else sent
    lag = status["loop_lag"]
    return {
        "lag_p99_ms": lag["p99_ms"],
        "lag_max_ms": lag["max_ms"],
        "cpu_pct": 100 * cpu / (args.seconds + 0.5),
        "lines_per_s": lines / args.seconds,
        "lines_lost": sent - lines,
        "replies_per_s": replies / args.seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=50_000, help="lines per second")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    pin_to_cpu(CLIENT_CPU)
    results: dict[str, list[dict[str, float]]] = {"quiet": [], "logging": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(1, args.rounds + 1):
            for kind in results:
                figures = run_once(kind, args, Path(folder))
                results[kind].append(figures)
                print(
                    f"round {round_number} {kind:8} "
                    + "  ".join(f"{key}={value:,.1f}" for key, value in figures.items()),
                    flush=True,
                )
    print(
        f"\n{args.rate:,} lines/s over {args.connections} connections, "
        f"{args.seconds:g} s a run, medians of {args.rounds} rounds"
    )
    print(
        f"{'server':10} {'lag p99 ms':>11} {'lag max ms':>11} {'cpu %':>6} {'log lines/s':>12} "
        f"{'lost':>5} {'replies/s':>10}"
    )
    for kind, runs in results.items():
        med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        lost = sum(run["lines_lost"] for run in runs)
        print(
            f"{kind:10} {med['lag_p99_ms']:>11.1f} {med['lag_max_ms']:>11.1f} "
            f"{med['cpu_pct']:>6.0f} {med['lines_per_s']:>12,.0f} {lost:>5,.0f} "
            f"{med['replies_per_s']:>10,.0f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
