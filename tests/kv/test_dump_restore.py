"""DUMP and RESTORE speak Redis's serialization: a DUMP taken from redis-server restores into
kv, and one taken from kv restores into redis-server, for every type kv holds (in the small
encodings Redis dumps too: int-encoded strings, listpacks, intsets, LZF; a stream with its
consumer group and pending entry), giving the same value on both. RESTORE's options and
errors answer as Redis 7.0's (its journaling is in test_hll_geo_dump_aof.py)."""

from __future__ import annotations

import struct

from residentd.apps.kv.persistence.crc64 import crc64

from .helpers import Raw

GROUP_COMMANDS = ("xgroup", "xreadgroup")
SETUP: list[tuple[str, ...]] = [
    ("set", "str", "hello"),
    ("set", "int", "12345"),
    ("set", "negative", "-7"),
    ("set", "long", "x" * 20000),
    ("set", "compressible", "ab" * 500),
    ("rpush", "list", "a", "b", "1", "2"),
    ("rpush", "biglist", *[str(i) * 10 for i in range(300)]),
    ("hset", "hash", "f", "v", "n", "1"),
    ("hset", "bighash", *[x for i in range(200) for x in (f"f{i}", "v" * 70)]),
    ("sadd", "set", "a", "b"),
    ("sadd", "intset", "1", "2", "-3", "100000"),
    ("sadd", "bigset", *[f"m{i}" for i in range(600)]),
    ("zadd", "zset", "1", "a", "2.5", "b", "-inf", "c"),
    ("zadd", "bigzset", *[x for i in range(200) for x in (str(i / 3), f"m{i}" * 10)]),
    ("xadd", "stream", "1-1", "f", "v"),
    ("xadd", "stream", "2-1", "a", "1", "b", "2"),
    ("xgroup", "create", "stream", "g", "0"),
    ("xreadgroup", "group", "g", "c", "count", "1", "streams", "stream", ">"),
]

KEYS = list(dict.fromkeys(command[1] for command in SETUP if command[0] not in GROUP_COMMANDS))

READS: list[tuple[str, ...]] = [
    ("type", "copy"),
    ("get", "copy"),
    ("lrange", "copy", "0", "-1"),
    ("hgetall", "copy"),
    ("smembers", "copy"),
    ("zrange", "copy", "0", "-1", "withscores"),
    ("xrange", "copy", "-", "+"),
    ("xpending", "copy", "g"),
]


def _bulk(reply: bytes) -> bytes:
    return reply[reply.index(b"\r\n") + 2 : -2]


def _unordered(reply: bytes) -> list[bytes]:
    return sorted(reply.split(b"\r\n"))


def test_dumps_move_both_ways(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(redis_port) as theirs, Raw(port) as ours:
        for server in (theirs, ours):
            server.call("FLUSHALL")
            for command in SETUP:
                server.call(*command)
        for source in (theirs, ours):
            for key in KEYS:
                payload = _bulk(source.call("DUMP", key))
                for server in (theirs, ours):
                    server.call("DEL", "copy")
                    assert server.call("RESTORE", "copy", "0", payload) == b"+OK\r\n", key
                for read in READS:
                    expected, got = theirs.call(*read), ours.call(*read)
                    assert _unordered(got) == _unordered(expected), (key, read)


def _payload(body: bytes, version: int = 10) -> bytes:
    data = body + struct.pack("<H", version)
    return data + struct.pack("<Q", crc64(0, data))


def test_options_and_errors_match_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    good = _payload(b"\x00\x03abc")
    cases: list[tuple[str | bytes, ...]] = [
        ("set", "str", "v"),
        ("dump", "missing"),
        ("restore", "str", "0", good),
        ("restore", "str", "0", good, "replace"),
        ("get", "str"),
        ("restore", "n", "-1", good),
        ("restore", "n", "x", good),
        ("restore", "n", "0", good[:-1] + b"x"),
        ("restore", "n", "0", b"abc"),
        ("restore", "n", "0", good, "foo"),
        ("restore", "n", "0", good, "idletime", "-1"),
        ("restore", "n", "0", good, "idletime", "5", "freq", "3"),
        ("restore", "n", "0", good, "freq", "300"),
        ("restore", "n", "0", good, "freq", "3", "idletime", "3"),
        ("restore", "n", "0", good, "idletime"),
        ("restore", "f", "0", good, "freq", "3"),
        ("restore", "i", "0", good, "idletime", "3"),
        ("restore", "str", "0", good, "replace", "idletime", "x"),
        ("restore", "t", "100000", good),
        ("pttl", "t"),
        ("restore", "past", "1000", good, "absttl"),
        ("exists", "past"),
        ("restore", "str", "1000", good, "absttl", "replace"),  # replaced by nothing
        ("exists", "str"),
        ("restore", "v", "0", _payload(b"\x00\x03abc", 11)),  # a newer RDB version
        ("restore", "v", "0", _payload(b"\x00\x03abc", 9)),
        ("restore", "w", "0", _payload(b"\x00\x05abc")),  # read on into the footer
        ("get", "w"),
        ("restore", "x", "0", _payload(b"\x02\x00")),  # an empty set
        ("restore", "x", "0", _payload(b"\x63\x00")),  # no such type
        ("restore", "x", "0", _payload(b"\x00\x03abcdef")),  # bytes left over
        ("restore", "y", "0", _payload(b"")),
        ("restore", "y", "0", _payload(b"\x01\x02\x01a")),  # cut short
        ("get", "v"),
        ("get", "x"),
    ]
    with Raw(redis_port) as theirs, Raw(port) as ours:
        theirs.call("FLUSHALL")
        ours.call("FLUSHALL")
        for command in cases:
            expected, got = theirs.call(*command), ours.call(*command)
            if command[0] == "pttl":
                assert abs(int(got[1:-2]) - int(expected[1:-2])) < 2000
                continue
            assert got == expected, f"{command!r}: redis {expected!r}, kv {got!r}"
