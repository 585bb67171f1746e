"""Many chat bots online at once against one chat daemon, and the daemon's memory per user.

    python bench/bots_chat_online.py [--users 15000] [--processes 2] [--duration 60]

``residentd run chat`` (limits raised: ``--max-connections 20000``) runs pinned to CPU 0;
``residentd bots --scenario chat-idle`` signs ``--users`` bots in from ``--processes``
generator processes pinned to CPU 1, over one loopback source address per 1,000 bots, and
keeps them online (a ``ping`` every 25 s) for ``--duration`` seconds while the daemon is
sampled through its admin endpoint. It prints the users online at the peak, the sign-in
latency, and the daemon's RSS growth per online user. A process may hold 20,000 files here,
hence several generator processes for more bots than that.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port

PYTHON = sys.executable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=15_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--spawn-rate", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    tcp, http = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        pidfile = str(Path(tmp) / "chat.pid")
        server = subprocess.Popen(
            ["taskset", "-c", "0", PYTHON, "-m", "residentd", "run", "chat",
             "--listen", f"127.0.0.1:{tcp}", "--http-listen", f"127.0.0.1:{http}",
             "--pidfile", pidfile, "--max-connections", "20000", "--log-level", "WARNING"],
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while not os.path.exists(f"{pidfile}.sock"):
                if time.monotonic() > deadline:
                    raise SystemExit("the chat daemon did not start")
                time.sleep(0.05)
            out = Path(tmp) / "results.json"
            command = [
                "taskset", "-c", "1", PYTHON, "-m", "residentd", "bots", "--no-live",
                "--scenario", "chat-idle", "--target", f"127.0.0.1:{tcp}",
                "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
                "--duration", str(args.duration), "--processes", str(args.processes),
                "--server-admin", f"unix:{pidfile}.sock", "--json", str(out),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            print(done.stdout)
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            results = json.loads(out.read_text())
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    summary, daemon = results["summary"], results["server"]
    hello = next(step for step in results["steps"] if step["name"] == "hello")
    print(f"users online at once: {summary['users_peak']:,}; errors: {summary['errors']}")
    print(f"sign-in (hello) latency: p50 {hello['p50_ms']:.2f} ms, p99 {hello['p99_ms']:.2f} ms")
    print(
        f"daemon RSS {daemon['baseline_rss_bytes'] / 2**20:.1f} MiB idle, "
        f"{daemon['rss_at_measure_bytes'] / 2**20:.1f} MiB with {daemon['users_at_measure']:,} "
        f"users online: {daemon['memory_per_user_bytes'] / 1024:.2f} KiB per online user; "
        f"open fds max {daemon['max_fds']:,}"
    )


if __name__ == "__main__":
    main()
