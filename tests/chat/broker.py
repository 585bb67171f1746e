"""Real peers of the broker tests: a redis-server that can be stopped and started again on the
same port and folder (it saves on SIGTERM and loads at start, as a real deployment with
persistence does), and chat nodes that share it (``residentd run chat --broker ...``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from support import free_port, port_answers, spawn, stop, wait_until

from .daemon import ChatDaemon
from .helpers import SECRET


def need_redis() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    return path


class RedisServer:
    """A private redis-server on a free port, its RDB file in ``folder``."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.path = need_redis()
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *options: str) -> RedisServer:
        command = [
            self.path, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
            "--save", "3600 1", "--appendonly", "no", "--daemonize", "no", *options,
        ]  # fmt: skip
        self.process = spawn(command, self.folder / "redis.log")
        wait_until(lambda: port_answers(self.port), 10.0, "redis-server")
        return self

    def stop(self) -> None:
        """SIGTERM: redis-server saves its data set and exits."""
        if self.process is not None:
            stop(self.process)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)

    def calls(self, command: str) -> int:
        """How many times ``command`` ran since the server started (INFO commandstats)."""
        stats: dict[str, Any] = self.client().info("commandstats")
        return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


class Node(ChatDaemon):
    """A chat node on broker ``url``, named ``node``."""

    def __init__(self, url: str, node: str, *options: str) -> None:
        super().__init__(
            "--secret", SECRET, "--rate-limit", "0", "--broker", url, "--node-id", node, *options
        )
        self.node = node
