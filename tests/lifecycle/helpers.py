"""Running ``residentd`` as a real subprocess for lifecycle tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from residentd.daemon.admin import default_admin_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def port_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def residentd(*args: str, env: dict[str, str] | None = None, timeout: float = 30.0) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "residentd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


class Daemon:
    """``residentd run APP`` in the foreground as a child process, with a pidfile and log."""

    def __init__(self, tmp: Path, app: str = "echo", *args: str, loop: str = "auto") -> None:
        self.tmp = tmp
        self.port = free_port()
        self.pidfile = str(tmp / f"{app.replace(':', '_').replace('/', '_')}.pid")
        self.log_file = tmp / "daemon.log"
        self.command = [
            sys.executable, "-m", "residentd", "run", app,
            "--listen", f"127.0.0.1:{self.port}", "--pidfile", self.pidfile,
            "--log-file", str(self.log_file), "--loop", loop, *args,
        ]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> Daemon:
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        if wait:
            wait_until(self._ready, what=f"residentd on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited early: {self.process.communicate()}")
        if not port_answers(self.port):
            return False
        if "--admin" not in self.command:
            return os.path.exists(self.admin_path)
        # The admin endpoint starts after the listeners: wait for it too.
        admin = self.command[self.command.index("--admin") + 1]
        if admin == "off":
            return True
        if admin.startswith("unix:"):
            return os.path.exists(admin.removeprefix("unix:"))
        return port_answers(int(admin.rpartition(":")[2]))

    @property
    def admin_path(self) -> str:
        return default_admin_path("", self.pidfile).removeprefix("unix:")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def status(self) -> dict[str, Any]:
        result = residentd("status", "--pidfile", self.pidfile, "--json")
        assert result.returncode == 0, result.stderr
        return msgspec.json.decode(result.stdout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.process.communicate()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def talk(port: int, lines: list[bytes]) -> list[bytes]:
    """Send lines one by one on a new connection and return the replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        replies = []
        for line in lines:
            sock.sendall(line + b"\n")
            replies.append(reader.readline().rstrip(b"\n"))
        return replies
