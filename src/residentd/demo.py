"""``make demo``: start the echo daemon, talk to it, show its counters, stop it.

It runs the real command (``residentd run echo``) as a child process on a free loopback port
with a pidfile, sends a few lines (one of them over the line limit, to show the refusal), reads
``residentd status``, stops the daemon with ``residentd stop`` and prints each step.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"demo: the echo daemon did not listen on port {port}")


def residentd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "residentd", *args], capture_output=True, text=True, check=True
    )


def talk(port: int, max_line: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        for line in (b"hello, resident world", b"data stays in memory"):
            sock.sendall(line + b"\n")
            print(f"  sent {line!r:32} got {reader.readline().rstrip()!r}")
        sock.sendall(b"x" * (max_line + 1) + b"\n")
        print(f"  sent a line of {max_line + 1} bytes   got {reader.readline().rstrip()!r}")
        print(f"  then the daemon closed it: {reader.read() == b''}")


def main() -> None:
    port = free_port()
    max_line = 1024
    with tempfile.TemporaryDirectory() as tmp:
        pidfile = str(Path(tmp) / "echo.pid")
        command = [
            sys.executable, "-m", "residentd", "run", "echo",
            "--listen", f"127.0.0.1:{port}", "--pidfile", pidfile,
            "--max-line", str(max_line), "--log-level", "WARNING",
        ]  # fmt: skip
        print("$ residentd run echo --listen", f"127.0.0.1:{port}", "--max-line", max_line)
        daemon = subprocess.Popen(command)
        try:
            wait_for_port(port)
            talk(port, max_line)
            print("$ residentd status")
            print(residentd("status", "--pidfile", pidfile).stdout)
            print("$ residentd stop")
            print(" ", residentd("stop", "--pidfile", pidfile).stdout.strip())
            print(f"  exit status {daemon.wait(timeout=15)}")
        finally:
            if daemon.poll() is None:
                daemon.kill()


if __name__ == "__main__":
    main()
