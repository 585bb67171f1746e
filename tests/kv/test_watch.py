"""WATCH and UNWATCH as in Redis 7.0 (``multi.c``): two clients send the same sequences to kv
and to a real redis-server, and the replies must match byte for byte. A watched key touched
by the other client's write (the C fast path's commands included, a pipeline of them too),
by its own client's write, by its time passing, by FLUSHDB, FLUSHALL or SWAPDB makes EXEC
answer a null array (``*-1``, ``_`` in RESP3); a read, a write to another database, or a
flush that found no key does not."""

from __future__ import annotations

import pytest

from support import wait_until

from .helpers import KvThread, Raw, resp
from .scripts import compare, run_script
from .test_lists import wait_blocked

A, B = 0, 1


def transaction(*queued: tuple[str | int, ...]) -> list[tuple[object, ...]]:
    """Client A's MULTI, its queued commands, and EXEC."""
    return [(A, "MULTI"), *[(A, *command) for command in queued], (A, "EXEC")]


def touched_by(*steps: object) -> list[object]:
    """A watches k (and a key that is never touched), then ``steps``, then its EXEC."""
    return [
        (B, "SET", "k", "1"),
        (A, "WATCH", "k", "other"),
        *steps,
        *transaction(("INCR", "k"), ("GET", "k")),
        (A, "GET", "k"),
    ]


def watched_through(setup: list[tuple[str, ...]], step: tuple[str, ...]) -> list[object]:
    """B makes ``setup``, A watches d, B runs ``step``, then A's EXEC (null if d was touched)."""
    return [
        *[(B, *command) for command in setup],
        (A, "WATCH", "d"),
        (B, *step),
        *transaction(("PING",)),
    ]


GEO = ("GEOADD", "g", "1", "1", "m")
NEAR = ("1", "1", "1", "km")
# Writes that change d or leave it as it was, by Redis 7.0's signalModifiedKey: the
# destination of a STORE is touched (and only it), a store of nothing to a key that was not
# there, a SETBIT of a bit to what it was, a ZINCRBY by 0 and the like are not.
SIGNALLED: dict[str, tuple[list[tuple[str, ...]], tuple[str, ...]]] = {
    "geosearchstore-source": ([GEO, ("GEOADD", "d", "1", "1", "m")],
        ("GEOSEARCHSTORE", "x", "d", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km")),
    "geosearchstore-destination": ([GEO],
        ("GEOSEARCHSTORE", "d", "g", "FROMLONLAT", "1", "1", "BYRADIUS", "1", "km")),
    "georadius-store": ([GEO], ("GEORADIUS", "g", *NEAR, "STORE", "d")),
    "georadius-storedist": ([GEO], ("GEORADIUS", "g", *NEAR, "STOREDIST", "d")),
    "georadius-store-source": ([GEO, ("GEOADD", "d", "1", "1", "m")],
        ("GEORADIUS", "d", *NEAR, "STORE", "x")),
    "georadiusbymember-store": ([GEO], ("GEORADIUSBYMEMBER", "g", "m", "1", "km", "STORE", "d")),
    "georadius-store-nothing-over-a-key": ([GEO, ("SET", "d", "v")],
        ("GEORADIUS", "g", "50", "50", "1", "km", "STORE", "d")),
    "sort-store-source": ([("RPUSH", "d", "1")], ("SORT", "d", "STORE", "x")),
    "sort-store": ([("RPUSH", "l", "1")], ("SORT", "l", "STORE", "d")),
    "sinterstore-nothing": ([("SADD", "s", "a")], ("SINTERSTORE", "d", "s", "none")),
    "sinterstore-nothing-over-a-key": ([("SET", "d", "v")], ("SINTERSTORE", "d", "none")),
    "sunionstore-nothing": ([], ("SUNIONSTORE", "d", "none")),
    "sdiffstore-nothing": ([], ("SDIFFSTORE", "d", "none")),
    "zunionstore-nothing": ([], ("ZUNIONSTORE", "d", "1", "none")),
    "zinterstore-nothing": ([], ("ZINTERSTORE", "d", "1", "none")),
    "zdiffstore-nothing": ([], ("ZDIFFSTORE", "d", "1", "none")),
    "zrangestore-nothing": ([], ("ZRANGESTORE", "d", "none", "0", "-1")),
    "bitop-nothing": ([], ("BITOP", "AND", "d", "none")),
    "bitop-nothing-over-a-key": ([("SET", "d", "v")], ("BITOP", "AND", "d", "none")),
    "sort-store-nothing": ([], ("SORT", "none", "STORE", "d")),
    "zincrby-zero": ([("ZADD", "d", "1", "a")], ("ZINCRBY", "d", "0", "a")),
    "zincrby-one": ([("ZADD", "d", "1", "a")], ("ZINCRBY", "d", "1", "a")),
    "zadd-incr-zero": ([("ZADD", "d", "1", "a")], ("ZADD", "d", "INCR", "0", "a")),
    "setbit-same": ([("SET", "d", "v")], ("SETBIT", "d", "1", "1")),
    "setbit-changed": ([("SET", "d", "v")], ("SETBIT", "d", "0", "1")),
    "setbit-grows": ([("SET", "d", "v")], ("SETBIT", "d", "100", "0")),
    "setbit-creates": ([], ("SETBIT", "d", "0", "0")),
    "pfcount-caches": ([("PFADD", "d", "a")], ("PFCOUNT", "d")),
    "pfcount-cached": ([("PFADD", "d", "a"), ("PFCOUNT", "d")], ("PFCOUNT", "d")),
    "smove-within-one-set": ([("SADD", "d", "a")], ("SMOVE", "d", "d", "a")),
    "xsetid": ([("XADD", "d", "1-1", "f", "v")], ("XSETID", "d", "2-1")),
    "getex-persist-without-ttl": ([("SET", "d", "v")], ("GETEX", "d", "PERSIST")),
    "getex-persist": ([("SET", "d", "v", "EX", "100")], ("GETEX", "d", "PERSIST")),
}  # fmt: skip

CASES: dict[str, list[object]] = {
    **{f"signalled-{name}": watched_through(*case) for name, case in SIGNALLED.items()},
    "set-fast-path": touched_by((B, "SET", "k", "2")),
    "pipeline-fast-path": touched_by((B, [("GET", "k"), ("INCR", "k"), ("GET", "k")])),
    "incr": touched_by((B, "INCR", "k")),
    "del": touched_by((B, "DEL", "k")),
    "del-of-another-key": touched_by((B, "DEL", "other", "missing")),
    "expire": touched_by((B, "EXPIRE", "k", "100")),
    "expire-missing-key": touched_by((B, "EXPIRE", "missing", "100")),
    "set-nx-refused": touched_by((B, "SET", "k", "9", "NX")),
    "lpush-other": touched_by((B, "LPUSH", "l", "x")),
    "rename-from": touched_by((B, "RENAME", "k", "k2")),
    "rename-to": touched_by((B, "SET", "x", "5"), (B, "RENAME", "x", "k")),
    "sunionstore-source-only": touched_by(
        (B, "SADD", "s", "a"), (B, "SUNIONSTORE", "dest", "s", "other")
    ),
    "zadd-unchanged": [
        (B, "ZADD", "z", "1", "a"),
        (A, "WATCH", "z"),
        (B, "ZADD", "z", "1", "a"),
        (B, "ZADD", "z", "XX", "2", "missing"),
        *transaction(("ZSCORE", "z", "a")),
        (A, "WATCH", "z"),
        (B, "ZADD", "z", "3", "a"),
        *transaction(("ZSCORE", "z", "a")),
    ],
    "rename-to-itself": touched_by((B, "RENAME", "k", "k")),
    "bitfield-get": touched_by((B, "BITFIELD", "k", "GET", "u8", "0")),
    "bitfield-set": touched_by((B, "BITFIELD", "k", "SET", "u8", "0", "65")),
    "hset-same-value": [
        (B, "HSET", "h", "f", "v"),
        (A, "WATCH", "h"),
        (B, "HSET", "h", "f", "v"),
        *transaction(("HGET", "h", "f")),
    ],
    "sadd-existing": [
        (B, "SADD", "s", "m"),
        (A, "WATCH", "s"),
        (B, "SADD", "s", "m"),
        (B, "SREM", "s", "absent"),
        *transaction(("SCARD", "s")),
    ],
    "by-the-watcher-itself": touched_by((A, "SET", "k", "3")),
    "read-only": touched_by((B, "GET", "k"), (B, "EXISTS", "k"), (B, "TTL", "k")),
    "write-to-another-db": touched_by((B, "SELECT", "1"), (B, "SET", "k", "x"), (B, "DEL", "k")),
    "flushdb": touched_by((B, "FLUSHDB")),
    "flushdb-of-another-db": touched_by((B, "SELECT", "2"), (B, "FLUSHDB")),
    "flushall": touched_by((B, "FLUSHALL")),
    "flushall-key-missing": [
        (A, "WATCH", "k"),
        (B, "FLUSHALL"),
        *transaction(("SET", "k", "1")),
    ],
    "swapdb": touched_by((B, "SWAPDB", "0", "1")),
    "swapdb-key-in-neither": [
        (A, "WATCH", "nothing"),
        (B, "SET", "x", "1"),
        (B, "SWAPDB", "0", "1"),
        *transaction(("GET", "x")),
    ],
    "swapdb-key-in-the-other": [
        (A, "WATCH", "k"),
        (B, "SELECT", "3"),
        (B, "SET", "k", "1"),
        (B, "SWAPDB", "0", "3"),
        *transaction(("GET", "k")),
    ],
    "move-away": touched_by((B, "MOVE", "k", "4")),
    "move-in": [
        (A, "WATCH", "k"),
        (B, "SELECT", "4"),
        (B, "SET", "k", "1"),
        (B, "MOVE", "k", "0"),
        *transaction(("GET", "k")),
    ],
    "copy-into-db": [
        (A, "WATCH", "k"),
        (B, "SET", "src", "1"),
        (B, "SELECT", "5"),
        (B, "COPY", "src", "k", "DB", "0"),
        (B, "SELECT", "0"),
        (B, "COPY", "src", "k", "DB", "0"),
        *transaction(("GET", "k")),
    ],
    "unwatch": touched_by((A, "UNWATCH"), (B, "SET", "k", "2")),
    "discard-unwatches": [
        (B, "SET", "k", "1"),
        (A, "WATCH", "k"),
        (A, "MULTI"),
        (A, "DISCARD"),
        (B, "SET", "k", "2"),
        *transaction(("GET", "k")),
    ],
    "exec-unwatches": [
        (A, "WATCH", "k"),
        *transaction(("SET", "k", "1")),
        (B, "SET", "k", "2"),
        *transaction(("GET", "k")),
    ],
    "watch-inside-multi": [
        (A, "MULTI"),
        (A, "WATCH", "k"),
        (A, "SET", "k", "1"),
        (A, "EXEC"),
        (A, "WATCH"),
        (A, "UNWATCH", "extra"),
    ],
    "expired-while-watched": [
        (A, "SET", "k", "v", "PX", "50"),
        (A, "WATCH", "k"),
        0.08,
        *transaction(("SET", "k", "new")),
        (A, "GET", "k"),
    ],
    "expired-and-reclaimed-while-watched": [
        (A, "SET", "k", "v", "PX", "50"),
        (A, "WATCH", "k"),
        0.08,
        (B, "GET", "k"),
        *transaction(("SET", "k", "new")),
    ],
    "expired-before-watch": [
        (A, "SET", "k", "v", "PX", "20"),
        0.04,
        (A, "WATCH", "k"),
        (B, "GET", "k"),
        *transaction(("SET", "k", "new")),
    ],
    "watch-in-another-db": [
        (A, "SELECT", "6"),
        (A, "WATCH", "k"),
        (B, "SET", "k", "1"),
        *transaction(("SET", "k", "2")),
        (B, "SELECT", "6"),
        (A, "WATCH", "k"),
        (B, "SET", "k", "3"),
        *transaction(("SET", "k", "4")),
    ],
    "resp3-null": [
        (-1 - A, "HELLO", "3"),
        *touched_by((B, "SET", "k", "2")),
        (A, "WATCH", "k"),
        *transaction(("GET", "k")),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_watch_matches_redis(name: str, kv: KvThread, redis_port: int) -> None:
    compare(kv.port, redis_port, CASES[name])


def test_closed_and_finished_watchers_leave_no_entry(kv: KvThread) -> None:
    """Once its clients closed or ran EXEC, nobody watches: the writes need not consult it
    and the fast path is back."""
    run_script(kv.port, [(A, "WATCH", "a", "b"), (B, "WATCH", "a"), *transaction(("GET", "a"))])
    wait_until(lambda: kv.call(lambda: not kv.state.watches.keys), 5.0, "the watchers to go")


def _exec_after_served_move(port: int, watched: str) -> bytes:
    """A watches ``watched``; a blocked BLMOVE from q to d is served by a push to q; A's EXEC."""
    with Raw(port) as a, Raw(port) as blocked, Raw(port) as pusher:
        pusher.call("FLUSHALL")
        pusher.call("SET", "d0", "v")
        a.call("WATCH", watched)
        blocked.send(resp("BLMOVE", "q", "d", "LEFT", "RIGHT", "0"))
        wait_blocked(port, 1)
        pusher.call("LPUSH", "q0", "x")  # another key: touches nothing watched
        pusher.call("LPUSH", "q", "x")
        assert blocked.replies(1) == [b"$1\r\nx\r\n"]
        a.call("MULTI")
        a.call("SET", "k", "v")
        return a.call("EXEC")


@pytest.mark.parametrize("watched", ["d", "d0"])
def test_a_served_blocked_move_touches_its_destination(
    watched: str, kv: KvThread, redis_port: int
) -> None:
    ours = _exec_after_served_move(kv.port, watched)
    assert ours == _exec_after_served_move(redis_port, watched)
    assert ours == (b"*-1\r\n" if watched == "d" else b"*1\r\n+OK\r\n")
