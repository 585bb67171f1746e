"""HELLO as redis-server 7.0 answers it in RESP2, and what kv does with RESP3.

HELLO and HELLO 2 return Redis's map of server facts (only the version and the client id
differ); malformed options get Redis's errors in Redis's order. kv has no RESP3: HELLO 3 whose
options pass Redis's checks is refused with -NOPROTO and changes nothing, so redis-py falls
back to RESP2 (with its warning, until kv speaks RESP3); with protocol=2 it connects silently.
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
]  # fmt: skip


def _normal(reply: bytes) -> bytes:
    """The reply without what differs by design: Redis's patch version and the client id."""
    reply = re.sub(rb"\$\d+\r\n7\.0\.\d+\r\n", b"<version>", reply)
    return re.sub(rb"(\$2\r\nid\r\n):\d+\r\n", rb"\1<id>", reply)


def test_hello_in_resp2_matches_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    for command in CASES:
        with Raw(redis_port) as theirs, Raw(port) as ours:
            expected = _normal(theirs.call(*command))
            assert _normal(ours.call(*command)) == expected, command
            if not expected.startswith(b"-"):
                assert ours.call("CLIENT", "GETNAME") == theirs.call("CLIENT", "GETNAME")


def test_hello_3_is_refused_and_changes_nothing(kv_process: object) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(port) as client:
        assert client.call("HELLO", "3", "SETNAME", "n") == (
            b"-NOPROTO unsupported protocol version\r\n"
        )
        assert client.call("CLIENT", "GETNAME") == b"$-1\r\n"
        assert client.call("PING") == b"+PONG\r\n"  # still RESP2


def test_redis_py_connects_with_protocol_2_silently_and_falls_back_by_default(
    kv_process: object,
) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explicit = redis.Redis(port=port, protocol=2)
        assert explicit.ping() is True
        explicit.close()
    assert [str(w.message) for w in caught] == []
    default = redis.Redis(port=port)  # asks for RESP3 first (redis-py 8), then RESP2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert default.set("k", "v") is True
        assert default.get("k") == b"v"
    default.close()
