"""kv's two C extensions against the Python code they stand in for.

``residentd.apps.kv._fastpath.execute`` runs the plain case of GET, SET, MGET, MSET, the INCR
family, LPUSH, RPUSH, PING, LPOP, RPOP, LRANGE, LINDEX, LLEN, DEL, EXISTS, EXPIRE, PEXPIRE,
TTL, PTTL, the set commands SADD, SREM, SISMEMBER, SMISMEMBER, SCARD and SPOP and the hash
commands HSET, HGET, HEXISTS, HDEL, HLEN, HMGET and HINCRBY straight on the keyspace;
``KvSession.on_messages`` calls it through ``residentd.apps.kv.session.execute_fast`` and runs
in Python whatever it leaves. The differential test drives random pipelines (every arity,
mixed-case names, colliding keys, values at and past the 64-bit limits, type and time-to-live
changes, MULTI/EXEC, pub/sub, unknown commands) through real kv sessions on real ``Connection``
objects with a recording transport, once with the C function (each read offered first to
``serve_chunk``, which runs it through ``execute`` and ``serve_rest``) and once with
``execute_fast = None`` and no ``serve_chunk``, whole and cut into several reads, with the
journal on or off (on: as the session journals while kv persists), and proves the four runs
give the same reply bytes, the same keyspace (values, types, key and field order, keys with a
time to live), the same hit and miss counts and the same journal bytes (absolute deadlines and
milliseconds left masked: they move with the clock between runs). SPOP pops a random member, in
C and in Python alike: each run is compared with the run of its twin pipeline, where every SPOP
that popped a member is the SREM of that member; so a pop must take a member that was there and
leave what that SREM leaves, reply for reply.

The sorted set commands of the fast path (_fast_zsets.h: plain ZADD, ZINCRBY, ZSCORE, ZRANK,
ZREVRANK, ZCARD, ZPOPMIN, ZPOPMAX) get a differential test of their own, with the commands
only Python runs on sorted sets between them, sets past a listpack's size, every score text
of a list, and keyspace values compared down to each score's sign and the set's encoding;
direct tests pin what they leave to Python, what they journal (what aof.propagate gives),
that they leave a key clients wait on alone and that they give their memory back.

The direct tests pin ``execute``'s contract: where it stops (a command it does not handle, a
key with a time to live, a value of another type), that it appends nothing when it ran
nothing, rejects a negative start, and writes a reply larger than its in-place buffer exactly;
and for the list and key commands: every LRANGE range from either end, keys with a time to
live ahead (run here) and past (Python's), what each write journals, writes to a waited key,
and exact reference counts. The ``read_commands`` tests pin the C request reader's contract:
it reads whole plain multibulk commands, stops at the first thing that is not one, and does
not allocate for a huge announced count.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from residentd.apps.kv import KvApp, create_app
from residentd.apps.kv import session as session_module
from residentd.apps.kv.commands import DISPATCH, WRITES
from residentd.apps.kv.persistence.aof import count_records_python, encode, propagate
from residentd.apps.kv.store import Keyspace, now_ms
from residentd.apps.kv.zset import SortedSet
from residentd.codecs import resp as resp_module
from residentd.net.connection import Connection
from residentd.net.server import Server, ServiceRuntime
from residentd.speedups import native

from .helpers import reply_end, resp

Argv = list[bytes]
Execute = Callable[[list[Argv], int, Any, list[bytes]], int]

C_EXECUTE: Execute | None = session_module.execute_fast
C_READ_COMMANDS = resp_module.read_commands
C_COUNT_RECORDS = native("residentd.apps.kv._fastpath", "count_records")

needs_fastpath = pytest.mark.skipif(
    C_EXECUTE is None,
    reason="_fastpath is not loaded (not built, or RESIDENTD_PURE_PYTHON is set)",
)
needs_reader = pytest.mark.skipif(
    C_READ_COMMANDS is None,
    reason="_resp_reader is not loaded (not built, or RESIDENTD_PURE_PYTHON is set)",
)


def fast_execute() -> Execute:
    assert C_EXECUTE is not None
    return C_EXECUTE


# -- a kv session on a real Connection, without a socket ------------------------------------------


class RecordingTransport(asyncio.Transport):
    """A transport that keeps every byte the connection writes."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class KvClient:
    """One client of a fresh kv App: a ``Server`` (never bound), a ``Connection`` made by it as
    the listener would, and the app's session, with the C fast path on or off."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        execute: Execute | None,
        prepare: Callable[[Keyspace], None] | None = None,
        journaled: bool = False,
    ) -> None:
        self.loop = loop
        self.execute = execute
        self.app: KvApp = create_app()
        if journaled:  # as while persisting, without the disk: what is journaled stays here
            self.app.state.journal = bytearray()
        if prepare is not None:
            prepare(self.app.state.db)
        if journaled:  # as kv persisting: the writes append what Redis's AOF would hold
            self.app.state.journal = bytearray()
        self.server = Server(self.app, None, loop)
        runtime = ServiceRuntime.of(self.app.services[0])
        self.transport = RecordingTransport()
        self.conn = Connection(self.server, runtime)
        self.conn.connection_made(self.transport)
        assert self.conn.session is not None
        if execute is not C_EXECUTE:  # serve_chunk runs the C execute itself: not this one
            self.conn._serve_chunk = None

    def read(self, commands: list[Argv]) -> None:
        """One read from the socket holding ``commands``: the codec parses them all and the
        session gets them in one ``on_messages`` call; then one loop iteration writes the
        replies (kv defers its writes to the end of the iteration)."""
        before = self.conn.messages_in
        saved = session_module.execute_fast
        session_module.execute_fast = self.execute  # type: ignore[assignment]
        try:
            self.conn.data_received(b"".join(resp(*argv) for argv in commands))
        finally:
            session_module.execute_fast = saved
        assert self.conn.messages_in - before == len(commands)
        assert self.conn.codec.buffered == 0
        self.loop.call_soon(self.loop.stop)
        self.loop.run_forever()

    def replies(self) -> list[bytes]:
        data = bytes(self.transport.written)
        out: list[bytes] = []
        position = 0
        while position < len(data):
            end = reply_end(data, position)
            assert end is not None, data[position:]
            out.append(data[position:end])
            position = end
        return out

    def keyspace(self) -> dict[str, Any]:
        db = self.app.state.db
        journal = self.app.state.journal
        return {
            "journal": None if journal is None else timeless(bytes(journal)),
            "data": [(key, plain(value)) for key, value in db.data.items()],
            "expires": sorted(db.expires),
            "hits": db.hits,
            "misses": db.misses,
            "expired_keys": db.expired_keys,
            "commands": self.app.state.commands,
        }


# Absolute deadlines in the journal (PEXPIREAT, PXAT) and PTTL's milliseconds left of the
# deadlines the generator sets differ from run to run by the time between.
ABSOLUTE_MS = re.compile(
    rb"(\$9\r\nPEXPIREAT\r\n\$\d+\r\n[^\r]*\r\n|\$4\r\nPXAT\r\n)\$\d+\r\n\d+\r\n"
)
INTEGER = re.compile(rb":(\d{5,})\r\n")
MS_LEFT_OF = (100_000, 1_000_000, 9_223_372_036_854_776)


def timeless(data: bytes) -> bytes:
    data = ABSOLUTE_MS.sub(rb"\1<ms>", data)
    return INTEGER.sub(
        lambda found: (
            b":<ms left>\r\n"
            if any(0 <= ms - int(found[1]) < 2_000 for ms in MS_LEFT_OF)
            else found[0]
        ),
        data,
    )


def plain(value: Any) -> tuple[str, Any]:
    """A value with its type, comparable: a deque as a list, a hash as its items in order, a
    sorted set as its entries in order, its encoding and its scores (by repr, which tells -0
    from 0)."""
    if isinstance(value, SortedSet):
        entries = [(repr(score), member) for score, member in value]
        scores = sorted((member, repr(score)) for member, score in value.scores.items())
        return ("SortedSet", (entries, value.big, scores))
    if isinstance(value, deque):
        return ("deque", list(value))
    if isinstance(value, dict):
        return ("dict", list(value.items()))
    return (type(value).__name__, value)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()


def run_pipeline(
    loop: asyncio.AbstractEventLoop,
    execute: Execute | None,
    chunks: list[list[Argv]],
    prepare: Callable[[Keyspace], None] | None = None,
    journaled: bool = False,
) -> tuple[list[bytes], dict[str, Any]]:
    client = KvClient(loop, execute, prepare, journaled)
    for chunk in chunks:
        client.read(chunk)
    replies = [timeless(reply) for reply in client.replies()]
    assert len(replies) == sum(map(len, chunks)), replies  # one reply per command
    return replies, client.keyspace()


# -- random pipelines ----------------------------------------------------------------------------

KEYS = [b"a", b"b", b"c", b""]
NUMBERS = [
    b"0",
    b"1",
    b"-1",
    b"42",
    b"-0",
    b"007",
    b"00",
    b"+1",
    b" 1",
    b"1 ",
    b"1.5",
    b"",
    b"abc",
    b"\xff",
    b"999999999999999999",  # 18 digits: C's limit
    b"-999999999999999999",
    b"1000000000000000000",  # 19 digits: Python's
    b"-1000000000000000000",
    b"9223372036854775806",
    b"9223372036854775807",
    b"-9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"-9223372036854775809",
    b"12345678901234567890",
]

keys = st.sampled_from(KEYS)
INDEXES = [b"0", b"1", b"2", b"-1", b"-2", b"-3", b"5", b"-100", b"100", b"x", b"007"]
INDEXES += [b"-9223372036854775808", b"9223372036854775807", b"99999999999999999999"]
indexes = st.sampled_from(INDEXES)
POP_COUNTS = [[]] * 6 + [[b"1"], [b"2"], [b"3"], [b"100"], [b"0"], [b"-1"], [b"x"], [b"1", b"2"]]
EXPIRE_TIMES = [b"100", b"1000", b"0", b"-1", b"x", b"9223372036854775807", b"9223372036854776"]
EXPIRE_OPTIONS = [[]] * 6 + [[b"NX"], [b"xx"], [b"GT"], [b"lt"], [b"NX", b"XX"], [b"BOGUS"]]
numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(-1000, 1000).map(lambda n: b"%d" % n),
    st.integers(-(10**6), 10**6).map(lambda n: b"%d" % n),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: b"%d" % n),
)
values = st.one_of(numbers, st.binary(max_size=6))
small_counts = st.sampled_from([1] * 8 + [0, 2])  # mostly the right arity, sometimes not
mostly_one = st.sampled_from([1] * 6 + [0])
# Set members and hash fields: few, so that they meet; "1" and "2" make small sets of
# integers, which SMEMBERS lists in order.
members = st.sampled_from([b"m", b"n", b"o", b"1", b"2", b""])

SET_COMMANDS = ("sadd", "srem", "sismember", "smismember", "scard", "spop")
HASH_COMMANDS = ("hset", "hget", "hexists", "hdel", "hlen", "hmget", "hincrby")
# SPOP's count: the whole set (the test's sets are smaller), none, or an error.
SPOP_COUNTS: list[Argv] = [[]] * 12 + [[b"100"], [b"0"], [b"-1"], [b"x"], [b"1", b"2"]]

SET_OPTIONS: list[Argv] = [
    [b"EX", b"100"],
    [b"px", b"100000"],
    [b"NX"],
    [b"xx"],
    [b"GET"],
    [b"KEEPTTL"],
    [b"EX", b"0"],
    [b"EX", b"abc"],
    [b"EX", b"100", b"NX"],
    [b"KEEPTTL", b"GET"],
    [b"BOGUS"],
]


@st.composite
def spelled(draw: st.DrawFn, name: str) -> bytes:
    """``name`` in upper, lower or mixed case."""
    how = draw(st.sampled_from(["upper", "lower", "mixed"]))
    if how != "mixed":
        return getattr(name, how)().encode()
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    letters = (c.upper() if up else c.lower() for c, up in zip(name, flips, strict=True))
    return "".join(letters).encode()


@st.composite
def hot_command(draw: st.DrawFn) -> Argv:
    name = draw(
        st.sampled_from(
            [
                *("get", "set", "mget", "mset", "incr", "decr", "incrby", "decrby"),
                *("lpush", "rpush", "lpush", "rpush", "ping"),
                *("lpop", "rpop", "lrange", "lindex", "llen"),
                *("del", "exists", "expire", "pexpire", "ttl", "pttl"),
                *SET_COMMANDS,
                *HASH_COMMANDS,
            ]
        )
    )
    argv = [draw(spelled(name))]
    if name in SET_COMMANDS or name in HASH_COMMANDS:
        return argv + draw(collection_arguments(name))
    if name in ("get", "incr", "decr", "llen", "ttl", "pttl"):
        argv += draw(st.lists(keys, min_size=(n := draw(small_counts)), max_size=n))
    elif name in ("incrby", "decrby"):
        argv += draw(st.lists(keys, min_size=(n := draw(small_counts)), max_size=n))
        argv += draw(st.lists(numbers, min_size=(m := draw(small_counts)), max_size=m))
    elif name == "set":
        shape = draw(st.sampled_from(["plain"] * 4 + ["options", "short"]))
        if shape == "short":
            argv += draw(st.lists(keys, max_size=1))
        else:
            argv += [draw(keys), draw(values)]
            if shape == "options":
                argv += draw(st.sampled_from(SET_OPTIONS))
    elif name == "mget":
        argv += draw(st.lists(keys, max_size=5))
    elif name == "mset":
        for _ in range(draw(st.integers(0, 3))):
            argv += [draw(keys), draw(values)]
        argv += draw(st.sampled_from([[], [], [], [b"a"]]))  # an odd count now and then
    elif name in ("lpush", "rpush"):
        argv += draw(st.lists(keys, min_size=(n := draw(small_counts)), max_size=n))
        argv += draw(
            st.lists(values, min_size=(m := draw(st.sampled_from([1, 1, 2, 3, 0]))), max_size=m)
        )
    elif name == "ping":
        argv += draw(st.lists(values, max_size=draw(st.sampled_from([0, 0, 0, 1, 2]))))
    elif name in ("lpop", "rpop"):
        argv += draw(st.lists(keys, min_size=(n := draw(small_counts)), max_size=n))
        argv += draw(st.sampled_from(POP_COUNTS))
    elif name in ("lrange", "lindex"):
        argv += draw(st.lists(keys, min_size=(n := draw(small_counts)), max_size=n))
        count = 2 if name == "lrange" else 1
        argv += draw(st.lists(indexes, min_size=count, max_size=count + (n != 1)))
    elif name in ("del", "exists"):
        argv += draw(st.lists(keys, max_size=4))
    elif name in ("expire", "pexpire"):
        argv += draw(st.lists(keys, min_size=(n := draw(small_counts)), max_size=n))
        times = [
            b"100000" if name == "pexpire" and when == b"100" else when for when in EXPIRE_TIMES
        ]
        argv += [draw(st.sampled_from(times)), *draw(st.sampled_from(EXPIRE_OPTIONS))]
    return argv


@st.composite
def collection_arguments(draw: st.DrawFn, name: str) -> Argv:
    """The arguments of a set or hash command: mostly the right count, sometimes not; mostly
    the key of its type's own, sometimes one the other commands use."""
    own = [b"s"] if name in SET_COMMANDS else [b"h"]
    key_of_type = st.sampled_from(own * len(KEYS) + KEYS)
    key = draw(st.lists(key_of_type, min_size=(n := draw(small_counts)), max_size=n))
    if name in ("scard", "hlen"):
        return key + draw(st.sampled_from([[]] * 8 + [[b"m"]]))
    if name == "spop":
        return key + draw(st.sampled_from(SPOP_COUNTS))
    if name in ("sismember", "hget", "hexists"):
        return key + draw(st.lists(members, min_size=(m := draw(small_counts)), max_size=m))
    if name == "hset":
        pairs = [
            part
            for _ in range(draw(st.sampled_from([1, 1, 2, 3, 0])))
            for part in (draw(members), draw(values))
        ]
        odd = draw(st.sampled_from([[]] * 6 + [[b"m"]]))  # an odd count now and then
        return key + pairs + odd
    if name == "hincrby":
        extra = draw(st.sampled_from([[]] * 8 + [[b"1"]]))
        return [*key, draw(members), draw(numbers), *extra]
    # SADD, SREM, SMISMEMBER, HDEL, HMGET
    return key + draw(st.lists(members, min_size=draw(mostly_one), max_size=3))


# Each other command with its weight: times to live and type changes come often, so that the
# hot commands meet keys that have them.
OTHER_WEIGHTS = {
    "expire": 3,
    "pexpire": 2,
    "set-px": 1,
    "persist": 1,
    "hset": 2,
    "sadd": 2,
    "lpop": 1,
    "append": 1,
    "getset": 1,
    "del": 2,
    "flushdb": 1,
    "multi": 1,
    "exec": 1,
    "discard": 1,
    "subscribe": 1,
    "unsubscribe": 1,
    "lrange": 1,
    "smembers": 1,
    "hgetall": 1,
    "type": 1,
    "keys": 1,
    "unknown": 1,
}


@st.composite
def other_command(draw: st.DrawFn) -> Argv:
    """Commands that change types and times to live, transactions, pub/sub and the unknown."""
    kind = draw(st.sampled_from([k for k, weight in OTHER_WEIGHTS.items() for _ in range(weight)]))
    key = draw(st.sampled_from([*KEYS, b"s", b"h"]))
    argv: Argv
    if kind == "expire":
        argv = [b"EXPIRE", key, draw(st.sampled_from([b"100", b"1000", b"0", b"-1", b"x"]))]
    elif kind == "pexpire":
        argv = [b"PEXPIRE", key, draw(st.sampled_from([b"100000", b"0", b"-5"]))]
    elif kind == "set-px":
        argv = [b"SET", key, draw(values), b"PX", b"100000"]
    elif kind == "hset":
        argv = [b"HSET", key, b"f", draw(values)]
    elif kind in ("sadd", "append", "getset"):
        argv = [kind.encode(), key, draw(values)]
    elif kind == "del":
        argv = [b"DEL", key, *draw(st.lists(keys, max_size=1))]
    elif kind in ("persist", "lpop", "type", "smembers", "hgetall"):
        argv = [kind.encode(), key]
    elif kind in ("flushdb", "multi", "exec", "discard", "unsubscribe"):
        argv = [kind.encode()]
    elif kind == "subscribe":
        argv = [b"SUBSCRIBE", b"ch"]
    elif kind == "lrange":
        argv = [b"LRANGE", key, b"0", b"-1"]
    elif kind == "keys":
        argv = [b"KEYS", b"*"]
    else:
        argv = [b"NOSUCHCOMMAND", key]
    argv[0] = draw(spelled(argv[0].decode()))
    return argv


@st.composite
def command(draw: st.DrawFn) -> Argv:
    """A hot command three times in four, else another one."""
    hot = draw(st.sampled_from([True, True, True, False]))
    return draw(hot_command() if hot else other_command())


def without_queued_pops(pipeline: list[Argv]) -> list[Argv]:
    """``pipeline`` without the SPOPs of one member that may be queued in a MULTI: EXEC's
    reply would hold their random member, which the twin pipeline cannot name."""
    kept: list[Argv] = []
    queuing = False
    for argv in pipeline:
        name = argv[0].lower()
        if name == b"multi":
            queuing = True
        elif name in (b"exec", b"discard"):
            queuing = False
        elif queuing and name == b"spop" and len(argv) == 2:
            continue
        kept.append(argv)
    return kept


pipelines = st.lists(command(), min_size=10, max_size=40).map(without_queued_pops)
cuts = st.lists(st.integers(0, 40), max_size=4)


def cut(pipeline: list[Argv], at: list[int]) -> list[list[Argv]]:
    points = sorted({point % (len(pipeline) + 1) for point in at} | {0, len(pipeline)})
    return [pipeline[a:b] for a, b in itertools.pairwise(points) if a < b]


def popped_member(argv: Argv, reply: bytes) -> bytes | None:
    """The member an SPOP of one member popped, or None (another command, another reply)."""
    if argv[0].lower() != b"spop" or len(argv) != 2 or not reply.startswith(b"$"):
        return None
    if reply == b"$-1\r\n":
        return None
    return reply[reply.index(b"\r\n") + 2 : -2]


class Twins:
    """The Python runs of twin pipelines (every SPOP that popped a member made the SREM of
    that member), which are deterministic, each run once: a whole Python run that popped
    nothing is its own twin's."""

    def __init__(self, loop: asyncio.AbstractEventLoop, journaled: bool) -> None:
        self.loop = loop
        self.journaled = journaled
        self.runs: dict[str, tuple[list[bytes], dict[str, Any]]] = {}

    def check(
        self,
        pipeline: list[Argv],
        result: tuple[list[bytes], dict[str, Any]],
        whole_python: bool = False,
    ) -> None:
        """``result`` (of running ``pipeline``, C or Python, whole or cut) is the twin's:
        the same keyspace, counters and journal, the same replies but where the twin's SREM
        removed the popped member (":1")."""
        replies, state = result
        twin = [argv for argv in pipeline]
        popped: set[int] = set()
        for i, (argv, reply) in enumerate(zip(pipeline, replies, strict=True)):
            member = popped_member(argv, reply)
            if member is not None:
                twin[i] = [b"SREM", argv[1], member]
                popped.add(i)
        name = repr(twin)
        if whole_python and not popped:
            self.runs.setdefault(name, result)
        if name not in self.runs:
            self.runs[name] = run_pipeline(self.loop, None, [twin], journaled=self.journaled)
        twin_replies, twin_state = self.runs[name]
        assert state == twin_state, twin
        for i, (reply, twin_reply) in enumerate(zip(replies, twin_replies, strict=True)):
            assert twin_reply == b":1\r\n" if i in popped else reply == twin_reply, (i, twin)


@needs_fastpath
@settings(max_examples=300, deadline=None)
@given(pipeline=pipelines, at=cuts, journaled=st.booleans())
@example(  # INCR and INCRBY up to and past INT64_MAX, DECRBY of INT64_MIN
    pipeline=[
        [b"SET", b"a", b"9223372036854775805"],
        [b"INCR", b"a"],
        [b"incrby", b"a", b"1"],
        [b"INCR", b"a"],
        [b"SET", b"b", b"-999999999999999999"],
        [b"DECRBY", b"b", b"999999999999999999"],
        [b"DECRBY", b"b", b"-9223372036854775808"],
        [b"INCRBY", b"b", b"-9223372036854775808"],
        [b"GET", b"a"],
        [b"GET", b"b"],
    ],
    at=[],
    journaled=True,
)
@example(  # a time to live, a type change, a transaction and a subscription between hot commands
    pipeline=[
        [b"SET", b"a", b"1", b"EX", b"100"],
        [b"GET", b"a"],
        [b"INCR", b"a"],
        [b"MGET", b"a", b"b"],
        [b"PERSIST", b"a"],
        [b"get", b"a"],
        [b"HSET", b"b", b"f", b"v"],
        [b"GeT", b"b"],
        [b"MGET", b"a", b"b", b"c"],
        [b"LPUSH", b"b", b"x"],
        [b"MULTI"],
        [b"SET", b"c", b"1"],
        [b"LPUSH", b"c", b"x"],
        [b"EXEC"],
        [b"SUBSCRIBE", b"ch"],
        [b"PING"],
        [b"GET", b"c"],
        [b"UNSUBSCRIBE"],
        [b"PING"],
        [b"RPUSH", b"c", b"y", b"z"],
        [b"LRANGE", b"c", b"0", b"-1"],
    ],
    at=[3, 11, 16],
    journaled=True,
)
@example(  # SET and MSET drop a time to live; GET then runs in C again
    pipeline=[
        [b"SET", b"a", b"1"],
        [b"SET", b"b", b"2"],
        [b"EXPIRE", b"a", b"100"],
        [b"PEXPIRE", b"b", b"100000"],
        [b"SET", b"a", b"3"],
        [b"MSET", b"c", b"4", b"b", b"5"],
        [b"GET", b"a"],
        [b"MGET", b"a", b"b", b"c"],
        [b"SET", b"c", b"6", b"PX", b"100000"],
        [b"SET", b"c", b"7", b"KEEPTTL"],
        [b"INCR", b"c"],
    ],
    at=[5],
    journaled=False,
)
@example(  # the list and key commands, journaled: pops that empty a list, reads, times to live
    pipeline=[
        [b"RPUSH", b"l", b"1", b"2", b"3", b"4", b"5"],
        [b"LRANGE", b"l", b"0", b"-1"],
        [b"lrange", b"l", b"-2", b"100"],
        [b"LINDEX", b"l", b"-5"],
        [b"LPOP", b"l"],
        [b"RPOP", b"l", b"2"],
        [b"LLEN", b"l"],
        [b"EXPIRE", b"l", b"100"],
        [b"TTL", b"l"],
        [b"LPOP", b"l", b"100"],
        [b"LPOP", b"l"],
        [b"SET", b"a", b"1"],
        [b"PEXPIRE", b"a", b"100000"],
        [b"PTTL", b"a"],
        [b"EXISTS", b"a", b"a", b"l", b"b"],
        [b"DEL", b"b"],
        [b"DEL", b"a", b"b", b"a"],
        [b"TTL", b"a"],
    ],
    at=[9],
    journaled=True,
)
@example(  # sets and hashes: created, emptied (which deletes them), of another type, expiring
    pipeline=[
        [b"SADD", b"a", b"m", b"n", b"m"],
        [b"SPOP", b"a"],
        [b"SISMEMBER", b"a", b"m"],
        [b"SMISMEMBER", b"a", b"m", b"n", b"o"],
        [b"SPOP", b"a"],
        [b"SPOP", b"a"],
        [b"SCARD", b"a"],
        [b"HSET", b"b", b"f", b"1", b"g", b"2", b"f", b"3"],
        [b"HINCRBY", b"b", b"f", b"-4"],
        [b"HMGET", b"b", b"f", b"x", b"g"],
        [b"HDEL", b"b", b"f", b"f", b"x"],
        [b"HDEL", b"b", b"g"],
        [b"HLEN", b"b"],
        [b"SADD", b"b", b"1", b"2"],
        [b"SREM", b"b", b"2", b"1"],
        [b"EXISTS", b"b"],
        [b"SADD", b"c", b"x"],
        [b"EXPIRE", b"c", b"100"],
        [b"SREM", b"c", b"x"],
        [b"HGET", b"c", b"f"],
        [b"SET", b"c", b"v"],
        [b"HEXISTS", b"c", b"f"],
        [b"SPOP", b"c"],
    ],
    at=[2, 15],
    journaled=True,
)
def test_c_fast_path_and_python_handlers_agree(
    loop: asyncio.AbstractEventLoop, pipeline: list[Argv], at: list[int], journaled: bool
) -> None:
    twins = Twins(loop, journaled)
    for chunks in ([pipeline], cut(pipeline, at)):
        result = run_pipeline(loop, None, chunks, journaled=journaled)
        twins.check(pipeline, result, whole_python=len(chunks) == 1)
        twins.check(pipeline, run_pipeline(loop, fast_execute(), chunks, journaled=journaled))


@needs_fastpath
def test_the_fast_path_is_used(loop: asyncio.AbstractEventLoop) -> None:
    """The differential test compares something: with ``execute_fast`` set, the session runs
    the hot commands in C (one call for a run of them), and not with it unset."""
    calls: list[int] = []
    execute = fast_execute()

    def counting(
        commands: list[Argv],
        start: int,
        db: Any,
        replies: list[bytes],
        journal: Any = None,
        waited: Any = None,
    ) -> int:
        calls.append(start)
        return execute(commands, start, db, replies, journal, waited)

    pipeline = [
        [b"SET", b"a", b"1"],
        [b"INCR", b"a"],
        [b"HSETNX", b"h", b"f", b"v"],
        [b"GET", b"a"],
    ]
    replies, _ = run_pipeline(loop, counting, [pipeline])
    assert replies == [b"+OK\r\n", b":2\r\n", b":1\r\n", b"$1\r\n2\r\n"]
    assert calls == [0, 3]


@needs_fastpath
def test_serve_takes_a_plain_chunk_whole_and_leaves_the_others(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The connection hands each chunk to ``serve_chunk`` first: it takes a chunk of complete
    plain commands from a plain client (running in Python, through ``serve_rest``, what
    ``execute`` leaves), and leaves to the codec and ``on_messages`` a chunk with a partial
    command, what follows one, and the chunks of a client inside MULTI."""
    client = KvClient(loop, fast_execute())
    serve = client.conn._serve_chunk
    assert serve is session_module.KvSession.serve_chunk is not None
    taken: list[int | None] = []

    def recording(session: Any, codec: Any, data: bytes) -> int | None:
        taken.append(serve(session, codec, data))
        return taken[-1]

    client.conn._serve_chunk = recording
    conn = client.conn
    for data in [
        resp("SET", "a", "1") + resp("INCR", "a") + b"GET a\r\n",  # all in C
        resp("HSETNX", "h", "f", "v") + resp("GET", "a"),  # Python, then C again
        resp("SET", "b", "2") + resp("GET", "b")[:5],  # a partial command: the codec's
        resp("GET", "b")[5:],  # the codec holds its start: its too
        resp("MULTI") + resp("INCR", "a"),  # MULTI in Python, from serve_rest
        resp("GET", "a") + resp("EXEC"),  # inside MULTI: on_messages's
    ]:
        conn.data_received(data)
        loop.call_soon(loop.stop)
        loop.run_forever()
    assert taken == [3, 2, None, None, 2, None]
    assert client.replies() == [
        b"+OK\r\n", b":2\r\n", b"$1\r\n2\r\n",
        b":1\r\n", b"$1\r\n2\r\n",
        b"+OK\r\n", b"$1\r\n2\r\n",
        b"+OK\r\n", b"+QUEUED\r\n", b"+QUEUED\r\n", b"*2\r\n:3\r\n$1\r\n3\r\n",
    ]  # fmt: skip
    assert conn.messages_in == 11
    assert client.app.state.commands == 11


@needs_fastpath
def test_serve_reads_what_getattr_would(loop: asyncio.AbstractEventLoop) -> None:
    """``serve`` reads the session's and the state's slots where the type keeps them, learnt
    once per type: a value set since is the one it sees, and an object whose class makes the
    attribute something else than a plain slot (a subclass's property) is read through
    getattr, not at the place its base class keeps it."""
    client = KvClient(loop, fast_execute())
    conn = client.conn
    serve = conn._serve_chunk
    assert serve is not None
    session, codec, state = conn.session, conn.codec, client.app.state
    chunk = resp("GET", "a")

    class BusyState(type(state)):  # type: ignore[misc]
        __slots__ = ()

        @property  # type: ignore[misc]
        def script_busy(self) -> bool:
            return True

    assert serve(session, codec, chunk) == 1
    state.script_busy = True
    assert serve(session, codec, chunk) is None  # left to on_messages, which answers -BUSY
    state.script_busy = False
    assert serve(session, codec, chunk) == 1
    state.__class__ = BusyState
    assert serve(session, codec, chunk) is None
    state.__class__ = BusyState.__base__
    assert serve(session, codec, chunk) == 1
    commands = state.commands
    session.last_argv = None
    assert serve(session, codec, resp("GET", "a") + resp("GET", "b")) == 2
    assert state.commands == commands + 2
    assert session.last_argv == [b"GET", b"b"]


@needs_fastpath
@pytest.mark.parametrize("size", [2_000, 70_000])  # slots of 16 and of 32 bits
def test_on_a_large_keyspace_c_and_python_agree(loop: asyncio.AbstractEventLoop, size: int) -> None:
    """Past 1,024 keys ``execute`` prefetches each batch's keys in the dict's own table
    (_dict_prefetch.h). With deleted keys (dummy slots), present, absent and replaced keys,
    more commands than one batch and MGET, MSET and EXISTS of more keys than one prefetch, it
    still does what the Python handlers do."""
    rng = random.Random(size)

    def prepare(db: Keyspace) -> None:
        db.data.update((b"key:%d" % i, b"%d" % i) for i in range(size))
        for i in range(0, size, 5):
            del db.data[b"key:%d" % i]

    def key() -> bytes:
        return b"key:%d" % rng.randrange(size + size // 5)

    def one() -> Argv:
        kind = rng.choice(
            [
                "get",
                "get",
                "set",
                "incr",
                "lpush",
                "mget",
                "mset",
                "del",
                "exists",
                "lpop",
                "lrange",
            ]
        )
        if kind in ("mget", "exists"):
            return [kind.encode()] + [key() for _ in range(rng.choice([3, 80]))]
        if kind == "mset":
            return [b"MSET"] + [part for _ in range(rng.choice([2, 70])) for part in (key(), b"7")]
        argv = {"get": [b"GET"], "set": [b"SET", None, b"x"], "incr": [b"INCRBY", None, b"3"],
                "lpush": [b"LPUSH", None, b"item"], "del": [b"DEL"], "lpop": [b"LPOP"],
                "lrange": [b"LRANGE", None, b"0", b"-1"]}[kind]  # fmt: skip
        return [argv[0], key(), *argv[2:]]

    chunks = [[one() for _ in range(100)] for _ in range(3)]
    expected = run_pipeline(loop, None, chunks, prepare)
    assert run_pipeline(loop, fast_execute(), chunks, prepare) == expected


# -- execute, directly -----------------------------------------------------------------------------


def keyspace(**data: Any) -> Keyspace:
    db = Keyspace()
    db.data.update({key.encode(): value for key, value in data.items()})
    return db


@needs_fastpath
@pytest.mark.parametrize(
    "argv",
    [
        [b"HSETNX", b"h", b"f", b"v"],
        [b"GET"],
        [b"GET", b"a", b"b"],
        [b"SET", b"a", b"1", b"EX", b"100"],
        [b"SET", b"a", b"1", b"NX"],
        [b"MSET", b"a", b"1", b"b"],
        [b"MGET"],
        [b"INCRBY", b"a", b"007"],
        [b"INCRBY", b"a", b"-0"],
        [b"INCRBY", b"a", b"1000000000000000000"],
        [b"LPUSH", b"a"],
        [b"PING", b"hi"],
        [b"GETS", b"a"],
        [b"NOSUCHCOMMAND"],
        [b"LPOP", b"a", b"0"],
        [b"RPOP", b"a", b"-1"],
        [b"LPOP", b"a", b"1000000000000000000"],
        [b"LPOP", b"a", b"1", b"2"],
        [b"LRANGE", b"a", b"0"],
        [b"LRANGE", b"a", b"x", b"1"],
        [b"LINDEX", b"a", b"-0"],
        [b"LLEN"],
        [b"DEL"],
        [b"EXISTS"],
        [b"EXPIRE", b"a", b"100", b"NX"],
        [b"EXPIRE", b"a", b"0"],
        [b"PEXPIRE", b"a", b"-5"],
        [b"EXPIRE", b"a", b"9223372036854776"],  # past LLONG_MAX / 1000 seconds
        [b"TTL", b"a", b"b"],
        [b"SADD", b"s"],
        [b"SREM", b"s"],
        [b"SISMEMBER", b"s"],
        [b"SMISMEMBER", b"s"],
        [b"SCARD", b"s", b"x"],
        [b"SPOP", b"s", b"1"],
        [b"SPOP"],
        [b"HSET", b"h", b"f"],
        [b"HSET", b"h", b"f", b"v", b"g"],
        [b"HGET", b"h"],
        [b"HEXISTS", b"h", b"f", b"g"],
        [b"HDEL", b"h"],
        [b"HLEN"],
        [b"HMGET", b"h"],
        [b"HINCRBY", b"h", b"f"],
        [b"HINCRBY", b"h", b"f", b"1.5"],
        [b"HINCRBY", b"h", b"f", b"1000000000000000000"],
    ],
)
def test_execute_leaves_what_it_does_not_handle(argv: Argv) -> None:
    db = keyspace(a=b"1")
    replies: list[bytes] = []
    commands = [[b"PING"], argv, [b"PING"]]
    assert fast_execute()(commands, 1, db, replies) == 1
    assert replies == []
    assert db.data == {b"a": b"1"}
    assert (db.hits, db.misses) == (0, 0)


@needs_fastpath
@pytest.mark.parametrize(
    "argv",
    [
        [b"GET", b"t"],
        [b"MGET", b"a", b"t"],
        [b"INCR", b"t"],
        [b"DECRBY", b"t", b"2"],
        [b"LPUSH", b"t", b"x"],
        [b"LPOP", b"t"],
        [b"RPOP", b"t", b"2"],
        [b"LRANGE", b"t", b"0", b"-1"],
        [b"LINDEX", b"t", b"0"],
        [b"LLEN", b"t"],
        [b"SADD", b"t", b"x"],
        [b"SPOP", b"t"],
        [b"SCARD", b"t"],
        [b"HSET", b"t", b"f", b"v"],
        [b"HGET", b"t", b"f"],
        [b"HINCRBY", b"t", b"f", b"1"],
    ],
)
def test_execute_stops_at_a_key_with_a_time_to_live(argv: Argv) -> None:
    db = keyspace(a=b"1", t=b"5")
    db.expires[b"t"] = now_ms() + 100_000
    replies: list[bytes] = []
    commands = [[b"SET", b"b", b"2"], [b"get", b"a"], argv, [b"GET", b"b"]]
    assert fast_execute()(commands, 0, db, replies) == 2
    assert replies == [b"+OK\r\n$1\r\n1\r\n"]
    assert db.data == {b"a": b"1", b"t": b"5", b"b": b"2"}
    assert (db.hits, db.misses) == (1, 0)


@needs_fastpath
@pytest.mark.parametrize(
    "argv",
    [[b"SET", b"t", b"9"], [b"MSET", b"a", b"8", b"t", b"9"], [b"mset", b"t", b"9", b"t", b"9"]],
)
def test_set_and_mset_drop_a_time_to_live(argv: Argv) -> None:
    db = keyspace(a=b"1", t=b"5", u=b"6")
    db.expires.update({b"t": now_ms() + 100_000, b"u": now_ms() + 100_000})
    replies: list[bytes] = []
    assert fast_execute()([argv, [b"GET", b"t"]], 0, db, replies) == 2
    assert replies == [b"+OK\r\n$1\r\n9\r\n"]
    assert db.expires.keys() == {b"u"}
    assert db.data[b"t"] == b"9"


@needs_fastpath
@pytest.mark.parametrize(
    "argv",
    [
        [b"GET", b"h"],
        [b"INCR", b"h"],
        [b"INCRBY", b"l", b"1"],
        [b"INCR", b"s"],  # a string that is not an integer: Python's error
        [b"LPUSH", b"s", b"x"],
        [b"RPUSH", b"h", b"x"],
        [b"LPOP", b"s"],
        [b"RPOP", b"h", b"2"],
        [b"LRANGE", b"s", b"0", b"-1"],
        [b"LINDEX", b"h", b"0"],
        [b"LLEN", b"s"],
        [b"SADD", b"h", b"x"],
        [b"SREM", b"s", b"x"],
        [b"SISMEMBER", b"l", b"x"],
        [b"SMISMEMBER", b"h", b"x"],
        [b"SCARD", b"s"],
        [b"SPOP", b"h"],
        [b"HSET", b"m", b"f", b"v"],
        [b"HGET", b"s", b"f"],
        [b"HEXISTS", b"l", b"f"],
        [b"HDEL", b"m", b"x"],
        [b"HLEN", b"s"],
        [b"HMGET", b"m", b"f"],
        [b"HINCRBY", b"m", b"f", b"1"],
    ],
)
def test_execute_leaves_a_value_of_another_type_to_python(argv: Argv) -> None:
    db = keyspace(h={b"f": b"v"}, l=deque([b"x"]), s=b"text", m={b"x"})
    replies: list[bytes] = []
    assert fast_execute()([argv], 0, db, replies) == 0
    assert replies == []
    assert (db.hits, db.misses) == (0, 0)
    assert db.data == {b"h": {b"f": b"v"}, b"l": deque([b"x"]), b"s": b"text", b"m": {b"x"}}


@needs_fastpath
@pytest.mark.parametrize(
    "stored",
    [b"007", b"-0", b"00", b"", b"+1", b" 1", b"1.5", b"-", b"1000000000000000000", b"\xff"],
)
def test_execute_leaves_a_counter_that_is_not_a_plain_integer(stored: bytes) -> None:
    db = keyspace(n=stored)
    replies: list[bytes] = []
    for argv in (
        [b"INCR", b"n"],
        [b"DECR", b"n"],
        [b"INCRBY", b"n", b"1"],
        [b"DECRBY", b"n", b"1"],
    ):
        assert fast_execute()([argv], 0, db, replies) == 0
    assert replies == []
    assert db.data == {b"n": stored}


@needs_fastpath
def test_execute_counts_up_to_eighteen_digits_and_past_them() -> None:
    db = keyspace(a=b"999999999999999999", b=b"-999999999999999999")
    replies: list[bytes] = []
    commands = [
        [b"INCR", b"a"],
        [b"DECRBY", b"b", b"999999999999999999"],
        [b"INCRBY", b"new", b"-999999999999999999"],
        [b"INCR", b"a"],  # now 19 digits: Python's
    ]
    assert fast_execute()(commands, 0, db, replies) == 3
    assert replies == [b":1000000000000000000\r\n:-1999999999999999998\r\n:-999999999999999999\r\n"]
    assert db.data == {
        b"a": b"1000000000000000000",
        b"b": b"-1999999999999999998",
        b"new": b"-999999999999999999",
    }


@needs_fastpath
def test_mget_of_a_key_of_another_type_is_nil_and_a_hit_as_in_python() -> None:
    db = keyspace(h={b"f": b"v"}, s=b"text")
    replies: list[bytes] = []
    assert fast_execute()([[b"MGET", b"h", b"s", b"none"]], 0, db, replies) == 1
    assert replies == [b"*3\r\n$-1\r\n$4\r\ntext\r\n$-1\r\n"]
    assert (db.hits, db.misses) == (2, 1)


@needs_fastpath
def test_execute_appends_one_piece_and_nothing_when_it_ran_nothing() -> None:
    db = keyspace()
    replies: list[bytes] = [b"earlier"]
    commands = [[b"PING"], [b"SET", b"a", b"1"], [b"INCR", b"a"], [b"RPUSH", b"l", b"x", b"y"]]
    assert fast_execute()(commands, 0, db, replies) == 4
    assert replies == [b"earlier", b"+PONG\r\n+OK\r\n:2\r\n:2\r\n"]
    assert db.data == {b"a": b"2", b"l": deque([b"x", b"y"])}
    assert fast_execute()(commands, 4, db, replies) == 4  # nothing left
    assert fast_execute()([[b"ECHO", b"x"]], 0, db, replies) == 0  # nothing it handles
    assert fast_execute()([], 0, db, replies) == 0
    assert replies == [b"earlier", b"+PONG\r\n+OK\r\n:2\r\n:2\r\n"]


@needs_fastpath
def test_execute_rejects_a_negative_start() -> None:
    replies: list[bytes] = []
    with pytest.raises(ValueError, match="negative"):
        fast_execute()([[b"PING"]], -1, keyspace(), replies)
    assert replies == []


@needs_fastpath
def test_a_reply_larger_than_the_in_place_buffer_is_exact() -> None:
    values = [bytes([65 + i % 26]) * 1024 for i in range(200)]
    db = keyspace(**{f"k{i}": value for i, value in enumerate(values)})
    argv = [b"MGET"] + [b"k%d" % i for i in range(200)] + [b"missing"]
    replies: list[bytes] = []
    commands = [[b"PING"], argv, [b"GET", b"k199"]]
    assert fast_execute()(commands, 0, db, replies) == 3
    expected = (
        b"+PONG\r\n*201\r\n"
        + b"".join(b"$1024\r\n" + value + b"\r\n" for value in values)
        + b"$-1\r\n$1024\r\n"
        + values[199]
        + b"\r\n"
    )
    assert replies == [expected]
    assert (db.hits, db.misses) == (201, 1)


# -- the list and key commands, directly -----------------------------------------------------------


def python_range(items: list[bytes], start: int, stop: int) -> list[bytes]:
    """LRANGE by Redis's rules, spelled out on a list."""
    size = len(items)
    start, stop = start + size if start < 0 else start, stop + size if stop < 0 else stop
    return items[max(start, 0) : stop + 1]


@needs_fastpath
def test_lrange_walks_from_either_end_and_gives_every_range() -> None:
    """Ranges nearer the head are walked forward, those nearer the tail backward (past the
    64 elements held in place, too); each is the slice Redis gives."""
    elements = [b"e%d" % i for i in range(300)]
    db = keyspace(l=deque(elements))
    bounds = [0, 1, 63, 64, 65, 149, 150, 236, 299, 300, 1000, -1, -2, -64, -65, -300, -301]
    commands = [[b"LRANGE", b"l", b"%d" % a, b"%d" % b] for a in bounds for b in bounds]
    replies: list[bytes] = []
    assert fast_execute()(commands, 0, db, replies) == len(commands)
    expected = b"".join(
        b"*%d\r\n" % len(found) + b"".join(b"$%d\r\n%b\r\n" % (len(e), e) for e in found)
        for found in (python_range(elements, int(a), int(b)) for _, _, a, b in commands)
    )
    assert replies == [expected]
    assert (db.hits, db.misses) == (len(commands), 0)


@needs_fastpath
def test_pops_lindex_and_llen() -> None:
    db = keyspace(l=deque([b"a", b"b", b"c", b"d"]), m=deque([b"x"]))
    commands = [
        [b"LINDEX", b"l", b"1"],
        [b"LINDEX", b"l", b"-1"],
        [b"LINDEX", b"l", b"4"],  # out of range: nil, a hit
        [b"LINDEX", b"none", b"0"],  # a miss
        [b"LLEN", b"l"],
        [b"LLEN", b"none"],
        [b"lpop", b"l"],
        [b"RPOP", b"l", b"2"],
        [b"LPOP", b"none"],  # nothing to pop: no hit or miss, as lists.py's ``write``
        [b"RPOP", b"none", b"2"],
        [b"RPOP", b"m", b"5"],  # empties m: the key goes
        [b"LLEN", b"l"],
    ]
    replies: list[bytes] = []
    assert fast_execute()(commands, 0, db, replies) == len(commands)
    assert replies == [
        b"$1\r\nb\r\n$1\r\nd\r\n$-1\r\n$-1\r\n:4\r\n:0\r\n$1\r\na\r\n"
        b"*2\r\n$1\r\nd\r\n$1\r\nc\r\n$-1\r\n*-1\r\n*1\r\n$1\r\nx\r\n:1\r\n"
    ]
    assert db.data == {b"l": deque([b"b"])}
    assert (db.hits, db.misses) == (5, 2)


@needs_fastpath
def test_keys_with_a_time_to_live_ahead_run_here() -> None:
    deadline = now_ms() + 100_000
    db = keyspace(a=b"1", t=b"2", u=b"3")
    db.expires.update({b"t": deadline, b"u": deadline})
    commands = [
        [b"EXISTS", b"t", b"a", b"t", b"none"],
        [b"TTL", b"t"],
        [b"TTL", b"a"],
        [b"PTTL", b"none"],
        [b"DEL", b"t", b"none"],
        [b"EXPIRE", b"u", b"1000"],
        [b"PEXPIRE", b"a", b"5000"],
        [b"PEXPIRE", b"none", b"5000"],
    ]
    before = now_ms()
    replies: list[bytes] = []
    assert fast_execute()(commands, 0, db, replies) == len(commands)
    after = now_ms()
    assert replies == [b":3\r\n:100\r\n:-1\r\n:-2\r\n:1\r\n:1\r\n:1\r\n:0\r\n"]
    assert db.data == {b"a": b"1", b"u": b"3"}
    assert before + 1_000_000 <= db.expires[b"u"] <= after + 1_000_000
    assert before + 5_000 <= db.expires[b"a"] <= after + 5_000
    assert db.expires.keys() == {b"u", b"a"}
    assert (db.hits, db.misses) == (5, 2)  # EXISTS, TTL and PTTL look up as reads
    pttl: list[bytes] = []
    assert fast_execute()([[b"PTTL", b"a"]], 0, db, pttl) == 1
    assert 0 < int(pttl[0][1:-2]) <= 5_000


@needs_fastpath
@pytest.mark.parametrize(
    "argv",
    [
        [b"EXISTS", b"a", b"gone"],
        [b"DEL", b"a", b"gone"],  # a stays: nothing changes before Python has it
        [b"TTL", b"gone"],
        [b"PTTL", b"gone"],
        [b"EXPIRE", b"gone", b"100"],
    ],
)
def test_a_key_past_its_time_is_left_to_python(argv: Argv) -> None:
    """Python deletes it and journals the DEL (store.py ``expire_if_due``)."""
    db = keyspace(a=b"1", gone=b"2")
    db.expires[b"gone"] = now_ms() - 1
    replies: list[bytes] = []
    assert fast_execute()([[b"TTL", b"a"], argv], 0, db, replies, bytearray()) == 1
    assert replies == [b":-1\r\n"]
    assert db.data == {b"a": b"1", b"gone": b"2"}
    assert (db.hits, db.misses) == (1, 0)


@needs_fastpath
def test_writes_are_journaled_as_redis_logs_them() -> None:
    """Pops and DEL that changed something log their request, EXPIRE its absolute
    PEXPIREAT; a pop or DEL that found nothing, an EXPIRE of a missing key and reads log
    nothing (persistence/aof.py)."""
    db = keyspace(l=deque([b"a", b"b", b"c"]), k=b"v")
    commands = [
        [b"LPOP", b"none"],
        [b"RPOP", b"none", b"2"],
        [b"DEL", b"none"],
        [b"EXPIRE", b"none", b"10"],
        [b"LRANGE", b"l", b"0", b"-1"],
        [b"LLEN", b"l"],
        [b"EXISTS", b"l"],
        [b"TTL", b"l"],
        [b"lpop", b"l"],
        [b"RPOP", b"l", b"5"],
        [b"EXPIRE", b"k", b"10"],
        [b"DEL", b"k", b"none", b"k"],
    ]
    journal = bytearray(b"before")
    replies: list[bytes] = []
    assert fast_execute()(commands[:-1], 0, db, replies, journal) == len(commands) - 1
    deadline = db.expires[b"k"]
    assert fast_execute()(commands, len(commands) - 1, db, replies, journal) == len(commands)
    assert db.data == {}
    logged = [resp(*argv) for argv in ([b"lpop", b"l"], [b"RPOP", b"l", b"5"])]
    logged.append(resp(b"PEXPIREAT", b"k", b"%d" % deadline))
    logged.append(resp(b"DEL", b"k", b"none", b"k"))
    assert journal == b"before" + b"".join(logged)


@needs_fastpath
def test_expire_logs_the_deadline_it_set() -> None:
    db = keyspace(k=b"v")
    journal = bytearray()
    assert fast_execute()([[b"PEXPIRE", b"k", b"100000"]], 0, db, [], journal) == 1
    assert journal == resp(b"PEXPIREAT", b"k", b"%d" % db.expires[b"k"])


@needs_fastpath
@pytest.mark.parametrize(
    "argv", [[b"LPOP", b"w"], [b"RPOP", b"w", b"2"], [b"DEL", b"a", b"w"], [b"EXPIRE", b"w", b"9"]]
)
def test_a_write_to_a_waited_key_is_left_to_python(argv: Argv) -> None:
    """Python serves the clients blocked on it (a deleted stream answers XREADGROUP)."""
    db = keyspace(a=b"1", w=deque([b"x", b"y"]))
    replies: list[bytes] = []
    assert fast_execute()([[b"LLEN", b"w"], argv], 0, db, replies, None, {b"w": 1}) == 1
    assert replies == [b":2\r\n"]
    assert db.data == {b"a": b"1", b"w": deque([b"x", b"y"])}


@needs_fastpath
def test_list_commands_keep_reference_counts_exact() -> None:
    """Ranges read the deque's elements without keeping them; pops hand theirs on."""
    element = b"an element of its own"
    db = keyspace(l=deque([element] * 100))
    held = sys.getrefcount(element)
    forward, backward = [b"LRANGE", b"l", b"0", b"9"], [b"LRANGE", b"l", b"-80", b"-1"]
    for _ in range(2_000):
        assert fast_execute()([forward, backward, [b"LINDEX", b"l", b"5"]], 0, db, []) == 3
    assert sys.getrefcount(element) == held
    fresh = b"pushed and popped"
    pushed = sys.getrefcount(fresh)
    for _ in range(2_000):
        commands = [[b"LPUSH", b"m", fresh, fresh], [b"RPOP", b"m", b"2"]]
        commands += [[b"LPUSH", b"m", fresh], [b"LPOP", b"m"]]
        assert fast_execute()(commands, 0, db, []) == 4
    del commands
    assert sys.getrefcount(fresh) == pushed
    assert b"m" not in db.data


@needs_fastpath
@pytest.mark.parametrize(
    "stored",
    [b"007", b"-0", b"", b"+1", b"1.5", b"1000000000000000000", b"9223372036854775807"],
)
def test_hincrby_leaves_a_field_that_is_not_a_plain_integer_or_would_overflow(
    stored: bytes,
) -> None:
    db = keyspace(h={b"f": stored})
    replies: list[bytes] = []
    assert fast_execute()([[b"HINCRBY", b"h", b"f", b"999999999999999999"]], 0, db, replies) == 0
    assert replies == []
    assert db.data == {b"h": {b"f": stored}}


@needs_fastpath
def test_hincrby_counts_up_to_eighteen_digits() -> None:
    db = keyspace(h={b"f": b"-999999999999999999"})
    replies: list[bytes] = []
    commands = [
        [b"HINCRBY", b"h", b"f", b"-999999999999999999"],
        [b"HINCRBY", b"h", b"new", b"7"],
        [b"HINCRBY", b"n", b"f", b"-3"],
    ]
    assert fast_execute()(commands, 0, db, replies) == 3
    assert replies == [b":-1999999999999999998\r\n:7\r\n:-3\r\n"]
    assert db.data == {b"h": {b"f": b"-1999999999999999998", b"new": b"7"}, b"n": {b"f": b"-3"}}


@needs_fastpath
def test_spop_picks_each_member_about_as_often() -> None:
    """Four members, 4,000 pops each followed by the member's return: each comes about 1,000
    times (a spread past 150 is over five standard deviations)."""
    db = keyspace(s={b"a", b"b", b"c", b"d"})
    counts = dict.fromkeys(db.data[b"s"], 0)
    for _ in range(4000):
        replies: list[bytes] = []
        assert fast_execute()([[b"SPOP", b"s"]], 0, db, replies) == 1
        member = replies[0].split(b"\r\n")[1]
        counts[member] += 1
        db.data[b"s"].add(member)
    assert all(850 < count < 1150 for count in counts.values()), counts


@needs_fastpath
def test_spop_drains_a_set_whose_table_is_mostly_empty() -> None:
    """A set of 20,000 members with all but ten removed keeps its large table: SPOP then
    takes set.pop's member, and each of the ten comes once before the key goes."""
    members = {b"member:%d" % i for i in range(20_000)}
    left = {b"member:%d" % i for i in range(10)}
    members.intersection_update(left)
    db = keyspace(s=members)
    replies: list[bytes] = []
    journal = bytearray()
    assert fast_execute()([[b"SPOP", b"s"]] * 11, 0, db, replies, journal) == 11
    popped = replies[0].split(b"\r\n")[1:-1:2][:10]
    assert set(popped) == left
    assert replies[0].endswith(b"$-1\r\n")
    assert db.data == {}
    assert bytes(journal) == b"".join(encode([b"SREM", b"s", member]) for member in popped)


@needs_fastpath
def test_set_and_hash_writes_journal_what_python_does() -> None:
    """Each write as its request, but a SADD, SREM or HDEL that changed nothing (not at all)
    and an SPOP (the SREM of what it popped), as persistence/aof.py's propagate says; reads
    journal nothing."""
    db = keyspace()
    pipeline = [
        [b"SADD", b"s", b"a", b"b"],
        [b"sadd", b"s", b"a"],
        [b"SREM", b"s", b"x"],
        [b"SREM", b"none", b"x"],
        [b"SISMEMBER", b"s", b"a"],
        [b"SMISMEMBER", b"s", b"a", b"x"],
        [b"SCARD", b"s"],
        [b"SPOP", b"s"],
        [b"SPOP", b"none"],
        [b"HSET", b"h", b"f", b"1"],
        [b"hset", b"h", b"f", b"1"],
        [b"HINCRBY", b"h", b"f", b"2"],
        [b"HDEL", b"h", b"x"],
        [b"HDEL", b"h", b"f"],
        [b"HGET", b"h", b"f"],
        [b"HEXISTS", b"h", b"f"],
        [b"HLEN", b"h"],
        [b"HMGET", b"h", b"f"],
        [b"SREM", b"s", b"a", b"b"],
    ]
    replies: list[bytes] = []
    journal = bytearray()
    assert fast_execute()(pipeline, 0, db, replies, journal) == len(pipeline)
    reply_list = []
    position = 0
    while position < len(replies[0]):
        end = reply_end(replies[0], position)
        assert end is not None
        reply_list.append(replies[0][position:end])
        position = end
    expected = b"".join(
        encode(record)
        for argv, reply in zip(pipeline, reply_list, strict=True)
        if argv[0].upper() not in READS
        for record in propagate(db, argv, reply, True)
    )
    assert bytes(journal) == expected
    assert expected.count(b"SREM") == 2 and b"SPOP" not in expected
    assert db.data == {}


READS = {b"SISMEMBER", b"SMISMEMBER", b"SCARD", b"HGET", b"HEXISTS", b"HLEN", b"HMGET"}


@needs_fastpath
def test_set_and_hash_commands_keep_reference_counts() -> None:
    """Every object the commands are given or store is held exactly as often after 2,000
    rounds as before, and the rounds leave no memory behind (what they make, as HINCRBY's
    value, is freed): nothing leaks, nothing is freed early."""
    key, member, field, value = b"key-%d" % 1, b"member-%d" % 2, b"field-%d" % 3, b"v-%d" % 4
    counter = b"counter-%d" % 5
    commands = [
        [b"SADD", key, member],
        [b"SISMEMBER", key, member],
        [b"SMISMEMBER", key, member, field],
        [b"SCARD", key],
        [b"SPOP", key],
        [b"SADD", key, member, field],
        [b"SREM", key, member, field],
        [b"HSET", key, field, value],
        [b"HGET", key, field],
        [b"HMGET", key, field, member],
        [b"HEXISTS", key, field],
        [b"HLEN", key],
        [b"HINCRBY", key, counter, b"100"],
        [b"HDEL", key, field, counter],
    ]
    db = keyspace()
    journal = bytearray()
    fast_execute()(commands, 0, db, [], journal)
    before = [sys.getrefcount(item) for item in (key, member, field, value, counter)]
    tracemalloc.start()
    try:
        for _ in range(2000):
            assert fast_execute()(commands, 0, db, [], journal) == len(commands)
            del journal[:]
        left, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(item) for item in (key, member, field, value, counter)] == before
    assert left < 16 * 1024  # 2,000 rounds of a leak of one small object: over 60 KB
    assert db.data == {}


# -- sorted sets -----------------------------------------------------------------------------------

MEMBERS = [b"m1", b"m2", b"m3", b"", b"x" * 65]  # the last one is past a listpack's 64 bytes
SCORES = [
    *(b"0", b"-0", b"1", b"-1", b"2.5", b"+3", b".5", b"5.", b"-0.0", b"0.1", b"100"),
    *(b"inf", b"-inf", b"1e3", b"nan", b" 1", b"1 ", b"", b"abc", b"0x10", b"1.2.3", b"-"),
    *(b"+.5", b"-.5", b"00.10", b"-00", b"+0", b".", b"123456789012345", b"-1234567890123456"),
    *(b"0000000000000000000001", b"9" * 38, b"0." + b"0" * 37 + b"1", b"1" * 41),
]
scores = st.one_of(
    st.sampled_from(SCORES),
    st.integers(-(10**17), 10**17).map(lambda n: b"%d" % n),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: repr(x).encode()),
)
members = st.sampled_from(MEMBERS)
ZADD_OPTIONS: list[Argv] = [[b"NX"], [b"XX"], [b"CH"], [b"GT"], [b"incr"], [b"XX", b"CH"]]
COUNTS = [b"0", b"1", b"2", b"200", b"-1", b"x", b"007"]


@st.composite
def zset_command(draw: st.DrawFn) -> Argv:
    """The sorted set commands of the fast path, in shapes it runs and shapes it leaves, and
    a few that only Python runs, which read what the others did."""
    name = draw(
        st.sampled_from(
            [
                *("zadd", "zadd", "zadd", "zincrby", "zscore", "zrank", "zrevrank", "zcard"),
                *("zpopmin", "zpopmax", "zrem", "zrange", "zrangebyscore", "object"),
            ]
        )
    )
    key = draw(keys)
    argv = [draw(spelled(name)), key]
    if name == "zadd":
        shape = draw(st.sampled_from(["plain"] * 5 + ["options", "odd", "many"]))
        if shape == "options":
            argv += draw(st.sampled_from(ZADD_OPTIONS))
        if shape == "many":  # past a listpack's 128 entries
            argv += [part for i in range(130) for part in (b"%d" % (i % 7), b"n%d" % i)]
        for _ in range(draw(st.integers(1, 3))):
            argv += [draw(scores), draw(members)]
        if shape == "odd":
            argv.append(draw(scores))
    elif name == "zincrby":
        argv += [draw(scores), draw(members)][: draw(st.sampled_from([2, 2, 2, 1]))]
    elif name in ("zscore", "zrank", "zrevrank"):
        argv += draw(st.lists(members, min_size=(n := draw(small_counts)), max_size=n))
    elif name in ("zpopmin", "zpopmax"):
        argv += draw(st.lists(st.sampled_from(COUNTS), max_size=draw(st.sampled_from([0, 1, 2]))))
    elif name == "zrem":
        argv.append(draw(members))
    elif name == "zrange":
        argv += [b"0", b"-1", b"WITHSCORES"]
    elif name == "zrangebyscore":
        argv += [b"(0", b"+inf", b"WITHSCORES"]
    elif name == "object":
        argv[1:] = [b"ENCODING", key]
    return argv


@needs_fastpath
@settings(max_examples=200, deadline=None)
@given(
    pipeline=st.lists(
        st.one_of(zset_command(), zset_command(), zset_command(), other_command()),
        min_size=10,
        max_size=40,
    ),
    at=cuts,
    journaled=st.booleans(),
)
@example(  # -0 in a listpack and past it, ZINCRBY to NaN, pops that empty the set
    pipeline=[
        [b"ZADD", b"a", b"-0", b"m1", b"1", b"m2"],
        [b"ZINCRBY", b"a", b"-0", b"m3"],
        [b"ZINCRBY", b"a", b"inf", b"m2"],
        [b"ZINCRBY", b"a", b"-inf", b"m2"],
        [b"ZADD", b"a", b"-0", b"x" * 65],
        [b"ZADD", b"a", b"-0", b"m1"],
        [b"ZSCORE", b"a", b"m1"],
        [b"ZREVRANK", b"a", b"m1"],
        [b"ZPOPMAX", b"a", b"2"],
        [b"ZPOPMIN", b"a", b"5"],
        [b"ZCARD", b"a"],
        [b"ZPOPMIN", b"a"],
        [b"ZPOPMIN", b"a", b"0"],
    ],
    at=[4],
    journaled=True,
)
def test_sorted_set_commands_in_c_and_python_agree(
    loop: asyncio.AbstractEventLoop, pipeline: list[Argv], at: list[int], journaled: bool
) -> None:
    expected = run_pipeline(loop, None, [pipeline], journaled=journaled)
    for chunks in ([pipeline], cut(pipeline, at)):
        assert run_pipeline(loop, fast_execute(), chunks, journaled=journaled) == expected, chunks


@needs_fastpath
@pytest.mark.parametrize("text", SCORES)
def test_every_score_text_reads_and_prints_as_in_python(
    loop: asyncio.AbstractEventLoop, text: bytes
) -> None:
    """Each score of the list, in a listpack-sized set and in a big one: what the C path
    takes it converts as zscores.parse_score does, and prints as reply_score does."""
    for member in (b"small", b"x" * 65):  # a listpack, a skip list
        pipeline = [
            [b"ZADD", b"z", text, member],
            [b"ZSCORE", b"z", member],
            [b"ZINCRBY", b"z", text, member],
            [b"ZINCRBY", b"z", text, b"other"],
            [b"ZPOPMIN", b"z", b"2"],
        ]
        expected = run_pipeline(loop, None, [pipeline])
        assert run_pipeline(loop, fast_execute(), [pipeline]) == expected


@needs_fastpath
def test_a_growing_sorted_set_agrees_with_python(loop: asyncio.AbstractEventLoop) -> None:
    """redis-benchmark's shape: ZADD of random members to one key that holds thousands (its
    members' places in ``scores`` are prefetched a pipeline at a time), ZPOPMIN now and then,
    with reads between, in pipelines of sixteen."""
    rng = random.Random(11)
    filled = [(float(i % 500), b"element:%d" % i) for i in range(0, 4000, 2)]

    def prepare(db: Keyspace) -> None:
        db.data[b"myzset"] = SortedSet(filled)

    def one() -> Argv:
        kind = rng.choice(["zadd"] * 6 + ["zpopmin", "zpopmax", "zscore", "zrank", "zincrby"])
        member = b"element:%d" % rng.randrange(4000)
        score = b"%d" % rng.randrange(1000) if rng.random() < 0.7 else repr(rng.random()).encode()
        return {"zadd": [b"ZADD", b"myzset", score, member],
                "zincrby": [b"ZINCRBY", b"myzset", score, member],
                "zscore": [b"ZSCORE", b"myzset", member],
                "zrank": [b"ZRANK", b"myzset", member],
                "zpopmin": [b"ZPOPMIN", b"myzset"],
                "zpopmax": [b"ZPOPMAX", b"myzset", b"3"]}[kind]  # fmt: skip

    chunks = [[one() for _ in range(16)] for _ in range(60)]
    chunks.append([[b"ZRANGE", b"myzset", b"0", b"-1", b"WITHSCORES"], [b"ZCARD", b"myzset"]])
    expected = run_pipeline(loop, None, chunks, prepare, journaled=True)
    assert run_pipeline(loop, fast_execute(), chunks, prepare, journaled=True) == expected


def small_zset(**scores: float) -> SortedSet:
    return SortedSet([(score, member.encode()) for member, score in scores.items()])


@needs_fastpath
@pytest.mark.parametrize(
    "argv",
    [
        [b"ZADD", b"z", b"NX", b"1", b"m"],
        [b"ZADD", b"z", b"1e3", b"m"],
        [b"ZADD", b"z", b"inf", b"m"],
        [b"ZADD", b"z", b"1", b"m", b"nan", b"n"],  # nothing changes before Python's error
        [b"ZADD", b"z", b" 1", b"m"],
        [b"ZADD", b"z", b"1", b"m", b"2"],
        [b"ZADD", b"s", b"1", b"m"],
        [b"ZINCRBY", b"z", b"1"],
        [b"ZINCRBY", b"z", b"-inf", b"top"],  # inf - inf: not a number
        [b"ZSCORE", b"s", b"m"],
        [b"ZRANK", b"z", b"a", b"WITHSCORE"],
        [b"ZCARD", b"s"],
        [b"ZPOPMIN", b"z", b"-1"],
        [b"ZPOPMIN", b"z", b"1", b"2"],
        [b"ZPOPMAX", b"s"],
        [b"ZPOPMAX", b"s", b"0"],
    ],
)
def test_execute_leaves_sorted_set_cases_to_python(argv: Argv) -> None:
    db = keyspace(z=small_zset(a=1.0, top=math.inf), s=b"text")
    replies: list[bytes] = []
    assert fast_execute()([argv], 0, db, replies) == 0
    assert replies == []
    assert (db.hits, db.misses) == (0, 0)
    assert db.data == {b"z": small_zset(a=1.0, top=math.inf), b"s": b"text"}
    assert list(db.data[b"z"]) == [(1.0, b"a"), (math.inf, b"top")]


@needs_fastpath
def test_sorted_set_writes_to_a_waited_key_are_left_to_python() -> None:
    db = keyspace(waited=small_zset(a=1.0))
    waited = {b"waited": 1}
    for argv in (
        [b"ZADD", b"waited", b"1", b"b"],
        [b"ZINCRBY", b"waited", b"1", b"a"],
        [b"ZPOPMIN", b"waited"],
        [b"zpopmax", b"waited", b"1"],
    ):
        assert fast_execute()([[b"ZSCORE", b"waited", b"a"], argv], 0, db, [], None, waited) == 1
    assert list(db.data[b"waited"]) == [(1.0, b"a")]


@needs_fastpath
def test_the_fast_path_journals_sorted_set_writes_as_python_does() -> None:
    """What it journals is what aof.propagate gives for each write with its reply: ZADD and
    ZINCRBY as requested, a pop that took something as requested, one that took nothing and
    the reads not at all."""
    db = keyspace()
    pipeline = [
        [b"ZADD", b"z", b"1", b"a", b"2.5", b"b", b"-3", b"c"],
        [b"zadd", b"z", b"1", b"a"],
        [b"ZINCRBY", b"z", b"0.5", b"a"],
        [b"ZSCORE", b"z", b"a"],
        [b"ZRANK", b"z", b"b"],
        [b"ZREVRANK", b"z", b"b"],
        [b"ZCARD", b"z"],
        [b"ZPOPMIN", b"z"],
        [b"ZPOPMAX", b"z", b"0"],
        [b"ZPOPMAX", b"z", b"5"],
        [b"ZPOPMIN", b"z"],
        [b"ZPOPMIN", b"missing", b"2"],
    ]
    journal = bytearray()
    replies: list[bytes] = []
    assert fast_execute()(pipeline, 0, db, replies, journal) == len(pipeline)
    assert replies == [
        b":3\r\n:0\r\n$3\r\n1.5\r\n$3\r\n1.5\r\n:2\r\n:0\r\n:3\r\n"
        b"*2\r\n$1\r\nc\r\n$2\r\n-3\r\n*0\r\n"
        b"*4\r\n$1\r\nb\r\n$3\r\n2.5\r\n$1\r\na\r\n$3\r\n1.5\r\n*0\r\n*0\r\n"
    ]
    assert db.data == {}
    each, position = [], 0
    while position < len(replies[0]):
        end = reply_end(replies[0], position)
        assert end is not None
        each.append(replies[0][position:end])
        position = end
    logged = [
        record
        for argv, reply in zip(pipeline, each, strict=True)
        if DISPATCH[argv[0].lower()][0] in WRITES
        for record in propagate(db, argv, reply, existed=True)
    ]
    assert bytes(journal) == b"".join(map(encode, logged))


@needs_fastpath
def test_sorted_set_commands_keep_reference_counts_exact() -> None:
    """The set holds a member once (in ``scores`` and in the skip list) while it is there;
    reads and the commands that find it keep nothing; a pop hands its references back."""
    member, key = b"a member of its own", b"a key of its own"
    held = sys.getrefcount(member), sys.getrefcount(key)
    db = keyspace()
    for round_number in range(500):
        commands = [
            [b"ZADD", key, b"%d" % round_number, member, b"1.5", b"other"],
            [b"ZADD", key, b"%d.5" % round_number, member],
            [b"ZINCRBY", key, b"1", member],
            [b"ZSCORE", key, member],
            [b"ZRANK", key, member],
            [b"ZREVRANK", key, member],
            [b"ZCARD", key],
            [b"ZPOPMAX", key],
            [b"ZPOPMIN", key, b"5"],
        ]
        assert fast_execute()(commands, 0, db, [], bytearray()) == len(commands)
    del commands
    assert db.data == {}
    assert (sys.getrefcount(member), sys.getrefcount(key)) == held


@needs_fastpath
def test_sorted_set_commands_give_their_memory_back() -> None:
    """Thousands of ZADDs, ZINCRBYs, reads and pops of fresh members leave the heap as it was."""
    execute = fast_execute()
    db = keyspace()

    def one_round(round_number: int) -> None:
        members = [b"member:%d:%d" % (round_number, i) for i in range(500)]
        commands = [[b"ZADD", b"z", b"%d.5" % i, member] for i, member in enumerate(members)]
        commands += [[b"ZINCRBY", b"z", b"0.25", member] for member in members[::3]]
        commands += [[b"ZSCORE", b"z", member] for member in members[::5]]
        commands += [[b"ZREVRANK", b"z", member] for member in members[::5]]
        commands += [[b"ZPOPMIN", b"z", b"7"] for _ in range(40)] + [[b"ZPOPMAX", b"z"]] * 300
        assert execute(commands, 0, db, [], bytearray()) == len(commands)
        assert db.data == {}

    one_round(0)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for round_number in range(1, 11):
            one_round(round_number)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024


# -- read_commands, directly -----------------------------------------------------------------------

MAX_BULK = 512 * 1024 * 1024


def read_commands(data: bytes, max_bulk_len: int = MAX_BULK) -> tuple[list[Argv], int]:
    assert C_READ_COMMANDS is not None
    return C_READ_COMMANDS(data, max_bulk_len)


@needs_reader
def test_a_chunk_of_complete_commands_is_read_to_its_end() -> None:
    pipeline = [[b"SET", b"key", b"v" * 300], [b"GET", b"key"], [b"MGET", b"", b"a\r\nb"]]
    data = b"".join(resp(*argv) for argv in pipeline)
    assert read_commands(data) == (pipeline, len(data))


@needs_reader
def test_a_partial_tail_stops_at_the_last_complete_command() -> None:
    head = resp("SET", "a", "1") + resp("GET", "a")
    tail = resp("SET", "b", "22")
    for size in range(len(tail)):
        assert read_commands(head + tail[:size]) == (
            [[b"SET", b"a", b"1"], [b"GET", b"a"]],
            len(head),
        )


@needs_reader
def test_a_huge_count_returns_at_once_without_allocating() -> None:
    data = b"*2147483647\r\n$1\r\na\r\n"
    tracemalloc.start()
    try:
        started = time.perf_counter()
        assert read_commands(data) == ([], 0)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.1
    assert peak < 64 * 1024


@needs_reader
def test_an_empty_command_is_skipped() -> None:
    data = b"*0\r\n" + resp("PING") + b"*0\r\n"
    assert read_commands(data) == ([[b"PING"]], len(data))


@needs_reader
@pytest.mark.parametrize(
    "rest",
    [
        b"*-1\r\n",
        b"*01\r\n$4\r\nPING\r\n",
        b"*+1\r\n$4\r\nPING\r\n",
        b"*2147483648\r\n$4\r\nPING\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$01\r\na\r\n",
        b"*1\r\n$+1\r\na\r\n",
        b"*1\r\n:1\r\n",  # not a bulk string
        b"*1\r\n$11\r\nover-limit!\r\n",  # one byte over max_bulk_len
        b'GET "a"\r\n',  # inline, with quotes
        b"GET a\x0bb\r\n",  # inline, with a vertical tab (sdssplitargs keeps it in a word)
    ],
)
def test_reading_stops_at_what_is_not_a_plain_complete_command(rest: bytes) -> None:
    head = resp("SET", "a", "1234567890")  # a bulk of exactly max_bulk_len is read
    after = resp("PING")
    assert read_commands(head + rest + after, 10) == ([[b"SET", b"a", b"1234567890"]], len(head))


arguments = st.lists(st.binary(max_size=12), max_size=4)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.sampled_from([b"SELECT", b"select", b"MULTI", b"EXEC"]), arguments),
            st.tuples(st.sampled_from([b"SET", b"DEL", b"SELECTX", b"EXE", b""]), arguments),
        ),
        max_size=8,
    ),
    st.integers(0, 8),
)
def test_records_are_counted_as_python_counts_them(
    records: list[tuple[bytes, list[bytes]]], skip: int
) -> None:
    """count_records (the journaled commands after a mark, for the save points) in Python,
    and in C when it is built: SELECT, MULTI and EXEC are not changes, whatever their case;
    the rest are."""
    encoded = [encode([name, *args]) for name, args in records]
    journal = bytearray(b"".join(encoded))
    start = len(b"".join(encoded[:skip]))
    expected = sum(name.upper() not in (b"SELECT", b"MULTI", b"EXEC") for name, _ in records[skip:])
    assert count_records_python(journal, start) == expected
    if C_COUNT_RECORDS is not None:
        assert C_COUNT_RECORDS(journal, start) == expected
