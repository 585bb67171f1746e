"""Running ``residentd`` as a real subprocess for lifecycle tests."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import msgspec

from residentd.daemon.admin import default_admin_path
from support import (
    free_port,
    port_answers,
    read_log,
    residentd_command,
    run_residentd,
    stop,
    wait_until,
)

#: ``residentd ARGS`` run to its end: the lifecycle tests' name for ``support.run_residentd``.
residentd = run_residentd


class Notify:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; keeps what arrives."""

    def __init__(self, path: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self.path = os.fspath(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(timeout)
        self.messages: list[str] = []

    def wait_for(self, text: str) -> None:
        """Receive until a message holding ``text`` arrives after the last one looked at."""
        while True:
            message = self.sock.recv(4096).decode()  # socket.timeout fails the test
            self.messages.append(message)
            if text in message:
                return

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """``residentd run APP`` in the foreground as a child process, with a pidfile and log."""

    def __init__(self, tmp: Path, app: str = "echo", *args: str, loop: str = "auto") -> None:
        self.tmp = tmp
        self.port = free_port()
        self.pidfile = str(tmp / f"{app.replace(':', '_').replace('/', '_')}.pid")
        self.log_file = tmp / "daemon.log"
        self.command = residentd_command(
            "run", app,
            "--listen", f"127.0.0.1:{self.port}", "--pidfile", self.pidfile,
            "--log-file", str(self.log_file), "--loop", loop, *args,
        )  # fmt: skip
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
        return read_log(self.log_file)

    def status(self) -> dict[str, Any]:
        result = residentd("status", "--pidfile", self.pidfile, "--json")
        assert result.returncode == 0, result.stderr
        return msgspec.json.decode(result.stdout)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
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
