"""kv's list commands answer as Redis 7.0's do: a seeded random sequence of list commands
(errors, negative indexes, LPOS options, LMPOP numkeys, wrong types, blocking commands inside
MULTI) goes to kv and to a real redis-server, reply for reply; then the blocking commands
are played with real sockets against both, and the sequences each client hears must match:
first blocked first served, timeouts, several keys, a push inside MULTI/EXEC or from a
pipeline, a pipelined client waiting behind its blocked command, BLMOVE feeding another
waiter, a client gone while blocked, CLIENT UNBLOCK. One restart with appendonly shows the
served pops are journaled as the non-blocking commands Redis logs.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from residentd.apps.kv import session as session_module
from residentd.apps.kv.store import Keyspace
from support import wait_until

from .helpers import KvProcess, KvThread, Raw, replies_after_flush, resp

Command = tuple[str, ...]

KEYS = ["a", "b", "c"]
OTHER = ["str", "hash"]  # keys of other types
VALUES = ["x", "y", "z", "1", ""]
INDEXES = ["0", "1", "-1", "-2", "2", "5", "-7", "x", "9223372036854775807", "-9223372036854775808"]


def _key(rng: random.Random) -> str:
    return rng.choice(KEYS) if rng.random() < 0.85 else rng.choice([*OTHER, "missing"])


def _values(rng: random.Random) -> list[str]:
    return [rng.choice(VALUES) for _ in range(rng.randint(1, 4))]


def _end(rng: random.Random) -> str:
    return rng.choice(
        ["LEFT", "RIGHT", "left", "Right", "middle"] if rng.random() < 0.2 else ["LEFT", "RIGHT"]
    )


def _lpos(rng: random.Random) -> Command:
    args = ["lpos", _key(rng), rng.choice(VALUES)]
    for _ in range(rng.randint(0, 3)):
        option = rng.choice(["RANK", "COUNT", "MAXLEN", "rank", "BOGUS"])
        value = rng.choice(["1", "2", "-1", "-2", "0", "3", "x", "-9223372036854775808"])
        args += [option, value] if rng.random() < 0.95 else [option]
    return tuple(args)


def _mpop(rng: random.Random, blocking: bool) -> Command:
    keys = [_key(rng) for _ in range(rng.randint(1, 3))]
    numkeys = rng.choice([str(len(keys))] * 6 + ["0", "-1", "x", str(len(keys) + 2)])
    args = ["blmpop", rng.choice(["0", "0.01"])] if blocking else ["lmpop"]
    args += [numkeys, *keys, _end(rng)]
    if rng.random() < 0.5:
        args += ["COUNT", rng.choice(["1", "2", "10", "0", "-1", "x"])]
    if rng.random() < 0.05:
        args += ["COUNT", "1"]
    return tuple(args)


def _blocking(rng: random.Random) -> Command:
    """A blocking command (sent inside MULTI, where it never blocks)."""
    timeout = rng.choice(["0", "0.01", "1"])
    kind = rng.randrange(5)
    if kind == 0:
        return ("blpop", *[_key(rng) for _ in range(rng.randint(1, 3))], timeout)
    if kind == 1:
        return ("brpop", _key(rng), timeout)
    if kind == 2:
        return ("blmove", _key(rng), _key(rng), _end(rng), _end(rng), timeout)
    if kind == 3:
        return ("brpoplpush", _key(rng), _key(rng), timeout)
    return _mpop(rng, blocking=True)


def random_command(rng: random.Random) -> list[Command]:
    """One list command (or a MULTI block around blocking ones), sometimes malformed."""
    key = _key(rng)
    kind = rng.randrange(22)
    if kind <= 2:
        return [(rng.choice(["lpush", "rpush"]), key, *_values(rng))]
    if kind == 3:
        return [(rng.choice(["lpushx", "rpushx"]), key, *_values(rng))]
    if kind == 4:
        count = [rng.choice(["0", "1", "3", "-1", "x"])] if rng.random() < 0.5 else []
        return [(rng.choice(["lpop", "rpop"]), key, *count)]
    if kind == 5:
        return [("lrange", key, rng.choice(INDEXES), rng.choice(INDEXES))]
    if kind == 6:
        return [("lindex", key, rng.choice(INDEXES))]
    if kind == 7:
        return [("lset", key, rng.choice(INDEXES), rng.choice(VALUES))]
    if kind == 8:
        where = rng.choice(["BEFORE", "AFTER", "after", "around"])
        return [("linsert", key, where, rng.choice(VALUES), rng.choice(VALUES))]
    if kind == 9:
        return [("lrem", key, rng.choice(["0", "1", "-1", "2", "-2", "x"]), rng.choice(VALUES))]
    if kind == 10:
        return [("ltrim", key, rng.choice(INDEXES), rng.choice(INDEXES))]
    if kind == 11:
        return [_lpos(rng)]
    if kind == 12:
        return [("lmove", key, _key(rng), _end(rng), _end(rng))]
    if kind == 13:
        return [("rpoplpush", key, _key(rng))]
    if kind == 14:
        return [_mpop(rng, blocking=False)]
    if kind == 15:
        return [("llen", key)]
    if kind == 16:
        return [("multi",), *(_blocking(rng) for _ in range(rng.randint(1, 3))), ("exec",)]
    if kind == 17:  # argument errors a blocking command answers before it could block
        bad = rng.choice(["-1", "x", "", "nan", " 1", "1e400", "inf", "-0.5"])
        return [rng.choice([("blpop", key, bad), ("blmove", key, "b", "LEFT", "LEFT", bad)])]
    if kind == 18:  # wrong arity
        return [
            rng.choice(
                [("lindex", key), ("lset", key, "0"), ("linsert", key, "BEFORE", "x"),
                 ("lmove", key, "b", "LEFT"), ("lmpop", "1", key), ("blpop", key),
                 ("lpushx", key), ("lpos", key), ("blmpop", "0", "1", key), ("rpoplpush", key),
                 ("lpop", key, "1", "2"), ("ltrim", key, "0")]
            )
        ]  # fmt: skip
    if kind == 19:
        return [("type", key), ("lrange", key, "0", "-1")]
    if kind == 20:
        return [("set", "str", "v"), ("hset", "hash", "f", "v")]
    return [("del", key)]


def sequence(seed: int, count: int) -> list[Command]:
    rng = random.Random(seed)
    commands: list[Command] = [("set", "str", "v"), ("hset", "hash", "f", "v")]
    while len(commands) < count:
        commands += random_command(rng)
    for key in [*KEYS, *OTHER]:
        commands += [("type", key), ("lrange", key, "0", "-1")]
    return commands


def test_random_list_commands_match_redis(kv: KvThread, redis_port: int) -> None:
    commands = sequence(seed=18, count=3000)
    ours = replies_after_flush(kv.port, commands, len(commands))
    theirs = replies_after_flush(redis_port, commands, len(commands))
    for index, (mine, peer) in enumerate(zip(ours, theirs, strict=True)):
        assert mine == peer, (index, commands[index])


def test_lpos_with_the_lowest_rank_matches_redis(kv: KvThread, redis_port: int) -> None:
    """RANK -9223372036854775808: Redis 7.0 negates it to itself, so every match is past the
    rank and its COUNT stop test overflows and never holds (found by more seeds of the random
    sequence above: kv stopped at COUNT)."""
    lowest = "-9223372036854775808"
    commands: list[Command] = [
        ("rpush", "l", "x", "y", "x", "x", "z", "x"),
        ("lpos", "l", "x", "RANK", lowest),
        ("lpos", "l", "x", "RANK", lowest, "COUNT", "1"),
        ("lpos", "l", "x", "COUNT", "2", "RANK", lowest),
        ("lpos", "l", "x", "RANK", lowest, "COUNT", "0"),
        ("lpos", "l", "x", "RANK", lowest, "COUNT", "1", "MAXLEN", "3"),
        ("lpos", "l", "x", "RANK", "-9223372036854775807", "COUNT", "1"),
        ("lpos", "l", "x", "RANK", "-2", "COUNT", "2"),
        ("lpos", "l", "q", "RANK", lowest, "COUNT", "1"),
    ]
    ours = replies_after_flush(kv.port, commands, len(commands))
    theirs = replies_after_flush(redis_port, commands, len(commands))
    for command, mine, peer in zip(commands, ours, theirs, strict=True):
        assert mine == peer, command


# -- blocking, with real sockets ----------------------------------------------------------------


Scenario = Callable[[int], list[bytes]]


def pipeline(*commands: Command) -> bytes:
    return b"".join(resp(*command) for command in commands)


def blocked_count(port: int) -> int:
    with Raw(port) as client:
        info = client.call("INFO", "clients").decode()
    return int(info.split("blocked_clients:")[1].split("\r\n")[0])


def wait_blocked(port: int, count: int) -> None:
    wait_until(lambda: blocked_count(port) == count, 5.0, f"{count} blocked clients")


def silent(client: Raw, seconds: float = 0.05) -> bool:
    """Whether nothing arrives within ``seconds``."""
    client.sock.settimeout(seconds)
    try:
        return not client.pending and not client.sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(5.0)


@contextmanager
def clients(port: int, count: int) -> Iterator[list[Raw]]:
    opened = [Raw(port) for _ in range(count)]
    try:
        opened[0].call("FLUSHALL")
        yield opened
    finally:
        for client in opened:
            client.close()


def fifo(port: int) -> list[bytes]:
    with clients(port, 4) as (first, second, third, pusher):
        for number, client in enumerate((first, second, third), 1):
            client.send(resp("BLPOP", "q", "0"))
            wait_blocked(port, number)
        heard = [pusher.call("RPUSH", "q", "1", "2")]
        heard += first.replies(1) + second.replies(1)
        assert silent(third)
        heard += [pusher.call("LPUSH", "q", "3"), *third.replies(1), pusher.call("EXISTS", "q")]
        return heard


def timeout(port: int) -> list[bytes]:
    with clients(port, 1) as (client,):
        started = time.monotonic()
        heard = [
            client.call("BLPOP", "none", "0.1"),
            client.call("BLMOVE", "none", "d", "LEFT", "LEFT", "0.05"),
        ]
        assert 0.14 <= time.monotonic() - started < 2.0
        heard.append(client.call("BLMPOP", "0.05", "2", "none", "none2", "LEFT"))
        return heard


def several_keys(port: int) -> list[bytes]:
    with clients(port, 2) as (waiter, pusher):
        waiter.send(resp("BRPOP", "k1", "k2", "k3", "0"))
        wait_blocked(port, 1)
        heard = [pusher.call("SET", "other", "x"), pusher.call("RPUSH", "k2", "a", "b")]
        heard += waiter.replies(1)
        waiter.send(resp("BLMPOP", "0", "2", "m1", "m2", "RIGHT", "COUNT", "5"))
        wait_blocked(port, 1)
        heard += [pusher.call("RPUSH", "m2", "1", "2", "3"), *waiter.replies(1)]
        heard += [pusher.call("LRANGE", "k2", "0", "-1"), pusher.call("EXISTS", "m2")]
        return heard


def multi_exec(port: int) -> list[bytes]:
    with clients(port, 3) as (waiter, other, pusher):
        waiter.send(resp("BLPOP", "q", "0"))
        wait_blocked(port, 1)
        pusher.send(
            pipeline(("MULTI",), ("RPUSH", "q", "a"), ("LPUSH", "q", "b"), ("LPOP", "q"), ("EXEC",))
        )
        heard = pusher.replies(5) + waiter.replies(1)
        # a blocking command inside MULTI does not block
        other.send(
            pipeline(
                ("MULTI",),
                ("BLPOP", "none", "0"),
                ("BRPOPLPUSH", "none", "x", "0"),
                ("BLMPOP", "0", "1", "none", "LEFT"),
                ("BLPOP", "q", "0"),
                ("EXEC",),
            )
        )
        heard += other.replies(6)
        return heard


def pipelines(port: int) -> list[bytes]:
    with clients(port, 3) as (waiter, blocked, pusher):
        waiter.send(resp("BLPOP", "q", "0"))
        wait_blocked(port, 1)
        # the push and a pop in one pipeline: the waiter is served between them
        pusher.send(resp("RPUSH", "q", "a", "b") + resp("LPOP", "q") + resp("LPOP", "q"))
        heard = pusher.replies(3) + waiter.replies(1)
        # commands pipelined behind a blocked one wait for it
        blocked.send(
            resp("PING")
            + resp("BLPOP", "p", "0")
            + resp("RPUSH", "r", "1")
            + resp("PING", "behind")
        )
        heard += blocked.replies(1)
        wait_blocked(port, 1)
        assert silent(blocked)
        blocked.send(resp("LLEN", "r"))
        assert silent(blocked)
        heard += [pusher.call("EXISTS", "r"), pusher.call("LPUSH", "p", "v")]
        heard += blocked.replies(4)
        return heard


def moves(port: int) -> list[bytes]:
    with clients(port, 3) as (mover, popper, pusher):
        mover.send(resp("BLMOVE", "src", "dst", "RIGHT", "LEFT", "0"))
        wait_blocked(port, 1)
        popper.send(resp("BRPOPLPUSH", "dst", "final", "0"))
        wait_blocked(port, 2)
        heard = [pusher.call("RPUSH", "src", "1", "2"), *mover.replies(1), *popper.replies(1)]
        heard += [pusher.call("LRANGE", k, "0", "-1") for k in ("src", "dst", "final")]
        # the destination of another type: the waiter hears WRONGTYPE, the element stays
        pusher.call("SET", "str", "v")
        mover.send(resp("BLMOVE", "s2", "str", "LEFT", "LEFT", "0"))
        wait_blocked(port, 1)
        heard += [
            pusher.call("RPUSH", "s2", "x"),
            *mover.replies(1),
            pusher.call("LRANGE", "s2", "0", "-1"),
        ]
        return heard


def gone(port: int) -> list[bytes]:
    with clients(port, 3) as (leaver, waiter, pusher):
        leaver.send(resp("BLPOP", "q", "0"))
        wait_blocked(port, 1)
        leaver.close()
        wait_blocked(port, 0)
        waiter.send(resp("BLPOP", "q", "0"))
        wait_blocked(port, 1)
        heard = [pusher.call("RPUSH", "q", "x"), *waiter.replies(1), pusher.call("LLEN", "q")]
        wait_blocked(port, 0)
        return heard


def unblock(port: int) -> list[bytes]:
    with clients(port, 2) as (waiter, other):
        waiter_id = int(waiter.call("CLIENT", "ID")[1:-2])
        heard = []
        for reason in ((), ("TIMEOUT",), ("ERROR",)):
            waiter.send(resp("BLPOP", "q", "0"))
            wait_blocked(port, 1)
            heard += [other.call("CLIENT", "UNBLOCK", str(waiter_id), *reason), *waiter.replies(1)]
        heard += [
            other.call("CLIENT", "UNBLOCK", str(waiter_id)),
            other.call("CLIENT", "UNBLOCK", str(waiter_id), "bad"),
            other.call("CLIENT", "UNBLOCK", "x"),
        ]
        return heard


def other_writes(port: int) -> list[bytes]:
    """Keys made by RENAME, LMOVE and a string in the way: served as Redis serves them."""
    with clients(port, 2) as (waiter, pusher):
        waiter.send(resp("BLPOP", "q", "0"))
        wait_blocked(port, 1)
        heard = [pusher.call("RPUSH", "tmp", "r"), pusher.call("RENAME", "tmp", "q")]
        heard += waiter.replies(1)
        waiter.send(resp("BRPOP", "q", "0"))
        wait_blocked(port, 1)
        heard += [pusher.call("SET", "q", "s"), pusher.call("RPUSH", "q", "x")]
        assert silent(waiter)
        heard += [pusher.call("DEL", "q"), pusher.call("RPUSH", "src", "m")]
        heard += [pusher.call("LMOVE", "src", "q", "LEFT", "LEFT"), *waiter.replies(1)]
        return heard


def resp3(port: int) -> list[bytes]:
    """A RESP3 client: its timeout and its served reply in RESP3 (a null is ``_``)."""
    with clients(port, 2) as (waiter, pusher):
        waiter.call("HELLO", "3")
        heard = [
            waiter.call("BLPOP", "q", "0.01"),
            waiter.call("BLMOVE", "q", "d", "LEFT", "LEFT", "0.01"),
        ]
        waiter.send(resp("BLMPOP", "0", "1", "q", "LEFT") + resp("LPOP", "none"))
        wait_blocked(port, 1)
        heard += [pusher.call("RPUSH", "q", "v"), *waiter.replies(2)]
        return heard


def sorted_sets(port: int) -> list[bytes]:
    """BZPOPMIN, BZPOPMAX and BZMPOP on the same machinery: first blocked, first served, a
    timeout, a wrong type, and the served replies in RESP2 and in RESP3 (a score a double)."""
    with clients(port, 4) as (first, second, waiter3, adder):
        heard = [first.call("BZPOPMIN", "z", "0.01"), adder.call("SET", "str", "x")]
        heard.append(first.call("BZPOPMAX", "str", "z", "0"))
        first.send(resp("BZPOPMIN", "z", "0"))
        wait_blocked(port, 1)
        second.send(resp("BZPOPMAX", "y", "z", "0"))
        wait_blocked(port, 2)
        waiter3.call("HELLO", "3")
        waiter3.send(resp("BZMPOP", "0", "2", "w", "z", "MAX", "COUNT", "2"))
        wait_blocked(port, 3)
        heard.append(adder.call("ZADD", "z", "1", "a", "2.5", "b", "3", "c", "4", "d"))
        heard += first.replies(1) + second.replies(1) + waiter3.replies(1)
        heard.append(adder.call("ZRANGE", "z", "0", "-1", "WITHSCORES"))
        waiter3.send(resp("BZPOPMIN", "w", "0"))
        wait_blocked(port, 1)
        heard += [adder.call("ZADD", "w", "-1.5", "m"), *waiter3.replies(1)]
        heard.append(waiter3.call("BZMPOP", "0.01", "1", "w", "MIN"))
        return heard


def overwritten(port: int) -> list[bytes]:
    """A key a client waits on for a list, holding a string, replaced by SORT ... STORE (or a
    sorted set's by ZUNIONSTORE): Redis's setKey overwrites it and wakes nobody, nor does a
    later push onto it; its deletion and creation anew, or a RENAME onto it, does."""
    with clients(port, 3) as (waiter, other, writer):
        waiter.send(resp("BLPOP", "l", "0"))
        other.send(resp("BZPOPMIN", "z", "0"))
        wait_blocked(port, 2)
        heard = [
            writer.call("SET", "l", "text"),
            writer.call("RPUSH", "src", "b", "a"),
            writer.call("SORT", "src", "ALPHA", "STORE", "l"),
            writer.call("SET", "z", "text"),
            writer.call("ZADD", "zsrc", "1", "m"),
            writer.call("ZUNIONSTORE", "z", "1", "zsrc"),
        ]
        assert silent(waiter) and silent(other)
        heard += [
            writer.call("LMOVE", "src", "l", "LEFT", "RIGHT"),
            writer.call("ZADD", "z", "0", "n"),
        ]
        assert silent(waiter) and silent(other)
        heard += [writer.call("DEL", "l"), writer.call("RPUSH", "l", "x"), *waiter.replies(1)]
        heard += [writer.call("RPUSH", "tmp", "y"), writer.call("RENAME", "zsrc", "z")]
        heard += [*other.replies(1), writer.call("LRANGE", "l", "0", "-1")]
        return heard


SCENARIOS: dict[str, Scenario] = {
    "sorted-sets": sorted_sets,
    "resp3": resp3,
    "other-writes": other_writes,
    "fifo": fifo,
    "timeout": timeout,
    "several-keys": several_keys,
    "multi-exec": multi_exec,
    "pipelines": pipelines,
    "moves": moves,
    "gone": gone,
    "unblock": unblock,
    "overwritten": overwritten,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_blocking_matches_redis(name: str, kv: KvThread, redis_port: int) -> None:
    scenario = SCENARIOS[name]
    assert scenario(kv.port) == scenario(redis_port)
    assert not kv.state.blocking.keys and not kv.state.blocking.clients


def test_fifo_replies(kv: KvThread) -> None:
    assert fifo(kv.port) == [
        b":2\r\n",
        b"*2\r\n$1\r\nq\r\n$1\r\n1\r\n",
        b"*2\r\n$1\r\nq\r\n$1\r\n2\r\n",
        b":1\r\n",
        b"*2\r\n$1\r\nq\r\n$1\r\n3\r\n",
        b":0\r\n",
    ]


def test_a_blocked_client_holds_its_later_commands(kv: KvThread) -> None:
    """More than the session holds (it stops reading past 1024): all answered once served."""
    with Raw(kv.port) as blocked, Raw(kv.port) as pusher:
        blocked.send(resp("BLPOP", "held", "0") + resp("PING") * 1500)
        wait_blocked(kv.port, 1)
        blocked.send(resp("PING") * 1500)
        assert silent(blocked)
        pusher.call("RPUSH", "held", "v")
        replies = blocked.replies(3001)
    assert replies[0] == b"*2\r\n$4\r\nheld\r\n$1\r\nv\r\n"
    assert set(replies[1:]) == {b"+PONG\r\n"}


@pytest.mark.skipif(session_module.execute_fast is None, reason="the C speedups are not built")
def test_the_fast_path_leaves_a_push_to_a_waited_key_to_python() -> None:
    execute = session_module.execute_fast
    assert execute is not None
    db = Keyspace()
    replies: list[bytes] = []
    pipeline = [[b"RPUSH", b"free", b"a"], [b"GET", b"waited"], [b"LPUSH", b"waited", b"a"]]
    assert execute(pipeline, 0, db, replies, None, {b"waited": None}) == 2
    assert execute(pipeline, 0, db, [], None, {}) == 3


def test_served_pops_are_journaled_as_redis_logs_them(tmp_path: Path) -> None:
    with KvProcess(
        "--dir", str(tmp_path), "--appendonly", "yes", "--appendfsync", "always"
    ) as daemon:
        pusher = redis.Redis(port=daemon.port, socket_timeout=5, protocol=2)
        with Raw(daemon.port) as waiter, Raw(daemon.port) as mover:
            waiter.send(resp("BLPOP", "q", "0"))
            mover.send(resp("BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"))
            wait_blocked(daemon.port, 2)
            pusher.rpush("q", "a", "b", "c")
            pusher.rpush("src", "1", "2")
            assert waiter.replies(1) == [b"*2\r\n$1\r\nq\r\n$1\r\na\r\n"]
            assert mover.replies(1) == [b"$1\r\n1\r\n"]
            pusher.blmpop(0, 1, "q", direction="RIGHT", count=5)
            pusher.rpush("l", "x", "y")
            pusher.linsert("l", "BEFORE", "y", "w")
            waiter.send(resp("BZPOPMIN", "z", "0"))
            wait_blocked(daemon.port, 1)
            pusher.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4})
            assert waiter.replies(1) == [b"*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\n1\r\n"]
            pusher.bzpopmax("z", 0)
            pusher.bzmpop(0, 1, ["z"], min=True, count=5)
            pusher.close()
        log = b"".join(
            path.read_bytes() for path in (tmp_path / "appendonlydir").glob("*.incr.aof")
        )
        assert resp("LPOP", "q") in log and resp("LMOVE", "src", "dst", "LEFT", "RIGHT") in log
        assert resp("RPOP", "q", "2") in log and b"BL" not in log
        assert resp("ZPOPMIN", "z") in log and resp("ZPOPMAX", "z") in log
        assert resp("ZPOPMIN", "z", "2") in log and b"BZ" not in log
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes") as again:
        r = redis.Redis(port=again.port, socket_timeout=5, protocol=2)
        assert r.keys("q") == [] and r.lrange("src", 0, -1) == [b"2"]
        assert r.lrange("dst", 0, -1) == [b"1"] and r.lrange("l", 0, -1) == [b"x", b"w", b"y"]
        assert r.exists("z") == 0
        r.close()
