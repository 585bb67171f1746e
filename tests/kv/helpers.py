"""Running kv for the tests, and talking RESP to it byte for byte.

``KvThread`` runs a kv ``Server`` in this process, on a loop of its own in a thread, so sync
clients (redis-py) can talk to it and a test can look at its state. ``KvProcess`` runs
``python -m residentd run kv`` as a real daemon, for redis-cli and redis-benchmark.
``RedisServer`` runs the real redis-server the conformance tests compare against. ``Raw`` is
a socket client that sends bytes and reads whole replies back as bytes, using hiredis only
to know where a reply ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

from residentd.apps.kv import KvApp, create_app
from residentd.apps.kv.state import KvState
from residentd.limits import Limits
from residentd.loop import new_event_loop
from residentd.net.server import Server
from support import free_port, kill9, residentd_command, stop, wait_until

TIMEOUT = 5.0


def resp(*args: bytes | str | int) -> bytes:
    """A command in RESP's multibulk form, as clients send it."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def answers(port: int) -> bool:
    """Whether a server on ``port`` answers PING with PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(resp("PING"))
            return sock.recv(64) == b"+PONG\r\n"
    except OSError:
        return False


class Raw:
    """A RESP client on a plain socket that sees every byte."""

    def __init__(self, port: int, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.pending = b""

    def send(self, data: bytes) -> None:
        """Send it all, or as much as the server took before closing (a hostile request is
        refused while it is still being sent): what the server said is read next."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.sock.sendall(data)

    def replies(self, count: int) -> list[bytes]:
        """The next ``count`` replies, each as the exact bytes that came."""
        out: list[bytes] = []
        while len(out) < count:
            end = reply_end(self.pending, 0)
            if end is not None:
                out.append(self.pending[:end])
                self.pending = self.pending[end:]
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {out!r} + {self.pending!r}")
            self.pending += chunk
        return out

    def call(self, *args: bytes | str | int) -> bytes:
        self.send(resp(*args))
        return self.replies(1)[0]

    def read_until_closed(self) -> bytes:
        """Everything up to the server's close (a reset counts as a close)."""
        data = self.pending
        self.pending = b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replies_after_flush(
    port: int, commands: Sequence[Sequence[bytes | str | int]], count: int
) -> list[bytes]:
    """The ``count`` replies a server on ``port`` gives to ``commands``, sent in one write
    after a FLUSHALL (the differential tests send the same to kv and to redis-server)."""
    with Raw(port) as client:
        client.call("FLUSHALL")
        client.send(b"".join(resp(*command) for command in commands))
        return client.replies(count)


def reply_end(data: bytes, start: int) -> int | None:
    """Where the RESP2 or RESP3 reply that starts at ``start`` ends, or ``None`` if it is not
    all in."""
    line_end = data.find(b"\r\n", start)
    if line_end < 0:
        return None
    kind, number = data[start : start + 1], data[start + 1 : line_end]
    position = line_end + 2
    if kind in (b"+", b"-", b":", b"_", b",", b"#", b"("):
        return position
    count = int(number)
    if kind in (b"$", b"=", b"!"):
        return (
            None
            if count >= 0 and len(data) < position + count + 2
            else (position + count + 2 if count >= 0 else position)
        )
    assert kind in (b"*", b"%", b"~", b">"), data[start:]
    for _ in range(max(count, 0) * (2 if kind == b"%" else 1)):
        end = reply_end(data, position)
        if end is None:
            return None
        position = end
    return position
    count = int(number)
    if kind == b"$":
        return (
            None
            if count >= 0 and len(data) < position + count + 2
            else (position + count + 2 if count >= 0 else position)
        )
    assert kind == b"*", data[start:]
    for _ in range(max(count, 0)):
        end = reply_end(data, position)
        if end is None:
            return None
        position = end
    return position


class KvThread:
    """kv served from this process, on its own loop in a background thread."""

    def __init__(
        self,
        loop: str = "auto",
        limits: Limits | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.app: KvApp = create_app()
        self.app.options.update(options or {})
        self.loop = new_event_loop(loop)
        self.server = Server(self.app, limits or Limits(idle_timeout=0), self.loop)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    @property
    def state(self) -> KvState:
        return self.app.state

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the server's loop and return its result."""

        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(TIMEOUT)

    def start(self) -> KvThread:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self.server.start({"kv": ["127.0.0.1:0"]}), self.loop
        )
        future.result(TIMEOUT)
        self.port = self.server.addresses("kv")[0].port
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(2.0), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()

    def __enter__(self) -> KvThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KvProcess:
    """``python -m residentd run kv`` as a child process."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.command = residentd_command(
            "run", "kv", "--listen", f"127.0.0.1:{self.port}",
            "--admin", "off", "--log-level", "WARNING", *args,
        )  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> KvProcess:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_until(self._ready, 15.0, f"kv on port {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"kv exited: {self.process.communicate()[1].decode()}")
        return answers(self.port)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process.communicate()

    def kill9(self) -> None:
        """SIGKILL the daemon: a crash, as far as it can tell."""
        assert self.process is not None
        kill9(self.process)
        self.process.communicate()

    def __enter__(self) -> KvProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """A private redis-server (no persistence) on a free port."""

    def __init__(self) -> None:
        path = redis_server_path()
        assert path is not None
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                path,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
                "--dir",
                tempfile.gettempdir(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: answers(self.port), 10.0, "redis-server")

    def stop(self) -> None:
        stop(self.process)
