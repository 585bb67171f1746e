"""``residentd run chat`` as a real subprocess on free loopback ports, for the browser and CLI
tests: started, waited for (both ports answer), and stopped with SIGTERM."""

from __future__ import annotations

import subprocess
import tempfile
from types import TracebackType

from support import child_env, free_port, port_answers, residentd_command, spawn, stop, wait_until


class ChatDaemon:
    def __init__(self, *options: str) -> None:
        self.tcp_port = free_port()
        self.http_port = free_port()
        self.command = residentd_command(
            "run", "chat",
            "--listen", f"127.0.0.1:{self.tcp_port}",
            "--http-listen", f"127.0.0.1:{self.http_port}",
            "--admin", "off", "--log-level", "WARNING", *options,
        )  # fmt: skip
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def __enter__(self) -> ChatDaemon:
        self.process = process = spawn(self.command, self._log, env=child_env())

        def started() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"residentd run chat did not start:\n{self.log()}")
            return port_answers(self.tcp_port) and port_answers(self.http_port)

        try:
            wait_until(started, 20.0, "residentd run chat to listen")
        except AssertionError:
            self.stop()
            raise
        return self

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> int | None:
        return None if self.process is None else stop(self.process)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()
