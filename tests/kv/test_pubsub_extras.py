"""PUBSUB's introspection and the shard channels (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH), byte for
byte as redis-server 7.0 answers them, in RESP2 and in RESP3 (pushes)."""

from __future__ import annotations

import pytest

from support import wait_until

from .helpers import KvThread, Raw, resp

Command = tuple[str, ...]

# One name per reply wherever Redis would list several in its hash order.
LISTENER: list[Command] = [
    ("SUBSCRIBE", "news"), ("PSUBSCRIBE", "n*"), ("SSUBSCRIBE", "shard1", "shard2"),
    ("SSUBSCRIBE", "shard1"),
]  # fmt: skip
LISTENER_REPLIES = 5

QUERIES: list[Command] = [
    ("PUBSUB", "NUMSUB", "news", "none"), ("PUBSUB", "NUMSUB"), ("PUBSUB", "NUMPAT"),
    ("PUBSUB", "CHANNELS"), ("PUBSUB", "CHANNELS", "ne*"), ("PUBSUB", "CHANNELS", "x*"),
    ("PUBSUB", "SHARDCHANNELS", "*1"), ("PUBSUB", "SHARDNUMSUB", "shard1", "none"),
    ("PUBSUB", "SHARDNUMSUB"), ("SPUBLISH", "shard1", "hi"), ("SPUBLISH", "none", "hi"),
    ("PUBLISH", "shard1", "not-a-shard-message"), ("PUBLISH", "news", "hello"),
    ("PUBSUB", "FOO"), ("PUBSUB", "HELP"), ("PUBSUB", "NUMPAT", "x"),
    ("PUBSUB", "CHANNELS", "a", "b"), ("PUBSUB",), ("SSUBSCRIBE",), ("SPUBLISH", "a"),
    ("SUNSUBSCRIBE", "x"),
]  # fmt: skip

LEAVING: list[Command] = [
    ("SUNSUBSCRIBE", "shard1", "nope"), ("SUNSUBSCRIBE",), ("SUNSUBSCRIBE",), ("PING",),
    ("UNSUBSCRIBE",), ("PUNSUBSCRIBE",), ("GET", "x"),
]  # fmt: skip
LEAVING_REPLIES = 8


def _session(port: int, protocol: str) -> list[bytes]:
    """What a listener and a querying client see: the listener's confirmations, the
    answers to the queries, the messages the listener got, and its unsubscribing."""
    with Raw(port) as listener, Raw(port) as client:
        client.call("FLUSHALL")
        listener.call("HELLO", protocol)
        client.call("HELLO", protocol)
        listener.send(b"".join(resp(*command) for command in LISTENER))
        got = listener.replies(LISTENER_REPLIES)
        client.send(b"".join(resp(*command) for command in QUERIES))
        got += client.replies(len(QUERIES))
        got += listener.replies(3)  # smessage, pmessage, message
        listener.send(b"".join(resp(*command) for command in LEAVING))
        got += listener.replies(LEAVING_REPLIES)
        return got


@pytest.mark.parametrize("protocol", ["2", "3"])
def test_shard_channels_and_pubsub_introspection_as_redis(
    kv: KvThread, redis_port: int, protocol: str
) -> None:
    assert _session(kv.port, protocol) == _session(redis_port, protocol)


def test_shard_subscriptions_end_with_the_connection(kv: KvThread) -> None:
    with Raw(kv.port) as client:
        with Raw(kv.port) as listener:
            listener.call("SSUBSCRIBE", "gone")
            assert client.call("PUBSUB", "SHARDNUMSUB", "gone") == b"*2\r\n$4\r\ngone\r\n:1\r\n"
            assert b"\r\npubsubshard_channels:1\r\n" in client.call("INFO", "stats")
        wait_until(
            lambda: client.call("PUBSUB", "SHARDCHANNELS") == b"*0\r\n",
            timeout=2,
            what="the closed listener's shard channel to go",
        )
