"""HELLO as redis-server 7.0 answers it, in RESP2 and RESP3.

HELLO, HELLO 2 and HELLO 3 return Redis's map of server facts (an array in RESP2, a map in
RESP3; only the version and the client id differ); malformed options get Redis's errors in
Redis's order. redis-py 8, which asks for RESP3 by default, connects without a warning.
"""

from __future__ import annotations

import re
import warnings

import redis

from .helpers import Raw

Command = tuple[str, ...]
CASES: list[Command] = [
    ("HELLO",), ("HELLO", "2"), ("hello", "4"), ("HELLO", "1"), ("HELLO", "x"), ("HELLO", "-1"),
    ("HELLO", "99999999999999999999"), ("HELLO", "2", "AUTH", "default", "pw"),
    ("HELLO", "2", "AUTH", "bob", "pw"), ("HELLO", "2", "AUTH", "default"),
    ("HELLO", "2", "SETNAME", "a b"), ("HELLO", "2", "SETNAME", "n"), ("HELLO", "2", "FOO"),
    ("HELLO", "2", "SETNAME", "x", "SETNAME", "y"), ("HELLO", "2", "AUTH", "bob", "pw", "FOO"),
    ("HELLO", "2", "AUTH", "bob", "pw", "SETNAME", "a b"), ("HELLO", "3", "SETNAME", "a b"),
    ("HELLO", "3", "FOO"), ("HELLO", "3", "AUTH", "bob", "pw"), ("HELLO", "3", "SETNAME"),
    ("HELLO", "3"), ("HELLO", "3", "SETNAME", "n"), ("HELLO", "3", "AUTH", "default", "pw"),
]  # fmt: skip


def _normal(reply: bytes) -> bytes:
    """The reply without what differs by design: Redis's patch version and the client id."""
    reply = re.sub(rb"\$\d+\r\n7\.0\.\d+\r\n", b"<version>", reply)
    return re.sub(rb"(\$2\r\nid\r\n):\d+\r\n", rb"\1<id>", reply)


def test_hello_matches_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    for command in CASES:
        with Raw(redis_port) as theirs, Raw(port) as ours:
            expected = _normal(theirs.call(*command))
            assert _normal(ours.call(*command)) == expected, command
            if not expected.startswith(b"-"):
                assert ours.call("CLIENT", "GETNAME") == theirs.call("CLIENT", "GETNAME")


def test_hello_3_switches_the_connection_to_resp3_and_back(kv_process: object) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(port) as client:
        reply = client.call("HELLO", "3", "SETNAME", "n")
        assert reply.startswith(b"%7\r\n") and b"$5\r\nproto\r\n:3\r\n" in reply
        assert client.call("CLIENT", "GETNAME") == b"$1\r\nn\r\n"
        assert client.call("GET", "hello:missing") == b"_\r\n"
        assert client.call("HELLO", "2").startswith(b"*14\r\n")
        assert client.call("GET", "hello:missing") == b"$-1\r\n"


def test_redis_py_connects_with_its_defaults_silently(kv_process: object) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    for protocol in (None, 2, 3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = (
                redis.Redis(port=port)
                if protocol is None
                else redis.Redis(port=port, protocol=protocol)
            )
            assert client.ping() is True
            assert client.set("hello:k", "v") is True
            assert client.get("hello:k") == b"v"
            client.hset("hello:h", mapping={"a": "1", "b": "2"})
            assert client.hgetall("hello:h") == {b"a": b"1", b"b": b"2"}
            client.sadd("hello:s", "x", "y")
            assert client.smembers("hello:s") == {b"x", b"y"}
            assert client.get("hello:missing") is None
            client.delete("hello:k", "hello:h", "hello:s")
            client.close()
        assert [str(w.message) for w in caught] == [], protocol
