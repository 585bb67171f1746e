"""kv's hash and set commands against a real redis-server 7.0: the same commands go to both, one
at a time, and the replies and the keyspace must match.

A fixed prologue covers the edge cases by name (HINCRBYFLOAT's parsing and errors, counts of
SPOP, SRANDMEMBER and HRANDFIELD, SINTERCARD's arguments, SCAN options); then a seeded random
sequence of a few thousand commands mixes every hash and set command with wrong types, wrong
arity, overflows, negative counts and missing keys. Replies whose order Redis leaves open are
compared sorted; a scan is run to its end on both and the elements compared. The random
commands are checked by their properties: SRANDMEMBER and HRANDFIELD reply as many elements
as Redis does, all of them in the collection (distinct for a positive count); SPOP's members
are distinct members of the set, and the same members are then removed from redis-server
with SREM, so both keyspaces stay equal.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import hiredis
import pytest
import redis

from residentd.apps.kv.persistence.aof import propagate
from residentd.apps.kv.sampling import pop
from residentd.apps.kv.store import Keyspace

from .helpers import KvProcess, Raw
from .persistence_peers import dataset, redis_on

Command = tuple[str, ...]

# Replies that are collections in no particular order.
UNORDERED = {"smembers", "sinter", "sunion", "sdiff", "hkeys", "hvals"}
PAIRS = {"hgetall"}
RANDOM = {"srandmember", "hrandfield"}
SCANS = {"sscan", "hscan"}

PROLOGUE: list[Command] = [
    ("hset", "f", "x", "10.5", "i", "5", "big", "1e4000", "inf", "inf", "sp", " 1", "t", "a"),
    ("hincrbyfloat", "f", "x", "0.1"),
    ("hincrbyfloat", "f", "i", "0.25"),
    ("hincrbyfloat", "f", "big", "1"),
    ("hincrbyfloat", "f", "new", "1.23456789012345678901"),
    ("hincrbyfloat", "f", "new", "3"),
    ("hincrbyfloat", "f", "inf", "1"),
    ("hincrbyfloat", "f", "sp", "1"),
    ("hincrbyfloat", "f", "t", "1"),
    ("hincrbyfloat", "f", "x", "inf"),
    ("hincrbyfloat", "f", "x", "-infinity"),
    ("hincrbyfloat", "f", "x", "nan"),
    ("hincrbyfloat", "f", "x", "1e5000"),
    ("hincrbyfloat", "f", "x", "1e-5000"),
    ("hincrbyfloat", "f", "tiny", "1e-4940"),
    ("hincrbyfloat", "f", "hex", "0x1p-3"),
    ("hincrbyfloat", "f", "hex", "0X10"),
    ("hincrbyfloat", "f", "x", "0x"),
    ("hincrbyfloat", "f", "x", " 1"),
    ("hincrbyfloat", "f", "x", "1 "),
    ("hincrbyfloat", "f", "x", ""),
    ("hincrbyfloat", "f", "x", "+.5"),
    ("hincrbyfloat", "f", "x", "5."),
    ("hincrbyfloat", "f", "x", "."),
    ("hincrbyfloat", "f", "x", "1e"),
    ("hincrbyfloat", "f", "x", "1\x00"),  # string2ld reads every byte: a NUL is not a float
    ("hincrbyfloat", "f", "x", "\x00"),
    ("hset", "f", "nul", "\x00", "nul1", "1\x00"),
    ("hincrbyfloat", "f", "nul", "1"),
    ("hincrbyfloat", "f", "nul1", "1"),
    ("hincrbyfloat", "f", "inf", "1e400"),  # an infinity beside a finite value past a float's
    ("hincrbyfloat", "f", "huge", "-229e4518"),  # 4522 digits: past Python's int-to-str limit
    ("hincrbyfloat", "f", "huge", "1" * 5119),
    ("hincrbyfloat", "f", "huge", "1" * 5120),  # too long for string2ld
    ("hincrbyfloat", "f", "max", "1.18973149535723176502e+4932"),
    ("hincrbyfloat", "f", "max", "1e4932"),
    ("hincrbyfloat", "f", "x", "1.18973149535723176509e+4932"),
    ("hincrbyfloat", "f", "x", "0x.8"),
    ("hincrbyfloat", "f", "x", "3.3621031431120935063e-4932"),
    ("hincrbyfloat", "f", "x", "-1e-4945"),
    ("hincrbyfloat", "f", "neg", "-1e-30"),
    ("hincrbyfloat", "f", "neg", "-0.0"),
    ("hincrbyfloat", "f", "neg", "-12.75"),
    ("hincrbyfloat", "nohash", "n", "2.5"),
    ("hincrbyfloat", "f", "x"),
    ("hgetall", "f"),
    ("hsetnx", "f", "x", "1"),
    ("hsetnx", "f", "fresh", "1"),
    ("hmset", "f"),
    ("hmset", "f", "a"),
    ("hmset", "f", "a", "1", "b"),
    ("hmset", "f", "a", "1", "b", "2"),
    ("hset", "f", "a", "1", "b"),
    ("hstrlen", "f", "a"),
    ("hstrlen", "f", "none"),
    ("hstrlen", "nohash", "a"),
    ("hexists", "f", "a"),
    ("hexists", "f", "none"),
    ("hexists", "nohash", "a"),
    ("hincrby", "f", "a", "9223372036854775807"),
    ("hincrby", "f", "a", "-9223372036854775808"),
    ("hincrby", "f", "x", "1"),
    ("hrandfield", "nohash"),
    ("hrandfield", "nohash", "3"),
    ("hrandfield", "nohash", "-3", "withvalues"),
    ("hrandfield", "f", "x"),
    ("hrandfield", "f", "x", "foo"),
    ("hrandfield", "f", "1", "foo"),
    ("hrandfield", "f", "1", "withvalues", "x"),
    ("hrandfield", "f", "0"),
    ("hrandfield", "f", "0", "WITHVALUES"),
    ("hrandfield", "f", "-9223372036854775808"),
    ("hrandfield", "f", "-9223372036854775807", "withvalues"),
    ("hrandfield", "f", "4611686018427387904", "withvalues"),
    ("hrandfield", "f", "-4611686018427387904", "withvalues"),
    ("hrandfield", "f", "4611686018427387903", "withvalues"),
    ("hrandfield", "f", "100"),
    ("hrandfield", "f", "-5", "withvalues"),
    ("sadd", "s", "a", "b", "c", "1"),
    ("sadd", "i", "3", "1", "2", "-7", "10"),
    ("spop", "s", "-1"),
    ("spop", "s", "x"),
    ("spop", "s", "1", "2"),
    ("spop", "s", "0"),
    ("spop", "nos"),
    ("spop", "nos", "2"),
    ("spop", "f"),
    ("spop", "f", "1"),
    ("srandmember", "s", "-9223372036854775808"),
    ("srandmember", "s", "x"),
    ("srandmember", "s", "1", "2"),
    ("srandmember", "nos"),
    ("srandmember", "nos", "5"),
    ("srandmember", "nos", "-5"),
    ("srandmember", "s", "-9"),
    ("srandmember", "i", "3"),
    ("sintercard", "0", "s"),
    ("sintercard", "-1", "s"),
    ("sintercard", "x", "s"),
    ("sintercard", "2", "s"),
    ("sintercard", "1", "s", "limit", "-1"),
    ("sintercard", "1", "s", "limit", "x"),
    ("sintercard", "1", "s", "foo"),
    ("sintercard", "1", "s", "limit"),
    ("sintercard", "1", "s", "LIMIT", "2"),
    ("sintercard", "1", "s", "LIMIT", "0", "limit", "1"),
    ("sintercard", "2", "s", "i", "limit", "9223372036854775808"),
    ("sintercard", "2", "s", "i"),
    ("sintercard", "2", "s", "nos"),
    ("sintercard", "2", "nos", "f"),
    ("sinter", "nos", "s", "f"),
    ("sunion", "nos", "f"),
    ("sdiff", "nos", "f"),
    ("sdiff", "nos", "s"),
    ("sinterstore", "s2", "s", "i"),
    ("sunionstore", "s2", "s", "i"),
    ("sunionstore", "f", "s", "nos"),
    ("type", "f"),
    ("sdiffstore", "s2", "s", "i"),
    ("sinterstore", "s2", "nos", "s"),
    ("exists", "s2"),
    ("sunionstore", "x", "nos", "f"),
    ("smove", "nos", "f", "a"),
    ("smove", "s", "hh", "a"),
    ("hset", "hh", "a", "1"),
    ("smove", "s", "hh", "a"),
    ("smove", "hh", "s", "a"),
    ("smove", "s", "s", "zz"),
    ("smove", "s", "s", "a"),
    ("smove", "s", "t", "a"),
    ("smove", "s", "t", "a"),
    ("smismember", "s", "b", "zz", "c"),
    ("smismember", "nos", "a", "b"),
    ("smismember", "f", "a"),
    ("sscan", "nos", "0", "foo"),
    ("sscan", "s", "x"),
    ("sscan", "s", "0", "count", "0"),
    ("sscan", "s", "0", "count", "x"),
    ("sscan", "s", "0", "type", "string"),
    ("sscan", "s", "0", "match"),
    ("sscan", "i", "0"),
    ("sscan", "i", "0", "match", "1*", "count", "1"),
    ("hscan", "f", "0", "novalues"),
    ("hscan", "f", "0", "match", "*e*"),
    ("hscan", "s", "0"),
    ("sadd", "big", *[f"m{n}" for n in range(600)]),
    ("sscan", "big", "0", "count", "7"),
    ("sscan", "big", "0", "match", "m1*", "count", "50"),
    ("hset", "bigh", *[f"f{n // 2}" if n % 2 == 0 else str(n) for n in range(400)]),
    ("hscan", "bigh", "0", "count", "9"),
    ("hscan", "bigh", "0", "match", "f1?"),
]

FIELDS = ["a", "b", "c", "d", "1", "2", "10", "-3", "", "x" * 70]
VALUES = ["1", "0", "-5", "2.5", "10.5", "x", "", "9223372036854775807", "inf", " 2", "y" * 70]
MEMBERS = ["a", "b", "c", "d", "e", "1", "2", "3", "17", "-4", "", "01", "zz"]
COUNTS = ["0", "1", "2", "3", "5", "-1", "-3", "-8", "20", "x", "1.5", "-9223372036854775808"]
PATTERNS = ["*", "a*", "?", "[ab]", "1*", "*z*", ""]


def random_command(rng: random.Random) -> Command:
    """One command of the random sequence."""
    hkey = rng.choice(["h1", "h2", "h3", "s1", "str", "none"])
    skey = rng.choice(["s1", "s2", "s3", "s4", "h1", "str", "none"])
    keys = ["s1", "s2", "s3", "s4", "none", "h1"]
    field, value, member = rng.choice(FIELDS), rng.choice(VALUES), rng.choice(MEMBERS)
    count = rng.choice(COUNTS)
    several = [rng.choice(MEMBERS) for _ in range(rng.randint(1, 4))]
    choices: list[Command] = [
        ("hset", hkey, field, value, *rng.choice([(), (rng.choice(FIELDS), value)])),
        ("hsetnx", hkey, field, value),
        ("hmset", hkey, field, value),
        ("hget", hkey, field),
        ("hmget", hkey, field, rng.choice(FIELDS)),
        ("hdel", hkey, field, rng.choice(FIELDS)),
        ("hgetall", hkey),
        ("hkeys", hkey),
        ("hvals", hkey),
        ("hlen", hkey),
        ("hexists", hkey, field),
        ("hstrlen", hkey, field),
        ("hincrby", hkey, field, rng.choice(["1", "-2", "x", "9223372036854775807"])),
        ("hincrbyfloat", hkey, field, rng.choice(["0.1", "-2.5", "1e3", "x", "inf", "3"])),
        ("hrandfield", hkey, *rng.choice([(), (count,), (count, "withvalues")])),
        ("hscan", hkey, "0", *rng.choice([(), ("match", rng.choice(PATTERNS)), ("count", "2")])),
        ("sadd", skey, *several),
        ("srem", skey, *several),
        ("smembers", skey),
        ("sismember", skey, member),
        ("smismember", skey, *several),
        ("scard", skey),
        ("spop", skey, *rng.choice([(), (count,)])),
        ("srandmember", skey, *rng.choice([(), (count,)])),
        ("smove", skey, rng.choice(keys), member),
        (rng.choice(["sinter", "sunion", "sdiff"]), *rng.sample(keys, rng.randint(1, 3))),
        (
            rng.choice(["sinterstore", "sunionstore", "sdiffstore"]),
            rng.choice(keys),
            *rng.sample(keys, rng.randint(1, 3)),
        ),
        ("sintercard", "2", *rng.sample(keys, 2), *rng.choice([(), ("limit", count)])),
        ("sscan", skey, "0", *rng.choice([(), ("match", rng.choice(PATTERNS)), ("count", "3")])),
        ("del", rng.choice([*keys, "h1", "h2"])),
        ("set", "str", "text"),
        ("sadd", "s4", *[str(n) for n in range(rng.choice([5, 600]))]),
    ]
    command = rng.choice(choices)
    roll = rng.random()
    if roll < 0.03:
        return command[: rng.randint(1, 2)]  # too few arguments (or exactly enough)
    if roll < 0.05:
        return (*command, "extra")
    return command


def parse(reply: bytes) -> Any:
    reader = hiredis.Reader()
    reader.feed(reply)
    value = reader.gets()
    return ("error", str(value)) if isinstance(value, hiredis.ReplyError) else value


def pairs(flat: list[bytes]) -> list[tuple[bytes, bytes]]:
    return sorted(zip(flat[::2], flat[1::2], strict=True))


class Peers:
    """kv and redis-server, each with a client, fed the same commands."""

    def __init__(self, kv_port: int, redis_port: int) -> None:
        self.kv = Raw(kv_port)
        self.redis = Raw(redis_port)
        for client in (self.kv, self.redis):
            client.call("FLUSHALL")

    def close(self) -> None:
        self.kv.close()
        self.redis.close()

    def check(self, command: Command) -> None:
        name = command[0].lower()
        if name == "spop" and len(command) in (2, 3):
            self._spop(command)
            return
        ours, theirs = self.kv.call(*command), self.redis.call(*command)
        where = f"{command!r}: redis {theirs[:200]!r}, kv {ours[:200]!r}"
        if ours[:1] == b"-" or theirs[:1] == b"-" or name not in UNORDERED | PAIRS | SCANS | RANDOM:
            assert ours == theirs, where
        elif name in UNORDERED:
            assert sorted(parse(ours)) == sorted(parse(theirs)), where
        elif name in PAIRS:
            assert pairs(parse(ours)) == pairs(parse(theirs)), where
        elif name in SCANS:
            assert self._scan_all(self.kv, command, ours) == self._scan_all(
                self.redis, command, theirs
            ), where
        else:
            self._random(command, parse(ours), parse(theirs), where)

    def _scan_all(self, client: Raw, command: Command, first: bytes) -> list[Any]:
        """Everything a scan returns from its first reply to its end."""
        found: list[Any] = []
        reply = parse(first)
        for _ in range(10_000):
            cursor, items = reply
            if command[0].lower() == "hscan":
                found.extend(pairs(items))
            else:
                found.extend(items)
            if cursor == b"0":
                return sorted(set(found))
            reply = parse(client.call(command[0], command[1], cursor, *command[3:]))
        raise AssertionError(f"{command!r} did not end")

    def _random(self, command: Command, ours: Any, theirs: Any, where: str) -> None:
        """SRANDMEMBER and HRANDFIELD: as many elements as Redis, from the collection."""
        if not isinstance(theirs, list):
            assert (ours is None) == (theirs is None), where
            if ours is not None:
                assert ours in self._elements(command[1]), where
            return
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        with_values = len(command) == 4
        if with_values:
            found = list(zip(ours[::2], ours[1::2], strict=True))
            assert set(found) <= set(pairs(self._elements(command[1], values=True))), where
        else:
            found = ours
            assert set(found) <= set(self._elements(command[1])), where
        if int(command[2]) > 0:
            assert len(set(found)) == len(found), where

    def _elements(self, key: str, values: bool = False) -> list[bytes]:
        kind = self.redis.call("TYPE", key)
        if kind == b"+set\r\n":
            return parse(self.redis.call("SMEMBERS", key))
        return parse(self.redis.call("HGETALL" if values else "HKEYS", key))

    def _spop(self, command: Command) -> None:
        """SPOP on kv; redis-server, whose SPOP would pick other members, removes the same."""
        before = set(parse(self.redis.call("SMEMBERS", command[1])) or ())
        if self.redis.call("TYPE", command[1]) != b"+set\r\n":
            before = set()
        ours = self.kv.call(*command)
        popped = parse(ours)
        where = f"{command!r}: kv {ours[:200]!r}"
        if ours[:1] == b"-" or popped in (None, []):
            assert ours == self.redis.call(*command), where  # no change there either
            return
        popped = popped if isinstance(popped, list) else [popped]
        assert len(set(popped)) == len(popped) and set(popped) <= before, where
        if len(command) == 3:
            assert len(popped) == min(int(command[2]), len(before)), where
        self.redis.call("SREM", command[1], *popped)

    def same_keyspace(self) -> None:
        mine = redis.Redis(port=self.kv.sock.getpeername()[1], protocol=2)
        theirs = redis.Redis(port=self.redis.sock.getpeername()[1], protocol=2)
        try:
            assert dataset(mine) == dataset(theirs)
        finally:
            mine.close()
            theirs.close()


@pytest.fixture
def peers(kv_process: Any, redis_port: int) -> Iterator[Peers]:
    both = Peers(kv_process.port, redis_port)
    yield both
    both.close()


def run(peers: Peers, commands: Sequence[Command]) -> None:
    for command in commands:
        peers.check(command)


def test_edge_cases_match_redis(peers: Peers) -> None:
    run(peers, PROLOGUE)
    peers.same_keyspace()


def test_small_collections_list_in_redis_order(peers: Peers) -> None:
    """Where Redis's order follows from its small encodings (an intset lists its integers in
    ascending order, a listpack hash its fields as set), kv's replies are Redis's, byte for
    byte."""
    commands: list[Command] = [
        ("sadd", "i", "30", "-2", "100", "7", "0"),
        ("sadd", "j", "7", "30", "5"),
        ("hset", "h", "z", "1", "a", "2", "m", "3"),
        ("hdel", "h", "a"),
        ("hset", "h", "a", "4", "z", "5"),
        ("smembers", "i"),
        ("sinter", "i", "j"),
        ("sunion", "i", "j"),
        ("sdiff", "i", "j"),
        ("srandmember", "i", "10"),
        ("sscan", "j", "0"),
        ("hgetall", "h"),
        ("hkeys", "h"),
        ("hvals", "h"),
        ("hrandfield", "h", "5", "withvalues"),
        ("hscan", "h", "0", "count", "1"),
        ("spop", "i", "5"),
    ]
    for command in commands:
        ours, theirs = peers.kv.call(*command), peers.redis.call(*command)
        assert ours == theirs, f"{command!r}: redis {theirs!r}, kv {ours!r}"


@pytest.mark.parametrize("seed", [1, 2])
def test_random_commands_match_redis(peers: Peers, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(3):
        run(peers, [random_command(rng) for _ in range(700)])
        peers.same_keyspace()


def test_pop_from_a_large_set_takes_distinct_members() -> None:
    """Past RANDOM_POP_LIMIT members SPOP takes set.pop()'s members: still distinct ones of
    the set, and gone from it."""
    for size, count in ((5000, 1), (5000, 40), (5000, 1500), (300, 20)):
        members = {b"m%d" % n for n in range(size)}
        popped = pop(members, count)
        assert len(set(popped)) == len(popped) == count
        assert len(members) == size - count and not set(popped) & members
        assert all(member.startswith(b"m") and int(member[1:]) < size for member in popped)


# -- the journal ----------------------------------------------------------------------------------


def test_random_and_computed_writes_replay_as_they_ran(tmp_path: Path) -> None:
    """SPOP (with and without a count) and HINCRBYFLOAT are journaled as their outcome (SREM,
    DEL, HSET), so kv restarted on its AOF, and redis-server started on it, hold the same data
    as kv did; the journal holds neither command."""
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes", "--appendfsync", "always") as kv:
        r = redis.Redis(port=kv.port, socket_timeout=10, protocol=2)
        r.sadd("s", *range(3000))
        assert r.spop("s") is not None
        assert len(r.spop("s", 5)) == 5
        assert len(r.spop("s", 2000)) == 2000  # two SREM commands of at most 1024 members
        r.sadd("gone", "a", "b")
        assert len(r.spop("gone", 10)) == 2  # the whole set: DEL
        assert r.spop("gone") is None and r.spop("gone", 3) == []  # nothing logged
        r.hset("h", mapping={"x": "10.5", "n": "3"})
        assert r.hincrbyfloat("h", "x", 0.1) == 10.6
        r.execute_command("HINCRBYFLOAT", "h", "y", "1.23456789012345678901")
        r.hsetnx("h", "n", "9")  # refused: not logged
        r.hsetnx("h", "new", "1")
        r.hmset("h2", {"a": "1"})
        r.sadd("t", "m", "k")
        r.smove("s", "t", r.srandmember("s"))
        r.smove("s", "t", "not-a-member")
        r.sinterstore("inter", "s", "t")
        r.sunionstore("union", "t", "h-none")
        r.sdiffstore("diff", "s", "t")
        pipe = r.pipeline(transaction=True)
        pipe.spop("t").hincrbyfloat("h", "x", "-1.5").execute()
        live = dataset(r)
        r.close()
    journal = b"".join(
        path.read_bytes() for path in (tmp_path / "appendonlydir").glob("*.incr.aof")
    )
    words = {word.upper() for word in journal.split(b"\r\n")}
    assert not {b"SPOP", b"HINCRBYFLOAT"} & words
    assert journal.count(b"$4\r\nSREM\r\n") == 5 and b"HSET" in words
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes") as again:
        replayed = redis.Redis(port=again.port, socket_timeout=10, protocol=2)
        assert dataset(replayed) == live
        replayed.close()
    with redis_on(str(tmp_path), "--appendonly", "yes") as peer:
        assert dataset(peer) == live


def test_propagation_of_spop_and_hincrbyfloat() -> None:
    db = Keyspace()
    db.data[b"s"] = {b"c"}
    db.data[b"h"] = {b"f": b"10.6"}
    assert propagate(db, [b"SPOP", b"s"], b"$1\r\na\r\n", True) == [[b"SREM", b"s", b"a"]]
    assert propagate(db, [b"spop", b"s", b"2"], b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", True) == [
        [b"SREM", b"s", b"a", b"b"]
    ]
    assert propagate(db, [b"SPOP", b"gone", b"5"], b"*1\r\n$1\r\na\r\n", True) == [
        [b"DEL", b"gone"]
    ]
    assert propagate(db, [b"SPOP", b"s"], b"$-1\r\n", False) == []
    assert propagate(db, [b"SPOP", b"s", b"3"], b"*0\r\n", False) == []
    assert propagate(db, [b"HINCRBYFLOAT", b"h", b"f", b"0.1"], b"$4\r\n10.6\r\n", True) == [
        [b"HSET", b"h", b"f", b"10.6"]
    ]
    assert propagate(db, [b"HSETNX", b"h", b"f", b"1"], b":0\r\n", True) == []
