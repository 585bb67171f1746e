"""Pub/sub with redis-py: channels, patterns, RESP2's subscribed mode, delivery order, and the
pub/sub output limit that drops a subscriber that never reads."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from support import wait_until

from .helpers import KvThread, Raw, resp


def next_message(pubsub: Any) -> Any:
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
    assert message is not None, "no message"
    return message


def test_channels_and_patterns(r: redis.Redis) -> None:
    pubsub = r.pubsub()
    pubsub.subscribe("news", "sport")
    assert next_message(pubsub) == {
        "type": "subscribe", "pattern": None, "channel": b"news", "data": 1,
    }  # fmt: skip
    assert next_message(pubsub)["data"] == 2
    pubsub.psubscribe("n*")
    assert next_message(pubsub) == {
        "type": "psubscribe", "pattern": None, "channel": b"n*", "data": 3,
    }  # fmt: skip
    assert r.publish("news", "hello") == 2  # the channel and the pattern
    assert next_message(pubsub) == {
        "type": "message", "pattern": None, "channel": b"news", "data": b"hello",
    }  # fmt: skip
    assert next_message(pubsub) == {
        "type": "pmessage", "pattern": b"n*", "channel": b"news", "data": b"hello",
    }  # fmt: skip
    assert r.publish("nothing-here", "x") == 1
    assert next_message(pubsub)["channel"] == b"nothing-here"
    assert r.publish("sport", b"\x00\r\n") == 1
    assert next_message(pubsub)["data"] == b"\x00\r\n"
    assert r.publish("weather", "x") == 0
    pubsub.unsubscribe("news")
    assert next_message(pubsub) == {
        "type": "unsubscribe", "pattern": None, "channel": b"news", "data": 2,
    }  # fmt: skip
    pubsub.punsubscribe()
    assert next_message(pubsub)["data"] == 1
    assert r.publish("news", "x") == 0
    pubsub.close()


def test_every_subscriber_gets_messages_in_order(r: redis.Redis, kv: KvThread) -> None:
    subscribers = [r.pubsub() for _ in range(5)]
    for pubsub in subscribers:
        pubsub.subscribe("c")
        next_message(pubsub)
    with r.pipeline(transaction=False) as pipe:
        for i in range(100):
            pipe.publish("c", str(i))
        assert pipe.execute() == [5] * 100
    for pubsub in subscribers:
        assert [next_message(pubsub)["data"] for _ in range(100)] == [
            str(i).encode() for i in range(100)
        ]
        pubsub.close()
    wait_until(lambda: not kv.state.hub.channels, what="subscriptions released on close")


def test_subscribed_mode_allows_only_pubsub_commands(kv: KvThread) -> None:
    with Raw(kv.port) as client:
        client.send(resp("SUBSCRIBE", "a"))
        client.replies(1)
        assert client.call("GET", "x") == (
            b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT "
            b"/ RESET are allowed in this context\r\n"
        )
        assert client.call("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        assert client.call("PING", "x") == b"*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
        assert client.call("UNSUBSCRIBE") == b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n"
        assert client.call("GET", "x") == b"$-1\r\n"
        assert client.call("PING") == b"+PONG\r\n"


def test_pubsub_clients_never_time_out_for_idleness() -> None:
    from residentd.limits import Limits

    with KvThread(limits=Limits(idle_timeout=0.5)) as server, Raw(server.port) as listener:
        listener.send(resp("SUBSCRIBE", "quiet"))
        listener.replies(1)
        with Raw(server.port) as idle:
            time.sleep(1.5)  # both sent nothing for three idle timeouts
            assert idle.read_until_closed() == b""  # the plain client was closed
        assert redis.Redis(port=server.port, protocol=2).publish("quiet", "still here") == 1
        assert listener.replies(1)[0].endswith(b"$10\r\nstill here\r\n")


def test_a_subscriber_is_idle_exempt_only_while_it_listens() -> None:
    """The exemption is the connection's flag: its time of last input is left alone (kv once
    rewrote it ten times a second), and the idle timeout applies again once it unsubscribed."""
    from residentd.limits import Limits

    with KvThread(limits=Limits(idle_timeout=0.5)) as server, Raw(server.port) as listener:
        assert listener.call("SUBSCRIBE", "quiet").endswith(b":1\r\n")

        def last_input() -> float:
            (conn,) = server.server.connections.values()
            assert conn.idle_exempt
            return conn.last_active

        before = server.call(last_input)
        time.sleep(1.0)  # two idle timeouts
        assert server.call(last_input) == before
        listener.send(resp("UNSUBSCRIBE"))
        started = time.monotonic()
        assert listener.read_until_closed().endswith(b"\r\n$5\r\nquiet\r\n:0\r\n")
        assert time.monotonic() - started >= 0.4  # closed by the idle timeout, not at once


def test_a_subscriber_that_never_reads_is_dropped_at_the_pubsub_limit() -> None:
    # Core output limit off, as in Redis for normal clients: only the pub/sub limit applies.
    from residentd.limits import Limits

    options = {"pubsub_output_hard_limit": 1024 * 1024, "pubsub_output_soft_limit": 0}
    limits = Limits(max_output_buffer=0, idle_timeout=0)
    with KvThread(limits=limits, options=options) as server:
        sleeper = socket.create_connection(("127.0.0.1", server.port))
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.sendall(resp("SUBSCRIBE", "firehose"))
        reader = redis.Redis(port=server.port, protocol=2)
        reader.rpush("big", *[b"x" * 1000] * 3000)  # a 3 MB reply, read at once: no limit
        assert len(reader.lrange("big", 0, -1)) == 3000
        publisher = redis.Redis(port=server.port, protocol=2)
        wait_until(lambda: publisher.publish("firehose", "hi") == 1, what="subscribed")
        payload = b"y" * 10_000
        receivers = []
        for _ in range(1000):  # 10 MB, far past the limit
            receivers.append(publisher.publish("firehose", payload))
            if receivers[-1] == 0:
                break
        assert receivers[-1] == 0, "the subscriber was never dropped"
        assert server.call(lambda: server.server.stats.closed["output-buffer-full"]) == 1
        assert reader.ping() is True  # others go on
        sleeper.close()


@pytest.mark.parametrize("command", ["subscribe", "psubscribe"])
def test_subscribe_needs_a_channel(r: redis.Redis, command: str) -> None:
    with pytest.raises(ResponseError, match=f"wrong number of arguments for '{command}'"):
        r.execute_command(command.upper())
