"""``make demo``: the chat daemon under a few thousand bots, and what it cost per user.

It starts the real command, ``residentd run chat``, on its default ports (TCP 7700, HTTP 7780;
free ports instead when those are taken, and it says so) with a pidfile, then runs
``residentd bots --scenario chat`` against it: 3,000 bots signing in, joining rooms, posting,
reading history and sending direct messages for 30 seconds, with the daemon sampled through
its admin endpoint. It prints the summary (requests per second, latency percentiles, users
online, memory per online user) and the path of the HTML report, and stops the daemon with
``residentd stop``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

USERS = 3000
SPAWN_RATE = 300
DURATION = 30


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pick_port(default: int, what: str) -> int:
    if port_free(default):
        return default
    port = free_port()
    print(f"  port {default} ({what}) is taken here: using {port} instead")
    return port


def wait_ready(port: int, admin_socket: str, daemon: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SystemExit(f"demo: the chat daemon exited with status {daemon.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if os.path.exists(admin_socket):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"demo: the chat daemon did not listen on port {port}")


def summary(results: dict[str, Any], report: str) -> None:
    s, server = results["summary"], results["server"] or {}
    per_user = server.get("memory_per_user_bytes")
    print()
    print("summary")
    print(
        f"  requests/s          {s['rps']:,.0f}  ({s['requests']:,} in {results['elapsed']:.0f} s)"
    )
    print(
        f"  latency             p50 {s['p50_ms']:.2f} ms   p90 {s['p90_ms']:.2f} ms   "
        f"p99 {s['p99_ms']:.2f} ms   p99.9 {s['p999_ms']:.2f} ms   max {s['max_ms']:.1f} ms"
    )
    print(f"  users online        {s['users_peak']:,} (peak)")
    if per_user is not None:
        print(
            f"  memory per user     {per_user / 1024:.1f} KiB  (server RSS "
            f"{server['baseline_rss_bytes'] / 2**20:.1f} MiB idle, "
            f"{server['rss_at_measure_bytes'] / 2**20:.1f} MiB with "
            f"{server['users_at_measure']:,} users online)"
        )
    print(f"  errors              {s['errors']:,}")
    print(f"  HTML report         {report}")


def main() -> None:
    from residentd.bots.cli import main as bots

    tcp = pick_port(7700, "chat TCP")
    http = pick_port(7780, "chat HTTP")
    out = tempfile.mkdtemp(prefix="residentd-demo-")
    pidfile = str(Path(out) / "chat.pid")
    command = [
        sys.executable, "-m", "residentd", "run", "chat", "--listen", f"127.0.0.1:{tcp}",
        "--http-listen", f"127.0.0.1:{http}", "--pidfile", pidfile, "--log-level", "WARNING",
    ]  # fmt: skip
    print(f"$ residentd run chat --listen 127.0.0.1:{tcp} --http-listen 127.0.0.1:{http}")
    daemon = subprocess.Popen(command)
    try:
        wait_ready(tcp, f"{pidfile}.sock", daemon)
        print(f"  chat is up: pid {daemon.pid}; open http://127.0.0.1:{http}/ to watch")
        argv = [
            "--scenario", "chat", "--target", f"127.0.0.1:{tcp}", "--users", str(USERS),
            "--spawn-rate", str(SPAWN_RATE), "--duration", str(DURATION),
            "--server-admin", f"unix:{pidfile}.sock", "--max-error-rate", "0.01",
            "--json", str(Path(out) / "results.json"), "--report", str(Path(out) / "report"),
        ]  # fmt: skip
        print(f"$ residentd bots {' '.join(argv)}")
        status = bots(argv)
        results = json.loads((Path(out) / "results.json").read_text())
        summary(results, str(Path(out) / "report" / "index.html"))
        print("$ residentd stop")
        stopped = subprocess.run(
            [sys.executable, "-m", "residentd", "stop", "--pidfile", pidfile],
            capture_output=True,
            text=True,
        )
        print(" ", stopped.stdout.strip() or stopped.stderr.strip())
        daemon.wait(timeout=20)
        if status != 0:
            raise SystemExit(status)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


if __name__ == "__main__":
    main()
