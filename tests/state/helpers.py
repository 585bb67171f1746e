"""Running kvlite.py as a real daemon process and talking to it, for the state tests."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
from typing import Any

from support import free_port, kill9, read_log, residentd_command, spawn, stop, wait_for_port

APP = os.path.join(os.path.dirname(__file__), "kvlite.py") + ":app"


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
        command = residentd_command("run", APP, "--admin", "off")
        command += ["--listen", f"127.0.0.1:{self.port}", "--dir", folder, *args]

        def limit() -> None:
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))

        self.proc = spawn(command, self.log, preexec_fn=limit if fsize is not None else None)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 15.0) -> None:
        wait_for_port(self.port, self.proc, timeout, log=self.output)

    def output(self) -> str:
        return read_log(self.log)

    def client(self) -> Client:
        return Client(self.port)

    def kill(self) -> None:
        kill9(self.proc)

    def stop(self) -> int:
        return stop(self.proc)


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
