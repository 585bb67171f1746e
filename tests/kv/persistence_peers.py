"""Real peers for the persistence tests: a redis-server started on a given folder and file
names, and the dataset comparison (key by key: type, value, time to live) between two
servers through redis-py."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from support import free_port, stop, wait_until

from .helpers import answers


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian: apt-get install redis-server redis-tools)")
    return path


@contextmanager
def redis_on(folder: str, *args: str) -> Iterator[redis.Redis]:
    """A redis-server on ``folder`` (``--dir``) with ``args``, and a redis-py client of it."""
    port = free_port()
    command = [need("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--dir", folder, "--save", "", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(port=port, socket_timeout=10, protocol=2)
    try:
        wait_until(
            lambda: process.poll() is not None or answers(port), 20.0, "redis-server to load"
        )
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited: {process.communicate()[0].decode()}")
        wait_until(lambda: client.info("persistence")["loading"] == 0, 20.0, "loading")
        yield client
    finally:
        client.close()
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


def dataset(client: redis.Redis) -> dict[bytes, tuple[bytes, Any, int]]:
    """Every key: (type, value, milliseconds to live, rounded to the second; -1 for none)."""
    found: dict[bytes, tuple[bytes, Any, int]] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"string":
            value: Any = client.get(key)
        elif kind == b"list":
            value = client.lrange(key, 0, -1)
        elif kind == b"set":
            value = client.smembers(key)
        elif kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            raise AssertionError(f"unexpected type {kind!r}")
        ttl = client.pttl(key)
        found[key] = (kind, value, -1 if ttl < 0 else round(ttl / 1000))
    return found


def same_dataset(a: redis.Redis, b: redis.Redis) -> None:
    started = time.monotonic()
    left, right = dataset(a), dataset(b)
    # Both hold the same absolute deadlines; their TTLs differ by the time between the reads.
    slack = 1 + math.ceil(time.monotonic() - started)
    assert left.keys() == right.keys()
    for key in left:
        kind, value, ttl = left[key]
        other_kind, other_value, other_ttl = right[key]
        assert (kind, value) == (other_kind, other_value), key
        assert abs(ttl - other_ttl) <= slack, (key, ttl, other_ttl)
