"""Fixtures of the kv tests: a kv server in this process (one per module, flushed before
each test), a kv daemon and a real redis-server (one each per session)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from .helpers import KvProcess, KvThread, RedisServer, redis_server_path


@pytest.fixture(scope="module")
def kv() -> Iterator[KvThread]:
    with KvThread() as server:
        yield server


@pytest.fixture
def r(kv: KvThread) -> Iterator[redis.Redis]:
    """A redis-py client of the module's kv, which starts empty."""
    client = redis.Redis(port=kv.port, socket_timeout=5, protocol=2)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """The port of a private redis-server, to compare kv with."""
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer()
    yield server.port
    server.stop()


@pytest.fixture(scope="session")
def kv_process() -> Iterator[KvProcess]:
    with KvProcess() as daemon:
        yield daemon
