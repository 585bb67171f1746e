"""Running kvlite.py as a real daemon process and talking to it, for the state tests."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

APP = os.path.join(os.path.dirname(__file__), "kvlite.py") + ":app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """One kvlite daemon process on a fresh port, with its state in ``folder``."""

    def __init__(
        self,
        folder: str,
        *args: str,
        fsize: int | None = None,
        wait: bool = True,
        log: str | None = None,
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.log = log or os.path.join(folder, "daemon.log")
        command = [sys.executable, "-m", "residentd", "run", APP, "--admin", "off"]
        command += ["--listen", f"127.0.0.1:{self.port}", "--dir", folder, *args]

        def limit() -> None:
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115 - the child owns it
            preexec_fn=limit if fsize is not None else None,
        )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise AssertionError(f"daemon not listening: {self.output()}")

    def output(self) -> str:
        with open(self.log, errors="replace") as file:
            return file.read()

    def client(self) -> Client:
        return Client(self.port)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


class Client:
    """A blocking line client: ``call`` sends one command and returns its reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def reply(self, timeout: float = 10.0) -> str | None:
        """The next reply line, or None if none came within ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        while b"\n" not in self.buffer:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def call(self, line: str) -> str:
        self.send(line)
        reply = self.reply()
        if reply is None:
            raise TimeoutError(f"no reply to {line[:40]!r}")
        return reply

    def info(self) -> dict[str, Any]:
        return dict(json.loads(self.call("INFO")))

    def close(self) -> None:
        self.sock.close()


def until(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "residentd", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
