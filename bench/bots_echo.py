"""How fast one bots generator process drives the echo daemon (non-pipelined request/replies).

    python bench/bots_echo.py [--users 64] [--duration 10] [--rounds 3]

``residentd run echo`` runs pinned to CPU 0 and ``residentd bots --scenario echo --processes
1`` pinned to CPU 1 (``taskset``), on loopback; each round prints the requests per second, p50
and p99 the bots measured, and the CPU of the generator and of the daemon (100%: its core is
saturated); the median is printed last.
The goal (issue 6) is at least 40,000 request/replies a second from one generator process.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port

PYTHON = sys.executable


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the echo daemon did not listen on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            ["taskset", "-c", "0", PYTHON, "-m", "residentd", "run", "echo",
             "--listen", f"127.0.0.1:{port}", "--pidfile", str(Path(tmp) / "echo.pid"),
             "--max-connections-per-ip", "0", "--log-level", "WARNING"],
        )  # fmt: skip
        try:
            wait_port(port)
            for round_ in range(1, args.rounds + 1):
                out = Path(tmp) / f"round{round_}.json"
                command = [
                    "taskset", "-c", "1", PYTHON, "-m", "residentd", "bots", "--no-live",
                    "--scenario", "echo", "--target", f"127.0.0.1:{port}",
                    "--users", str(args.users), "--duration", str(args.duration),
                    "--processes", "1", "--server-pid", str(server.pid), "--json", str(out),
                ]  # fmt: skip
                done = subprocess.run(command, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(done.stdout + done.stderr)
                results = json.loads(out.read_text())
                summary = results["summary"]
                cpu = [row["generator_cpu_percent"] for row in results["timeline"][1:-1]]
                server_cpu = [row["server_cpu_percent"] or 0.0 for row in results["timeline"][1:-1]]
                rates.append(summary["rps"])
                print(
                    f"round {round_}: {summary['rps']:,.0f} requests/s, "
                    f"p50 {summary['p50_ms']:.2f} ms, p99 {summary['p99_ms']:.2f} ms, "
                    f"CPU: generator {statistics.mean(cpu or [0.0]):.0f}%, "
                    f"server {statistics.mean(server_cpu or [0.0]):.0f}%"
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=20)
    print(f"median: {statistics.median(rates):,.0f} requests/s from one generator process "
          f"({args.users} bots, echo daemon on CPU 0, generator on CPU 1)")  # fmt: skip


if __name__ == "__main__":
    main()
