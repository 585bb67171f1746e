"""kv answers as Redis 7 does, byte for byte: the same command sequences go to kv and to a
real redis-server, and every reply must be identical.

The sequences cover each command's normal replies and its errors: wrong arity, wrong type,
not an integer, unknown command and subcommand, syntax errors and overflows. They avoid what
legitimately differs (connection ids, set and hash-table orders, CONFIG values, INFO, the
list of commands) and times that tick (TTLs are asked only where they are exact).
"""

from __future__ import annotations

import hiredis
import pytest

from .helpers import Raw, replies_after_flush, resp

Case = list[tuple[str | bytes | int, ...]]

CASES: dict[str, Case] = {
    "ping-echo": [
        ("PING",),
        ("ping", "hello"),
        ("ping", "a", "b"),
        ("echo", "x y"),
        ("echo",),
        ("ECHO", ""),
    ],
    "unknown-command": [
        ("foo",),
        ("foo", "a", "b"),
        ("FooBar", "a" * 200, "b"),
        ("x", *[str(i) for i in range(60)]),
        ("bad\r\nname", "arg\nwith\rbreaks"),
    ],
    "arity": [
        ("get",),
        ("GET", "a", "b"),
        ("set", "a"),
        ("mset", "a"),
        ("mset", "a", "1", "b"),
        ("hset", "h", "f"),
        ("hset", "h", "f", "v", "g"),
        ("lpush", "l"),
        ("sadd", "s"),
        ("lpop", "l", "1", "2"),
        ("dbsize", "x"),
        ("subscribe",),
        ("publish", "c"),
        ("expire", "k"),
        ("scan",),
        ("rename", "a"),
        ("hincrby", "h", "f"),
        ("config", "get"),
        ("client", "id", "x"),
        ("client", "setname"),
        ("command", "count", "x"),
    ],
    "strings": [
        ("set", "k", "v"),
        ("get", "k"),
        ("get", "missing"),
        ("set", "k", "v2", "GET"),
        ("set", "k", "v3", "NX"),
        ("set", "k", "v3", "NX", "GET"),
        ("set", "k2", "v", "XX"),
        ("set", "k2", "v", "XX", "GET"),
        ("set", "k", "v", "NX", "XX"),
        ("set", "k", "v", "EX", "10", "PX", "100"),
        ("set", "k", "v", "EX", "10", "KEEPTTL"),
        ("set", "k", "v", "KEEPTTL", "EX", "10"),
        ("set", "k", "v", "EX"),
        ("set", "k", "v", "EX", "x"),
        ("set", "k", "v", "EX", "0"),
        ("set", "k", "v", "PX", "-5"),
        ("set", "k", "v", "EX", "9223372036854775807"),
        ("set", "k", "v", "PXAT", "9223372036854775807"),
        ("set", "k", "v", "foo"),
        ("set", "k", "v", "EX", "100", "EX", "200"),
        ("set", "k", "v", "KEEPTTL"),
        ("set", "gone", "v", "EXAT", "1"),
        ("get", "gone"),
        ("getset", "k", "new"),
        ("getset", "fresh", "1"),
        ("mset", "a", "1", "b", "2", "a", "3"),
        ("mget", "a", "b", "nope"),
        ("setnx", "a", "x"),
        ("setnx", "c", "x"),
        ("append", "c", "yz"),
        ("append", "d", "new"),
        ("strlen", "c"),
        ("strlen", "none"),
        ("set", "e", ""),
        ("get", "e"),
        ("strlen", "e"),
    ],
    "counters": [
        ("incr", "n"),
        ("incrby", "n", "41"),
        ("decr", "n"),
        ("decrby", "n", "-10"),
        ("get", "n"),
        ("incrby", "n", "x"),
        ("incrby", "n", "1.5"),
        ("incrby", "n", "+1"),
        ("incrby", "n", "01"),
        ("incrby", "n", " 1"),
        ("incrby", "n", "-0"),
        ("incrby", "n", "99999999999999999999"),
        ("set", "max", "9223372036854775807"),
        ("incr", "max"),
        ("set", "min", "-9223372036854775808"),
        ("decr", "min"),
        ("decrby", "min", "-9223372036854775808"),
        ("decrby", "n", "-9223372036854775808"),
        ("set", "s", "abc"),
        ("incr", "s"),
        ("set", "s", "007"),
        ("incr", "s"),
        ("set", "s", "-0"),
        ("incr", "s"),
        ("set", "s", "12345678901234567890"),
        ("incr", "s"),
        ("set", "s", "-5"),
        ("incrby", "s", "5"),
        ("get", "s"),
    ],
    "wrongtype": [
        ("lpush", "list", "a"),
        ("get", "list"),
        ("set", "list", "x", "GET"),
        ("getset", "list", "x"),
        ("append", "list", "x"),
        ("strlen", "list"),
        ("incr", "list"),
        ("hset", "list", "f", "v"),
        ("hget", "list", "f"),
        ("hgetall", "list"),
        ("hmget", "list", "f"),
        ("hdel", "list", "f"),
        ("hlen", "list"),
        ("hincrby", "list", "f", "1"),
        ("sadd", "list", "m"),
        ("srem", "list", "m"),
        ("smembers", "list"),
        ("sismember", "list", "m"),
        ("scard", "list"),
        ("sadd", "set", "m"),
        ("lpush", "set", "a"),
        ("rpush", "set", "a"),
        ("lpop", "set"),
        ("rpop", "set", "2"),
        ("llen", "set"),
        ("lrange", "set", "0", "-1"),
        ("mget", "list", "set"),
        ("set", "list", "now-a-string"),
        ("get", "list"),
    ],
    "keys": [
        ("mset", "a", "1", "b", "2"),
        ("del", "a", "a", "zz"),
        ("exists", "a", "b", "b", "zz"),
        ("type", "b"),
        ("type", "zz"),
        ("rpush", "l", "x"),
        ("hset", "h", "f", "v"),
        ("sadd", "s", "m"),
        ("type", "l"),
        ("type", "h"),
        ("type", "s"),
        ("rename", "b", "c"),
        ("get", "c"),
        ("exists", "b"),
        ("rename", "c", "c"),
        ("rename", "nope", "x"),
        ("rename", "l", "c"),
        ("type", "c"),
        ("keys", "[cd]"),
        ("keys", "nomatch*"),
        ("dbsize",),
        ("del", "c", "h", "s"),
        ("dbsize",),
    ],
    "expire": [
        ("set", "k", "v"),
        ("ttl", "k"),
        ("pttl", "k"),
        ("ttl", "nope"),
        ("pttl", "nope"),
        ("expire", "nope", "10"),
        ("expire", "k", "x"),
        ("expire", "k", "10", "FOO"),
        ("expire", "k", "10", "NX", "XX"),
        ("expire", "k", "10", "GT", "LT"),
        ("expire", "k", "10", "XX"),
        ("expire", "k", "10", "GT"),
        ("expire", "k", "100", "NX"),
        ("ttl", "k"),
        ("expire", "k", "50", "NX"),
        ("expire", "k", "50", "GT"),
        ("expire", "k", "500", "GT"),
        ("expire", "k", "1000", "LT"),
        ("expire", "k", "5", "LT"),
        ("ttl", "k"),
        ("persist", "k"),
        ("persist", "k"),
        ("persist", "nope"),
        ("ttl", "k"),
        ("expire", "k", "9999999999999999"),
        ("pexpire", "k", "9223372036854775807"),
        ("expire", "k", "-9223372036854775808"),
        ("expire", "k", "-1"),
        ("exists", "k"),
        ("set", "k", "v", "EX", "100"),
        ("set", "k", "v2"),
        ("ttl", "k"),
        ("set", "k", "v", "PX", "100000"),
        ("incr", "k"),
        ("append", "k", "x"),
        ("getset", "k", "1"),
        ("pttl", "k"),
    ],
    "scan": [
        ("scan", "x"),
        ("scan", " 0"),
        ("scan", "0", "count", "0"),
        ("scan", "0", "count", "x"),
        ("scan", "0", "foo"),
        ("scan", "0", "match"),
        ("scan", "0"),
        ("set", "only", "1"),
        ("scan", "0"),
        ("scan", "0", "match", "o*", "count", "100"),
        ("scan", "0", "match", "x*"),
        ("scan", "0", "type", "string"),
        ("scan", "0", "type", "list"),
        ("scan", "", "count", "5"),
    ],
    "hashes": [
        ("hset", "h", "a", "1", "b", "2"),
        ("hset", "h", "a", "3", "c", "4"),
        ("hget", "h", "a"),
        ("hget", "h", "zz"),
        ("hget", "nohash", "a"),
        ("hmget", "h", "a", "zz", "c"),
        ("hmget", "nohash", "a", "b"),
        ("hgetall", "h"),
        ("hgetall", "nohash"),
        ("hlen", "h"),
        ("hlen", "nohash"),
        ("hdel", "h", "a", "a", "zz"),
        ("hdel", "nohash", "a"),
        ("hincrby", "h", "n", "5"),
        ("hincrby", "h", "n", "-7"),
        ("hincrby", "h", "n", "x"),
        ("hincrby", "h", "c", "1"),
        ("hset", "h", "t", "text"),
        ("hincrby", "h", "t", "1"),
        ("hset", "h", "m", "9223372036854775807"),
        ("hincrby", "h", "m", "1"),
        ("hdel", "h", "b", "c", "n", "t", "m"),
        ("exists", "h"),
        ("hincrby", "new", "f", "3"),
        ("hgetall", "new"),
    ],
    "lists": [
        ("lpush", "l", "a", "b", "c"),
        ("rpush", "l", "d", "e"),
        ("llen", "l"),
        ("llen", "nolist"),
        ("lrange", "l", "0", "-1"),
        ("lrange", "l", "1", "2"),
        ("lrange", "l", "-2", "-1"),
        ("lrange", "l", "-100", "100"),
        ("lrange", "l", "3", "1"),
        ("lrange", "l", "10", "20"),
        ("lrange", "l", "a", "1"),
        ("lrange", "nolist", "0", "-1"),
        ("lpop", "l"),
        ("rpop", "l"),
        ("lpop", "l", "0"),
        ("lpop", "l", "-1"),
        ("lpop", "l", "x"),
        ("rpop", "l", "2"),
        ("lpop", "l", "10"),
        ("exists", "l"),
        ("lpop", "l"),
        ("lpop", "l", "2"),
        ("rpop", "nolist", "0"),
        ("rpush", "big", *[str(i) for i in range(300)]),
        ("lrange", "big", "150", "160"),
        ("lrange", "big", "280", "-1"),
        ("lrange", "big", "0", "3"),
    ],
    "lists-and-keys-with-ttl": [  # the plain cases kv's C fast path runs, beside a time to live
        ("rpush", "l", "a", "b", "c", "d"),
        ("lindex", "l", "0"),
        ("lindex", "l", "-1"),
        ("lindex", "l", "4"),
        ("lindex", "l", "-5"),
        ("lindex", "l", "x"),
        ("lindex", "nolist", "0"),
        ("expire", "l", "100"),
        ("ttl", "l"),
        ("lrange", "l", "1", "-2"),
        ("llen", "l"),
        ("lindex", "l", "1"),
        ("rpop", "l", "3"),
        ("exists", "l", "l", "nope"),
        ("lpop", "l"),
        ("exists", "l"),
        ("ttl", "l"),
        ("set", "k", "v"),
        ("pexpire", "k", "100000"),
        ("ttl", "k"),
        ("expire", "k", "1000"),
        ("ttl", "k"),
        ("del", "k", "nope", "k"),
        ("ttl", "k"),
        ("mset", "a", "1", "b", "2"),
        ("expire", "a", "100"),
        ("del", "a", "b"),
        ("exists", "a", "b"),
        ("lpush", "s", "x"),
        ("lpop", "s", "5"),
        ("rpop", "s"),
        ("lpop", "s", "2"),
    ],
    "sets": [
        ("sadd", "s", "a", "b", "a"),
        ("sadd", "s", "b", "c"),
        ("scard", "s"),
        ("scard", "noset"),
        ("sismember", "s", "a"),
        ("sismember", "s", "z"),
        ("sismember", "noset", "a"),
        ("srem", "s", "a", "z"),
        ("srem", "noset", "a"),
        ("smembers", "noset"),
        ("srem", "s", "b", "c"),
        ("exists", "s"),
        ("sadd", "one", "x"),
        ("smembers", "one"),
    ],
    "server": [
        ("select", "0"),
        ("select", "x"),
        ("select", "99999999999"),
        ("dbsize",),
        ("set", "a", "1"),
        ("dbsize",),
        ("flushdb", "x"),
        ("flushdb", "sync", "x"),
        ("flushdb", "ASYNC"),
        ("dbsize",),
        ("set", "a", "1"),
        ("flushall",),
        ("dbsize",),
        ("config", "foo"),
        ("config", "get", "save"),
        ("config", "get", "appendonly"),
        ("config", "get", "no-such-parameter"),
        ("config", "get", "maxmemory"),
        ("client", "foo"),
        ("client", "getname"),
        ("client", "setname", "bad name"),
        ("client", "setname", "bad\nname"),
        ("client", "setname", "good-name"),
        ("client", "getname"),
        ("client", "setname", ""),
        ("client", "getname"),
        ("command", "foo"),
        ("info", "nosuchsection"),
    ],
    "transactions": [
        ("exec",),
        ("discard",),
        ("multi",),
        ("multi",),
        ("set", "a", "1"),
        ("incr", "a"),
        ("lpush", "a", "x"),
        ("get", "a"),
        ("exec",),
        ("multi",),
        ("set", "b", "1"),
        ("discard",),
        ("get", "b"),
        ("multi",),
        ("set", "b", "1"),
        ("nosuchcommand",),
        ("get", "b", "extra"),
        ("exec",),
        ("get", "b"),
        # A container's unknown subcommand or a subcommand's wrong arity is refused before it
        # is queued, and dooms the transaction; UNWATCH is queued.
        ("multi",),
        ("set", "c", "1"),
        ("xgroup", "nosuch"),
        ("exec",),
        ("multi",),
        ("object", "encoding"),
        ("exec",),
        ("multi",),
        ("unwatch",),
        ("config", "nosuch"),
        ("exec",),
        ("multi",),
        ("unwatch",),
        ("client", "getname"),
        ("exec",),
        ("command", "nosuch"),
        ("client", "setname", "a", "b"),
        ("get", "c"),
    ],
    "pubsub": [
        ("unsubscribe",),
        ("punsubscribe",),
        ("publish", "nobody", "hi"),
        ("unsubscribe", "never"),
        ("subscribe", "a"),
        ("subscribe", "a"),
        ("get", "x"),
        ("set", "x", "1"),
        ("ping",),
        ("ping", "hi"),
        ("psubscribe", "a*"),
        ("unsubscribe", "a"),
        ("punsubscribe", "a*"),
        ("get", "x"),
        ("ping",),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_replies_match_redis(name: str, kv_process: object, redis_port: int) -> None:
    case = CASES[name]
    port = kv_process.port  # type: ignore[attr-defined]
    theirs_all, ours_all = (
        replies_after_flush(where, case, _reply_count(case)) for where in (redis_port, port)
    )
    for command, theirs, ours in zip(case, theirs_all, ours_all, strict=True):
        assert ours == theirs, f"{command!r}: redis {theirs!r}, kv {ours!r}"


def _reply_count(case: Case) -> int:
    """Replies a sequence gets: one per command, one per channel of a (un)subscribe."""
    count = 0
    for command in case:
        name = str(command[0]).lower()
        if name in ("subscribe", "psubscribe", "unsubscribe", "punsubscribe"):
            count += max(len(command) - 1, 1)
        else:
            count += 1
    return count


def test_pipelined_inline_and_multibulk_match_redis(kv_process: object, redis_port: int) -> None:
    """Inline commands, quoting, and inline mixed with multibulk in one write."""
    data = (
        b"SET a 1\r\n"
        b'SET "b c" "x\\x41\\ny"\r\n'
        b"GET 'b c'\r\n"
        b"  \r\n" + resp("GET", "a") + b"MGET a 'b c' d\n"
        b'ECHO "\\"quoted\\"" \r\n'
        b"ECHO 'it\\'s'\r\n"
        b"ECHO tab\there\r\n"
    )
    port = kv_process.port  # type: ignore[attr-defined]
    got = {}
    for server, where in (("redis", redis_port), ("kv", port)):
        with Raw(where) as client:
            client.call("FLUSHALL")
            client.send(data)
            got[server] = client.replies(8)
    assert got["kv"] == got["redis"]


KEYS = [
    "", "a", "b", "ab", "abc", "a*c", "a?c", "a[c", "a]c", "a\\c", "x-y", "hello", "hallo",
    "hxllo", "hllo", "heeeello", "\x00key", "key:1", "key:22", "KEY:1", "-", "^", "z",
]  # fmt: skip
PATTERNS = [
    "*", "**", "a*", "*c", "a?c", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "h[b-a]llo", "h*llo",
    "a\\*c", "a\\?c", "a[*]c", "a[\\]]c", "a[", "a[c", "[", "[]", "[^]", "key:[0-9]",
    "key:[0-9]*", "*[-]*", "[\\^]", "?", "", "\\", "a\\", "x[a-]y", "h[^a-e]llo", "*:*",
]  # fmt: skip


@pytest.mark.parametrize("pattern", PATTERNS)
def test_glob_patterns_match_as_in_redis(pattern: str, kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    found = {}
    for server, where in (("redis", redis_port), ("kv", port)):
        with Raw(where) as client:
            client.call("FLUSHALL")
            client.send(b"".join(resp("SET", key, "v") for key in KEYS))
            client.replies(len(KEYS))
            reply = client.call("KEYS", pattern)
            found[server] = sorted(reply.split(b"\r\n")[2::2])
    assert found["kv"] == found["redis"]


def test_every_command_with_too_few_arguments_answers_as_redis(
    kv_process: object, redis_port: int
) -> None:
    """Every command kv lists in COMMAND, sent with each count of arguments below its arity
    (on a key of each type), gets Redis's own error, and the server lives on: ZPOPMIN with no
    key once read past the end of the request in the C fast path."""
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(port) as ours, Raw(redis_port) as theirs:
        reader = hiredis.Reader()
        reader.feed(ours.call("COMMAND"))
        table = reader.gets()
        assert isinstance(table, list) and len(table) > 200
        for client in (ours, theirs):
            client.call("FLUSHALL")
            for command in [("set", "s", "1"), ("rpush", "l", "a"), ("zadd", "z", "1", "m")]:
                client.call(*command)
        asked = 0
        for entry in table:
            name, arity = entry[0].decode(), entry[1]
            for argc in range(1, abs(arity)):
                for key in ("s", "l", "z"):
                    command = (name, *[key] * (argc - 1))
                    asked += 1
                    assert ours.call(*command) == theirs.call(*command), command
        assert asked > 300 and ours.call("PING") == b"+PONG\r\n"
