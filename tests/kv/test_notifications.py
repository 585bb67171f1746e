"""Keyspace notifications as redis-server 7.0 sends them: a subscriber to ``__key*__:*`` on
kv and on redis-server, the same commands run on both, and the messages received compared in
order, byte for byte; the setting's parsing and canonical form compared too."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pytest

from residentd.apps.kv.notifications import flags_text, parse_flags

from .helpers import KvThread, Raw, resp
from .test_lists import wait_blocked

Command = tuple[str | bytes, ...]

# Every write command kv has, in its notifying and its silent cases.
COMMANDS: list[Command] = [
    ("SET", "s", "1"), ("SET", "s", "2", "NX"), ("SET", "s", "3", "XX", "EX", "100"),
    ("SET", "t", "v", "GET"), ("SET", "u", "v", "KEEPTTL"), ("SET", "past", "v", "EXAT", "1"),
    ("EXISTS", "past"),
    ("SETNX", "s", "x"), ("SETNX", "n1", "x"), ("SETEX", "e", "100", "v"),
    ("PSETEX", "e", "100000", "v"), ("GETSET", "s", "9"), ("MSET", "m1", "1", "m2", "2"),
    ("MSETNX", "m1", "1", "m3", "3"), ("MSETNX", "m4", "1", "m5", "3"), ("INCR", "i"),
    ("DECR", "i"), ("INCRBY", "i", "5"), ("DECRBY", "i", "2"), ("INCRBYFLOAT", "f", "1.5"),
    ("APPEND", "a", "x"), ("APPEND", "a", "y"), ("SETRANGE", "r", "2", "ab"),
    ("SETRANGE", "r", "0", ""), ("SETRANGE", "rr", "0", ""), ("GETDEL", "a"),
    ("GETDEL", "a"), ("GETEX", "s", "EX", "100"), ("GETEX", "s", "PERSIST"),
    ("GETEX", "s", "PERSIST"), ("GETEX", "s"), ("GETEX", "s", "PXAT", "1"),
    ("SETBIT", "b", "7", "1"), ("BITFIELD", "bf", "SET", "u8", "0", "255"),
    ("BITFIELD", "bf", "GET", "u8", "0"),
    ("BITFIELD", "bf", "OVERFLOW", "FAIL", "INCRBY", "u8", "0", "10"),
    ("BITOP", "OR", "bo", "b", "bf"), ("BITOP", "AND", "bo", "nothing"),
    ("DEL", "m1", "m1", "nope", "m2"), ("UNLINK", "m3", "m4"), ("SET", "k", "v"),
    ("EXPIRE", "k", "100"), ("PEXPIRE", "k", "100000"), ("EXPIREAT", "k", "99999999999"),
    ("PEXPIREAT", "k", "99999999999000"), ("EXPIRE", "nope", "10"), ("PERSIST", "k"),
    ("PERSIST", "k"), ("EXPIRE", "k", "-1"), ("SET", "k", "v"), ("RENAME", "k", "k2"),
    ("RENAME", "k2", "k2"), ("SET", "k3", "x"), ("RENAME", "k2", "k3"),
    ("RENAMENX", "k3", "f"), ("RENAMENX", "k3", "k4"), ("COPY", "k4", "k5"),
    ("COPY", "k4", "k5"), ("COPY", "k4", "k5", "REPLACE"),
    ("LPUSH", "l", "a", "b"), ("RPUSH", "l", "c"), ("LPOP", "l"), ("RPOP", "l", "5"),
    ("LPOP", "l"), ("RPUSH", "l", "3", "1", "2"), ("SORT", "l", "STORE", "sorted"),
    ("SORT", "nope", "STORE", "sorted"), ("SORT", "l"),
    ("LPUSHX", "nolist", "a"), ("RPUSHX", "l", "x"), ("LPUSHX", "l", "y"),
    ("LSET", "l", "0", "z"), ("LINSERT", "l", "BEFORE", "z", "w"),
    ("LINSERT", "l", "BEFORE", "nope", "w"), ("LINSERT", "nolist", "AFTER", "a", "b"),
    ("LREM", "l", "0", "nope"), ("LREM", "l", "1", "w"), ("LTRIM", "nolist", "0", "1"),
    ("LTRIM", "l", "0", "2"), ("RPUSH", "src", "1", "2"), ("LMOVE", "src", "dst", "LEFT", "RIGHT"),
    ("RPOPLPUSH", "src", "dst"), ("RPOPLPUSH", "src", "dst"),
    ("LMOVE", "dst", "dst", "RIGHT", "LEFT"),
    ("BLMOVE", "dst", "src", "RIGHT", "LEFT", "0"), ("BRPOPLPUSH", "src", "dst", "0"),
    ("LMPOP", "2", "nolist", "dst", "RIGHT", "COUNT", "5"), ("RPUSH", "b1", "a", "b"),
    ("BLPOP", "nolist", "b1", "0"), ("BRPOP", "b1", "0"), ("RPUSH", "b2", "a", "b", "c"),
    ("BLMPOP", "0", "1", "b2", "LEFT"), ("LTRIM", "b2", "5", "6"), ("LTRIM", "b2", "0", "1"),
    ("ZADD", "bz", "1", "a", "2", "b", "3", "c"), ("BZPOPMIN", "bz", "0"),
    ("BZPOPMAX", "nope", "bz", "0"), ("BZMPOP", "0", "1", "bz", "MIN"),
    ("HSET", "h", "f", "1", "g", "2"), ("HMSET", "h", "f", "3"), ("HSETNX", "h", "f", "x"),
    ("HSETNX", "h", "n", "x"), ("HINCRBY", "h", "f", "2"), ("HINCRBYFLOAT", "h", "f", "0.5"),
    ("HDEL", "h", "nope"), ("HDEL", "h", "f", "g"), ("HDEL", "h", "n"),
    ("SADD", "st", "a", "b", "c"), ("SADD", "st", "a"), ("SREM", "st", "z"),
    ("SREM", "st", "a"), ("SMOVE", "st", "st2", "b"), ("SADD", "st2", "c"),
    ("SMOVE", "st", "st2", "c"), ("SMOVE", "st2", "st2", "c"), ("SADD", "so", "x"),
    ("SPOP", "so"), ("SPOP", "so"), ("SADD", "so", "x", "y"), ("SPOP", "so", "0"),
    ("SPOP", "so", "5"), ("SADD", "p", "1", "2"), ("SADD", "q", "2", "3"),
    ("SINTERSTORE", "dst", "p", "q"), ("SUNIONSTORE", "dst", "p", "q"),
    ("SDIFFSTORE", "dst", "p", "p"), ("SDIFFSTORE", "dst", "p", "p"),
    ("ZADD", "z", "1", "a", "2", "b"), ("ZADD", "z", "1", "a"), ("ZADD", "z", "5", "a"),
    ("ZADD", "z", "NX", "9", "a"), ("ZADD", "z", "INCR", "1", "a"),
    ("ZADD", "z", "XX", "INCR", "1", "nope"), ("ZINCRBY", "z", "1", "c"),
    ("ZREM", "z", "nope"), ("ZREM", "z", "c"), ("ZADD", "z", "3", "c", "4", "d"),
    ("ZREMRANGEBYRANK", "z", "0", "0"), ("ZREMRANGEBYSCORE", "z", "100", "200"),
    ("ZREMRANGEBYSCORE", "z", "3", "3"), ("ZREMRANGEBYLEX", "z", "[a", "[b"),
    ("ZPOPMIN", "z"), ("ZPOPMAX", "z", "5"), ("ZPOPMIN", "z"), ("ZADD", "z", "1", "a", "2", "b"),
    ("ZMPOP", "2", "nope", "z", "MAX"), ("ZMPOP", "1", "z", "MIN", "COUNT", "9"),
    ("ZADD", "z1", "1", "a"), ("ZADD", "z2", "2", "a", "3", "b"),
    ("ZUNIONSTORE", "zd", "2", "z1", "z2"), ("ZINTERSTORE", "zd", "2", "z1", "z2"),
    ("ZDIFFSTORE", "zd", "2", "z1", "z2"), ("ZDIFFSTORE", "zd", "1", "nope"),
    ("ZRANGESTORE", "zr", "z2", "0", "-1"), ("ZRANGESTORE", "zr", "z2", "5", "9"),
    ("PFADD", "h", "a"), ("PFADD", "h", "a"), ("PFADD", "h2"), ("PFMERGE", "h3", "h", "h2"),
    ("GEOADD", "g", "13.36", "38.11", "p1"), ("GEOADD", "g", "13.36", "38.11", "p1"),
    ("GEOADD", "g", "13.37", "38.11", "p1"), ("GEOADD", "g", "XX", "CH", "13.38", "38.1", "p1"),
    ("GEOSEARCHSTORE", "gs", "g", "FROMLONLAT", "13", "38", "BYRADIUS", "500", "km"),
    ("GEOSEARCHSTORE", "gs", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"),
    ("GEORADIUS", "g", "13", "38", "500", "km", "STORE", "gr"),
    ("GEORADIUS", "g", "13", "38", "5", "km"),
    ("GEORADIUSBYMEMBER", "g", "p1", "10", "km", "STOREDIST", "gd"), ("SET", "m", "v"),
    ("MOVE", "m", "1"), ("MOVE", "m", "1"), ("SWAPDB", "0", "1"), ("SWAPDB", "0", "1"),
    ("RESTORE", "rs", "0", b"\x00\x01v\n\x00\x91\x08\xce\xb2\x198\x8a\xce"),
    ("XADD", "x1", "1-1", "f", "v"), ("XADD", "x1", "MAXLEN", "1", "2-1", "f", "v"),
    ("XADD", "x1", "NOMKSTREAM", "*", "f", "v"), ("XADD", "x0", "NOMKSTREAM", "*", "f", "v"),
    ("XDEL", "x1", "2-1"), ("XDEL", "x1", "9-9"), ("XADD", "x1", "3-1", "f", "v"),
    ("XTRIM", "x1", "MAXLEN", "0"), ("XTRIM", "x1", "MAXLEN", "0"), ("XADD", "x1", "4-1", "f", "v"),
    ("XGROUP", "CREATE", "x1", "g", "0"), ("XGROUP", "CREATE", "x2", "g", "$", "MKSTREAM"),
    ("XGROUP", "CREATECONSUMER", "x1", "g", "c"), ("XGROUP", "CREATECONSUMER", "x1", "g", "c"),
    ("XREADGROUP", "GROUP", "g", "c2", "STREAMS", "x1", ">"), ("XACK", "x1", "g", "4-1"),
    ("XCLAIM", "x1", "g", "c3", "0", "4-1"), ("XAUTOCLAIM", "x1", "g", "c4", "0", "0"),
    ("XGROUP", "DELCONSUMER", "x1", "g", "c"), ("XGROUP", "DELCONSUMER", "x1", "g", "c"),
    ("XGROUP", "SETID", "x1", "g", "0"), ("XSETID", "x1", "5-0"), ("XGROUP", "DESTROY", "x1", "g"),
    ("XGROUP", "DESTROY", "x1", "g"),
    ("MULTI",), ("SET", "x", "1"), ("INCR", "x"), ("LPUSH", "x", "wrong"), ("EXEC",),
    ("LPUSH", "s", "wrongtype"), ("GET", "s"),
]  # fmt: skip

END = "end-of-test"


def _short(message: bytes) -> str:
    """A pmessage as "channel message" (the test compares the bytes of each part)."""
    parts = message.split(b"\r\n")
    assert parts[:4] == [b"*4", b"$8", b"pmessage", b"$10"], message
    return f"{parts[6].decode()} {parts[8].decode()}"


@contextlib.contextmanager
def _listening(port: int, setting: str) -> Iterator[tuple[Raw, Callable[[], list[str]]]]:
    """A client, with the setting on and a subscriber to every keyspace channel; and what
    gives the messages that subscriber has received."""
    with Raw(port) as client, Raw(port) as listener:
        client.call("FLUSHALL")
        assert client.call("CONFIG", "SET", "notify-keyspace-events", setting) == b"+OK\r\n"

        def received() -> list[str]:
            client.call("PUBLISH", END, "done")
            messages = []
            while (message := listener.replies(1)[0]) != resp("message", END, "done"):
                messages.append(_short(message))
            return messages

        try:
            listener.call("PSUBSCRIBE", "__key*__:*")
            listener.call("SUBSCRIBE", END)
            yield client, received
        finally:
            client.call("CONFIG", "SET", "notify-keyspace-events", "")


def _events(port: int, setting: str, commands: list[Command]) -> list[str]:
    """What a subscriber to every keyspace channel receives while ``commands`` run."""
    with _listening(port, setting) as (client, received):
        client.send(b"".join(resp(*command) for command in commands))
        client.replies(len(commands))
        return received()


def test_every_write_command_notifies_as_redis_does(kv: KvThread, redis_port: int) -> None:
    ours = _events(kv.port, "AKEn", COMMANDS)
    theirs = _events(redis_port, "AKEn", COMMANDS)
    assert ours == theirs
    for event in ("restore rs", "move_to m", "xtrim x1", "xgroup-delconsumer x1", "pfadd h3"):
        assert f"__keyevent@0__:{event}" in ours or f"__keyevent@1__:{event}" in ours


# Writes that, on what they find, change nothing: Redis sends no event for them (and
# journals nothing); each is next to one that does change its key.
UNCHANGED: list[Command] = [
    ("ZADD", "z", "1", "a"), ("ZINCRBY", "z", "0", "a"), ("ZADD", "z", "INCR", "0", "a"),
    ("ZINCRBY", "z", "1", "a"), ("SET", "s", "v"), ("SETBIT", "s", "1", "1"),
    ("SETBIT", "s", "0", "1"), ("SADD", "t", "a"), ("SMOVE", "t", "t", "a"),
    ("GETEX", "s", "PERSIST"), ("GETEX", "s", "EX", "100"), ("GETEX", "s", "PERSIST"),
    ("SINTERSTORE", "d", "t", "none"), ("SINTERSTORE", "d", "t"), ("SINTERSTORE", "d", "none"),
    ("BITOP", "AND", "e", "none"), ("SORT", "none", "STORE", "e"),
    ("ZRANGESTORE", "e", "none", "0", "-1"),
]  # fmt: skip


def test_writes_that_change_nothing_notify_nothing(kv: KvThread, redis_port: int) -> None:
    ours = _events(kv.port, "AKE", UNCHANGED)
    assert ours == _events(redis_port, "AKE", UNCHANGED)
    assert "__keyevent@0__:zincr z" in ours and "__keyevent@0__:del d" in ours


# Lookups of missing keys, by read commands and by writes that read first.
MISSES: list[Command] = [
    ("SET", "s", "v"), ("GET", "s"), ("GET", "nope"), ("MGET", "s", "n1", "n2"),
    ("EXISTS", "nope", "s"), ("TYPE", "nope"), ("STRLEN", "nope"), ("GETRANGE", "nope", "0", "1"),
    ("TTL", "nope"), ("PTTL", "nope"), ("EXPIRETIME", "nope"), ("OBJECT", "ENCODING", "nope"),
    ("DUMP", "nope"), ("SORT", "nope"), ("SORT_RO", "nope"), ("LRANGE", "nope", "0", "-1"),
    ("LLEN", "nope"), ("LINDEX", "nope", "0"), ("LPOS", "nope", "a"), ("HGET", "nope", "f"),
    ("HGETALL", "nope"), ("HMGET", "nope", "a", "b"), ("HEXISTS", "nope", "f"), ("HLEN", "nope"),
    ("HRANDFIELD", "nope"), ("SMEMBERS", "nope"), ("SISMEMBER", "nope", "a"), ("SCARD", "nope"),
    ("SRANDMEMBER", "nope"), ("SINTER", "nope", "s2"), ("SUNION", "nope"), ("ZSCORE", "nope", "a"),
    ("ZRANGE", "nope", "0", "-1"), ("ZRANK", "nope", "a"), ("ZCARD", "nope"),
    ("ZCOUNT", "nope", "0", "1"), ("XRANGE", "nope", "-", "+"), ("XLEN", "nope"),
    ("PFCOUNT", "nope"), ("GEOPOS", "nope", "a"), ("BITCOUNT", "nope"), ("GETBIT", "nope", "1"),
    ("SET", "n3", "v", "GET"), ("GETDEL", "nope"), ("GETEX", "nope"), ("GETSET", "n4", "v"),
    ("APPEND", "n5", "x"), ("INCR", "n6"), ("LPUSH", "n7", "a"), ("COPY", "nope", "n8"),
    ("RENAME", "nope", "n9"), ("LMOVE", "nope", "n10", "LEFT", "LEFT"), ("ZUNION", "1", "nope"),
    ("SINTERCARD", "1", "nope"), ("LCS", "nope", "s"), ("SET", "x", "1", "PX", "1"),
]  # fmt: skip


@pytest.mark.parametrize("setting", ["KEm", "AKEm"])
def test_key_misses_are_notified_as_redis_does(kv: KvThread, redis_port: int, setting: str) -> None:
    assert _events(kv.port, setting, MISSES) == _events(redis_port, setting, MISSES)


# A blocked command, and the write that serves it later.
SERVED: list[tuple[Command, Command]] = [
    (("BLPOP", "q1", "q0", "0"), ("RPUSH", "q1", "a")),
    (("BRPOP", "q2", "0"), ("RPUSH", "q2", "a", "b")),
    (("BLMOVE", "q3", "d3", "LEFT", "RIGHT", "0"), ("LPUSH", "q3", "a")),
    (("BRPOPLPUSH", "q4", "d4", "0"), ("LPUSH", "q4", "a", "b")),
    (("BLMPOP", "0", "1", "q5", "LEFT", "COUNT", "5"), ("RPUSH", "q5", "a", "b")),
    (("BZPOPMIN", "z1", "0"), ("ZADD", "z1", "1", "a")),
    (("BZPOPMAX", "z2", "0"), ("ZADD", "z2", "1", "a", "2", "b")),
    (("BZMPOP", "0", "1", "z3", "MAX", "COUNT", "3"), ("ZADD", "z3", "1", "a", "2", "b")),
]


def _served_events(port: int) -> list[str]:
    """What a subscriber receives while each blocked command is served by a later write."""
    with _listening(port, "AKEn") as (client, received):
        for blocked, write in SERVED:
            with Raw(port) as waiter:
                waiter.send(resp(*blocked))
                wait_blocked(port, 1)
                client.call(*write)
                assert waiter.replies(1)[0] not in (b"*-1\r\n", b"$-1\r\n")  # served
        return received()


def test_blocked_pops_served_later_notify_as_redis_does(kv: KvThread, redis_port: int) -> None:
    ours = _served_events(kv.port)
    assert ours == _served_events(redis_port)
    assert "__keyevent@0__:zpopmax z3" in ours


@pytest.mark.parametrize("setting", ["Kg", "E$", "Kl", "Eshz", "KEx"])
def test_only_the_classes_asked_for_are_sent(kv: KvThread, redis_port: int, setting: str) -> None:
    assert _events(kv.port, setting, COMMANDS) == _events(redis_port, setting, COMMANDS)


def test_expired_keys_are_notified_lazily_and_actively(kv: KvThread, redis_port: int) -> None:
    def expiring(port: int) -> list[str]:
        commands: list[Command] = [
            ("SET", "lazy", "v", "PX", "1"),
            ("SET", "active", "v", "PX", "1"),
        ]
        with Raw(port) as client, Raw(port) as listener:
            client.call("FLUSHALL")
            client.call("CONFIG", "SET", "notify-keyspace-events", "Ex")
            try:
                listener.call("PSUBSCRIBE", "__key*__:*")
                client.send(b"".join(resp(*command) for command in commands))
                client.replies(2)
                time.sleep(0.01)
                assert client.call("GET", "lazy") == b"$-1\r\n"  # expires on lookup
                received = listener.replies(2)  # the other by the active cycle
                return sorted(_short(message) for message in received)
            finally:
                client.call("CONFIG", "SET", "notify-keyspace-events", "")

    assert expiring(kv.port) == expiring(redis_port)


SETTINGS = ["", "AKE", "KEA", "A", "Kg", "g$lshzxetd", "AKEmn", "Exn", "KEAmnd", "$K", "nE"]


def test_the_setting_reads_back_as_redis_writes_it(kv: KvThread, redis_port: int) -> None:
    def read_back(port: int) -> list[bytes]:
        with Raw(port) as client:
            got = []
            for setting in [*SETTINGS, "Z", "AKE!"]:
                got.append(client.call("CONFIG", "SET", "notify-keyspace-events", setting))
                got.append(client.call("CONFIG", "GET", "notify-keyspace-events"))
            client.call("CONFIG", "SET", "notify-keyspace-events", "")
            return got

    assert read_back(kv.port) == read_back(redis_port)


def test_flags_round_trip() -> None:
    assert parse_flags("Z") is None
    assert flags_text(parse_flags("AKE") or 0) == "AKE"
    assert flags_text(parse_flags("Exn") or 0) == "xnE"
