"""Pipelines and transactions with redis-py: many commands per write, replies in order, MULTI/
EXEC as redis-py's default pipeline sends it, and the same answers however the pipeline is
cut into reads."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.exceptions import ExecAbortError, ResponseError

from residentd.apps.kv import create_app

from .helpers import KvThread, Raw, resp


def test_pipeline_without_transaction(r: redis.Redis) -> None:
    with r.pipeline(transaction=False) as pipe:
        for i in range(500):
            pipe.set(f"k{i}", i)
        for i in range(500):
            pipe.incr(f"k{i}")
        pipe.get("k499")
        pipe.lpush("k0", "x")  # an error in the middle does not stop the rest
        pipe.get("k0")
        results = pipe.execute(raise_on_error=False)
    assert results[:500] == [True] * 500
    assert results[500:1000] == list(range(1, 501))
    assert results[1000] == b"500"
    assert isinstance(results[1001], ResponseError)
    assert results[1002] == b"1"


def test_transaction_pipeline(r: redis.Redis) -> None:
    with r.pipeline() as pipe:  # MULTI ... EXEC
        pipe.set("a", 1).incr("a").lpush("a", "x").get("a")
        results = pipe.execute(raise_on_error=False)
    assert results[:2] == [True, 2]
    assert isinstance(results[2], ResponseError)
    assert results[3] == b"2"


def test_a_refused_command_aborts_the_transaction(r: redis.Redis) -> None:
    with r.pipeline() as pipe:
        pipe.set("a", 1)
        pipe.execute_command("NOSUCHCOMMAND")
        with pytest.raises(ResponseError, match="unknown command 'NOSUCHCOMMAND'") as caught:
            pipe.execute()
    assert isinstance(caught.value.__context__, ExecAbortError)
    assert r.get("a") is None


def test_a_huge_pipeline_in_one_write_gets_every_reply(kv: KvThread) -> None:
    count = 20_000
    data = b"".join(resp("SET", f"key:{i}", "v" * (i % 50)) for i in range(count))
    data += b"".join(resp("GET", f"key:{i}") for i in range(count))
    with Raw(kv.port, timeout=30) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        client.send(data)
        replies = client.replies(2 * count)
    assert replies[:count] == [b"+OK\r\n"] * count
    assert replies[count:] == [b"$%d\r\n%b\r\n" % (i % 50, b"v" * (i % 50)) for i in range(count)]


def test_pipeline_split_at_every_byte_boundary(kv: KvThread) -> None:
    data = resp("SET", "a", "1") + b"INCR a\r\n" + resp("GET", "a") + resp("PING")
    with Raw(kv.port) as client:
        for i in range(len(data)):
            client.sock.sendall(data[i : i + 1])
        assert client.replies(4) == [b"+OK\r\n", b":2\r\n", b"$1\r\n2\r\n", b"+PONG\r\n"]


def test_quit_ends_the_pipeline(kv: KvThread) -> None:
    with Raw(kv.port) as client:
        client.send(resp("SET", "q", "1") + resp("QUIT") + resp("SET", "q", "2"))
        assert client.read_until_closed() == b"+OK\r\n+OK\r\n"
    assert redis.Redis(port=kv.port, protocol=2).get("q") == b"1"


def test_every_command_of_a_read_goes_to_the_session_at_once() -> None:
    # The core calls a batch handler once per read: one list of replies, one write.
    assert create_app().services[0].batch_handler


def test_messages_out_counts_replies_not_writes(kv: KvThread) -> None:
    # Fast-path commands, Python ones, an error and a MULTI, one read and one write each time;
    # then a QUIT in the middle of a pipeline: its reply counts, the commands after it never run.
    pipeline = [
        resp("SET", "m", "1"),
        resp("INCR", "m"),
        resp("GET", "m"),
        resp("HSET", "h", "f", "v"),  # not on the C fast path
        resp("LPUSH", "m", "x"),  # WRONGTYPE
        resp("MULTI"),
        resp("INCR", "m"),  # QUEUED
        resp("EXEC"),
        resp("PING"),
    ]

    def replies_so_far() -> int:
        return int(kv.call(lambda: kv.server.snapshot()["messages_out"]))

    before = replies_so_far()
    with Raw(kv.port) as client:
        client.send(b"".join(pipeline))
        assert len(client.replies(len(pipeline))) == len(pipeline)
        assert replies_so_far() - before == len(pipeline)
        client.send(resp("PING") + resp("QUIT") + resp("SET", "m", "3"))
        assert client.read_until_closed() == b"+PONG\r\n+OK\r\n"
    assert replies_so_far() - before == len(pipeline) + 2
