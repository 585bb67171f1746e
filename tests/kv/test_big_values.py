"""Large values and the protocol's size limits, as redis-server has them.

A bulk string of 5 MB or 20 MB is a legal request (``proto-max-bulk-len`` is 512 MiB): kv
takes it from redis-py and redis-cli byte for byte, under the core's 4 MiB
``max_input_buffer``, which bounds only what is held beyond the bulk being read. What is over
Redis's limits gets Redis's answer: a declared length over ``proto-max-bulk-len`` or a count
over INT_MAX is a protocol error and a close; a partial request over
``client-query-buffer-limit`` a close without a word.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import redis

from residentd.limits import Limits

from .helpers import KvThread, Raw, resp

MB = 1024 * 1024
VALUES = {size: os.urandom(size) for size in (5 * 1000 * 1000, 20 * MB)}


def _servers(kv_process: object, redis_port: int) -> dict[str, int]:
    return {"redis": redis_port, "kv": kv_process.port}  # type: ignore[attr-defined]


def test_big_values_through_redis_py_and_redis_cli(
    kv_process: object, redis_port: int, tmp_path: Path
) -> None:
    cli = "redis-cli"
    for name, port in _servers(kv_process, redis_port).items():
        client = redis.Redis(port=port, protocol=2, socket_timeout=30)
        client.flushall()
        for size, value in VALUES.items():
            assert client.set(b"big", value) is True, name
            assert client.get(b"big") == value, (name, size)
            assert client.strlen(b"big") == size
            # Two in one command, over the core's input cap together.
            assert client.mset({b"a": value, b"b": value[::-1]}) is True
            assert client.mget(b"a", b"b") == [value, value[::-1]]
            source = tmp_path / "value"
            source.write_bytes(value)
            with source.open("rb") as stdin:
                run = subprocess.run(
                    [cli, "-p", str(port), "-x", "SET", "fromcli"],
                    stdin=stdin, capture_output=True, timeout=60, check=True,
                )  # fmt: skip
            assert run.stdout == b"OK\n", (name, run.stdout[:100])
            run = subprocess.run(
                [cli, "-p", str(port), "--raw", "GET", "fromcli"],
                capture_output=True, timeout=60, check=True,
            )  # fmt: skip
            assert run.stdout == value + b"\n", (name, size)
        assert client.ping() is True
        client.close()


def _answer(port: int, data: bytes) -> tuple[bytes, bool]:
    """What a server says to ``data`` within a moment, and whether it then closed."""
    with Raw(port, timeout=0.5) as client:
        client.send(data)
        got = b""
        try:
            while chunk := client.sock.recv(4096):
                got += chunk
            return got, True
        except ConnectionResetError:
            return got, True
        except TimeoutError:
            return got, False


def test_protocol_limits_match_redis(kv_process: object, redis_port: int) -> None:
    for data in (
        b"*1\r\n$536870913\r\n",  # over proto-max-bulk-len
        b"*1\r\n$536870912\r\n",  # at it: waits for the data
        b"*2147483648\r\n",  # over INT_MAX arguments
        b"*2147483647\r\n",
        b"*1073741825\r\n",  # Redis 7.0 takes counts up to INT_MAX
        b"*1\r\n$-1\r\n",
        resp("SET", "k", "v") + b"*1\r\n$99999999999999999999\r\n",
    ):
        theirs, ours = (_answer(port, data) for port in _servers(kv_process, redis_port).values())
        assert ours == theirs, data


def test_config_of_the_protocol_limits_matches_redis(kv_process: object, redis_port: int) -> None:
    servers = _servers(kv_process, redis_port)
    try:
        for name, port in servers.items():
            client = redis.Redis(port=port, protocol=2)
            for parameter in ("proto-max-bulk-len", "client-query-buffer-limit"):
                for value in ("1000", "1048575", "ten", "1mb", "2gb", "1048576"):
                    try:
                        reply: object = client.config_set(parameter, value)
                    except redis.ResponseError as error:
                        reply = str(error)
                    assert reply == _redis_config_set(redis_port, parameter, value), (name, value)
            client.config_set("proto-max-bulk-len", "2mb")
            client.config_set("client-query-buffer-limit", "3mb")
            assert client.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": "2097152"}
            assert client.config_get("client-query*") == {"client-query-buffer-limit": "3145728"}
            client.close()
            # A new connection reads with the new limits.
            with Raw(port) as raw:  # the header alone: refused before any of the value is read
                raw.send(resp("SET", "k", b"x" * (2 * MB + 1))[: -(2 * MB + 3)])
                assert raw.read_until_closed() == b"-ERR Protocol error: invalid bulk length\r\n"
    finally:
        for port in servers.values():
            with Raw(port) as raw:
                assert raw.call(
                    "CONFIG", "SET", "proto-max-bulk-len", "512mb",
                    "client-query-buffer-limit", "1gb",
                ) == b"+OK\r\n"  # fmt: skip


def _redis_config_set(port: int, parameter: str, value: str) -> object:
    client = redis.Redis(port=port, protocol=2)
    try:
        return client.config_set(parameter, value)
    except redis.ResponseError as error:
        return str(error)
    finally:
        client.close()


def test_the_query_buffer_limit_and_the_input_cap() -> None:
    limits = Limits(max_input_buffer=16 * 1024, idle_timeout=0)
    options = {"client_query_buffer_limit": 2 * MB}
    with KvThread(limits=limits, options=options) as server, Raw(server.port) as bystander:
        with Raw(server.port) as client:  # a value 64 times the input cap is fine
            assert client.call("SET", "k", b"v" * MB) == b"+OK\r\n"
            assert client.call("STRLEN", "k") == b":%d\r\n" % MB
        with Raw(server.port) as client:  # a partial request over the query buffer limit
            client.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3000000\r\n" + b"v" * (2 * MB + 10))
            assert client.read_until_closed() == b""
        with Raw(server.port) as client:  # held beyond any bulk: the input cap
            client.send(b"*2\r\n$3\r\nGET\r\n$" + b"1" * 20_000)
            assert client.read_until_closed() == b""
        assert bystander.call("PING") == b"+PONG\r\n"
        closed = server.call(lambda: dict(server.server.stats.closed))
        assert closed.get("input-buffer-full") == 2


@pytest.fixture(autouse=True)
def _redis_cli_present() -> None:
    if subprocess.run(["which", "redis-cli"], capture_output=True).returncode:
        pytest.skip("redis-cli is not installed")
