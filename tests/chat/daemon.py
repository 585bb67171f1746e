"""``residentd run chat`` as a real subprocess on free loopback ports, for the browser and CLI
tests: started, waited for (both ports answer), and stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from types import TracebackType


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


class ChatDaemon:
    def __init__(self, *options: str) -> None:
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.command = [
            sys.executable, "-m", "residentd", "run", "chat",
            "--listen", f"127.0.0.1:{self.tcp_port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--admin", "off", "--log-level", "WARNING", *options,
        ]  # fmt: skip
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def __enter__(self) -> ChatDaemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESIDENTD_")}
        self.process = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + 20
        while not (answers(self.tcp_port) and answers(self.http_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"residentd run chat did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
