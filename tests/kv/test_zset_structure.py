"""The sorted set value (zset.py) against a plain sorted list, the C order-statistic tree
(_zorder.c's ``ZOrder``) against sortedcontainers' ``SortedList`` it stands in for, and score
parsing (zscores.py) against the C library's own strtod."""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import math
import pickle
import random
import sys
import tracemalloc
from bisect import bisect_left
from typing import Any

import pytest
from sortedcontainers import SortedList

from residentd.apps.kv.zscores import format_score, parse_score, parse_score_range, reply_score
from residentd.apps.kv.zset import LEX_MAX, LEX_MIN, SortedSet
from residentd.speedups import native

ZOrder: Any = native("residentd.apps.kv._zorder", "ZOrder")
needs_zorder = pytest.mark.skipif(
    ZOrder is None, reason="_zorder is not loaded (not built, or RESIDENTD_PURE_PYTHON is set)"
)


def test_operations_match_a_sorted_list() -> None:
    rng = random.Random(5)
    zset = SortedSet()
    model: dict[bytes, float] = {}
    members = [b"m%d" % i for i in range(400)]
    for step in range(6000):
        member = rng.choice(members)
        action = rng.random()
        if action < 0.6:
            score = float(rng.randint(-50, 50)) / rng.choice((1, 2, 4))
            zset.add(member, score)
            model[member] = 0.0 if score == 0 else score
        elif action < 0.8:
            assert zset.remove(member) == (model.pop(member, None) is not None)
        elif action < 0.85:
            taken = zset.pop(rng.randint(1, 5), highest=rng.random() < 0.5)
            for _, popped in taken:
                del model[popped]
        elif action < 0.9 and model:
            start = rng.randrange(len(model))
            stop = start + rng.randint(0, 10)
            expected = sorted((s, m) for m, s in model.items())[start:stop]
            assert zset.delete_positions(start, stop) == len(expected)
            for _, removed in expected:
                del model[removed]
        ordered = sorted((s, m) for m, s in model.items())
        assert len(zset) == len(ordered)
        if step % 50 == 0:
            assert list(zset) == ordered
            assert zset.scores == model
            for rank, (_, m) in enumerate(ordered):
                assert zset.rank(m) == rank
            low, high = sorted(rng.uniform(-15, 15) for _ in range(2))
            low_open, high_open = rng.random() < 0.5, rng.random() < 0.5
            inside = [
                i
                for i, (s, _) in enumerate(ordered)
                if (s > low if low_open else s >= low) and (s < high if high_open else s <= high)
            ]
            found = zset.score_positions(low, low_open, high, high_open)
            assert list(found) == inside
            assert zset.entries(2, 7) == ordered[2:7]
    assert zset.big  # went past 128 members: a skip list in Redis


def test_infinite_bounds() -> None:
    zset = SortedSet([(-math.inf, b"low"), (0.0, b"mid"), (math.inf, b"top")])
    assert list(zset.score_positions(-math.inf, False, math.inf, False)) == [0, 1, 2]
    assert list(zset.score_positions(-math.inf, True, math.inf, True)) == [1]
    assert list(zset.score_positions(math.inf, False, math.inf, False)) == [2]
    assert list(zset.score_positions(math.inf, True, math.inf, False)) == []
    assert list(zset.score_positions(-math.inf, False, -math.inf, True)) == []


def test_lex_positions() -> None:
    zset = SortedSet([(0.0, m) for m in (b"", b"a", b"ab", b"b", b"c")])
    assert list(zset.lex_positions(LEX_MIN, LEX_MAX)) == [0, 1, 2, 3, 4]
    assert list(zset.lex_positions((b"a", False), (b"b", False))) == [1, 2, 3]
    assert list(zset.lex_positions((b"a", True), (b"b", True))) == [2]
    assert list(zset.lex_positions((b"", False), (b"", False))) == [0]
    assert list(zset.lex_positions(LEX_MAX, LEX_MIN)) == []
    assert list(zset.lex_positions((b"c", False), (b"a", False))) == []


def test_encoding_follows_redis_thresholds() -> None:
    small = SortedSet([(float(i), b"m%d" % i) for i in range(128)])
    assert small.encoding == b"listpack"
    small.add(b"one-more", 1.0)
    assert small.encoding == b"skiplist"
    small.remove(b"one-more")
    assert small.encoding == b"skiplist"  # never back, as in Redis
    assert SortedSet([(1.0, b"x" * 65)]).encoding == b"skiplist"
    assert SortedSet([(1.0, b"x" * 64)]).encoding == b"listpack"


def test_negative_zero_reads_back_as_zero_in_a_listpack() -> None:
    small = SortedSet([(-0.0, b"a")])
    assert math.copysign(1.0, small.scores[b"a"]) == 1.0
    big = SortedSet([(float(i), b"m%d" % i) for i in range(200)] + [(-0.0, b"z")])
    assert math.copysign(1.0, big.scores[b"z"]) == -1.0


@needs_zorder
def test_zorder_matches_a_sorted_list() -> None:
    """Random inserts, removes, ranks, bisects, slices and deletes of slices on both."""
    rng = random.Random(7)
    ours, theirs = ZOrder(), SortedList()
    members = [b"m%d" % i for i in range(300)] + [b"", b"m", b"m1\x00", b"\xff" * 70]
    scores = [-0.0, 0.0, 0.5, math.inf, -math.inf, 2.0**60, 1e-300]
    present: dict[bytes, float] = {}
    for step in range(12000):
        member = rng.choice(members)
        action = rng.random()
        if action < 0.5:
            if member in present:
                ours.remove((present[member], member))
                theirs.remove((present[member], member))
            score = rng.choice([float(rng.randint(-5, 5)), rng.random(), rng.choice(scores)])
            present[member] = score
            ours.add((score, member))
            theirs.add((score, member))
        elif action < 0.6 and present:
            member = rng.choice(list(present))
            score = present.pop(member)
            ours.remove((score, member))
            theirs.remove((score, member))
        elif action < 0.65 and theirs:
            i = rng.randrange(-len(theirs), len(theirs))
            assert ours[i] == theirs[i]
            start, stop = rng.randint(-3, len(theirs) + 3), rng.randint(-3, len(theirs) + 3)
            assert ours.islice(start, stop) == list(theirs.islice(start, stop))
            assert ours.islice(start, stop, reverse=True) == list(
                theirs.islice(start, stop, reverse=True)
            )
            assert ours[start:stop] == theirs[start:stop]
        elif action < 0.67 and theirs:
            start = rng.randrange(len(theirs))
            stop = start + rng.randint(0, 4)
            for _, gone in theirs.islice(start, stop):
                del present[gone]
            del ours[start:stop]
            del theirs[start:stop]
        elif action < 0.8:
            score = rng.choice([float(rng.randint(-6, 6)), *scores])
            key: tuple[float] | tuple[float, bytes] = (
                (score,) if rng.random() < 0.5 else (score, member)
            )
            assert ours.bisect_left(key) == theirs.bisect_left(key), key
            assert ours.bisect_right(key) == theirs.bisect_right(key), key
        if member in present:
            entry = (present[member], member)
            assert ours.index(entry) == theirs.index(entry)
        assert len(ours) == len(theirs)
        if step % 400 == 0:
            assert [(repr(s), m) for s, m in ours] == [(repr(s), m) for s, m in theirs]
    assert list(copy.deepcopy(ours)) == list(theirs) == list(pickle.loads(pickle.dumps(ours)))


@needs_zorder
def test_zorder_keeps_its_tree_whole_through_splits_and_joins() -> None:
    """Big enough for inner nodes to split, share out and join: 150,000 entries inserted in
    order, in reverse and shuffled (three inner levels), then removed one by one, by slices
    and from the front; the tree's own check (order, sizes, fill, separators, leaf list)
    after each batch, and the entries against a list."""
    rng = random.Random(4)
    entries = [(float(i // 3), b"x%06d" % i) for i in range(150_000)]
    ascending, descending = ZOrder(), ZOrder()
    for entry in entries:
        ascending.add(entry)
    for entry in reversed(entries):
        descending.add(entry)
    assert ascending._check() == descending._check() == 3
    assert list(ascending) == list(descending) == entries
    shuffled = entries[:]
    rng.shuffle(shuffled)
    mixed = ZOrder(shuffled)
    assert mixed._check() >= 2
    assert list(mixed) == entries
    for removed, entry in enumerate(shuffled[:100_000], 1):
        rank = ascending.index(entry)
        assert ascending[rank] == entry
        ascending.remove(entry)
        if removed % 20_000 == 0:
            ascending._check()
    assert list(ascending) == sorted(shuffled[100_000:])
    model = entries[:]
    while model:
        start = rng.randrange(len(model))
        stop = start + rng.choice((1, 40, 700, 9000))
        del mixed[start:stop]
        del model[start:stop]
        mixed._check()
        assert len(mixed) == len(model)
        if model:
            probe = rng.randrange(len(model))
            assert mixed[probe] == model[probe]
            assert mixed.bisect_left((model[probe][0],)) == bisect_left(model, (model[probe][0],))
    assert mixed._check() == 0
    for rank, entry in enumerate(entries):
        assert descending[0] == entry, rank
        del descending[0]
        if rank % 30_000 == 0:
            descending._check()
    assert len(descending) == 0
    assert descending._check() == 0


@needs_zorder
def test_zorder_refuses_what_a_sorted_set_never_holds() -> None:
    order = ZOrder([(1.0, b"a")])
    with pytest.raises(ValueError):
        order.add((math.nan, b"b"))
    with pytest.raises(TypeError):
        order.add((1.0, "text"))
    with pytest.raises(TypeError):
        order.add((1.0,))
    with pytest.raises(ValueError):
        order.remove((2.0, b"a"))
    with pytest.raises(ValueError):
        order.index((1.0, b"b"))
    with pytest.raises(IndexError):
        order[1]
    assert list(order) == [(1.0, b"a")]


@needs_zorder
def test_zorder_keeps_reference_counts_exact() -> None:
    """An entry holds its member once; what reads hand out is the caller's; a removal, a
    deleted slice and the order's end give every reference back."""
    member = b"a member of its own"
    held = sys.getrefcount(member)
    order = ZOrder([(float(i), member + b"%d" % i) for i in range(50)])
    for i in range(200):
        order.add((i / 7, member))
        assert sys.getrefcount(member) == held + 1
        entries = [order[order.index((i / 7, member))], *order.islice(0, 60, reverse=True)]
        del entries
        order.remove((i / 7, member))
        order.add((0.5, member))
        del order[order.bisect_left((0.5, member))]
    assert sys.getrefcount(member) == held
    order.add((1.0, member))
    del order
    assert sys.getrefcount(member) == held


@needs_zorder
def test_zorder_gives_its_memory_back() -> None:
    """Members and nodes are freed: rounds of inserts and deletes, each with members of its
    own (a reference kept too many would keep them), do not grow the heap."""
    rng = random.Random(3)

    def one_round() -> None:
        members = [b"member:%d" % rng.randrange(10**9) for _ in range(2000)]
        scores = {member: rng.random() for member in members}
        order = ZOrder()
        for member, score in scores.items():
            order.add((score, member))
        for member in members[::2]:
            order.remove((scores[member], member))
        del order[: len(order) // 2]
        order.islice(0, 10, reverse=True)

    one_round()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            one_round()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 64 * 1024


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"))
_LIBC.strtod.restype = ctypes.c_double
_LIBC.strtod.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p)]


def _strtod_whole(text: bytes) -> float | None:
    """libc strtod, accepted only if it reads the whole text (no ERANGE check)."""
    buffer = ctypes.create_string_buffer(text)
    end = ctypes.c_char_p()
    value = _LIBC.strtod(buffer, ctypes.byref(end))
    consumed = ctypes.cast(end, ctypes.c_void_p).value - ctypes.addressof(buffer)  # type: ignore[operator]
    return value if consumed == len(text) else None


TEXTS = [
    b"1", b"-1", b"+1", b"1.5", b".5", b"5.", b"1e3", b"1E+3", b"1e-3", b"-0", b"0x10",
    b"0x1.8p1", b"inf", b"-inf", b"+INF", b"Infinity", b"-infinity", b"1e308",
    b"1.7976931348623157e308", b"4.9e-324", b"", b" 1", b"1 ", b"1_0", b"nan", b"x", b"1e",
    b"e1", b".", b"--1", b"0x",
    b"1.2.3", b"infinit", b"1e400", b"1e-400", b"-1e400", b"0e400",
]  # fmt: skip


@pytest.mark.parametrize("text", TEXTS)
def test_parse_score_reads_what_strtod_reads(text: bytes) -> None:
    theirs = _strtod_whole(text)
    ours = parse_score(text)
    if text in (b"", b" 1", b"nan", b"1e400", b"1e-400", b"-1e400"):
        assert ours is None  # empty, a leading space, NaN, ERANGE: refused by Redis
    elif theirs is None:
        assert ours is None
    else:
        assert ours is not None and ours == theirs and str(ours) == str(theirs)


def test_score_ranges() -> None:
    assert parse_score_range(b"(1", b"+inf") == (1.0, True, math.inf, False)
    assert parse_score_range(b"", b"(") == (0.0, False, 0.0, True)
    assert parse_score_range(b" 2", b"1e400") == (2.0, False, math.inf, False)
    assert parse_score_range(b"nan", b"1") is None
    assert parse_score_range(b"1", b"((2") is None
    assert parse_score_range(b" ", b"1") is None


def test_score_formats() -> None:
    assert reply_score(1.0) == b"$1\r\n1\r\n"
    assert reply_score(0.1) == b"$19\r\n0.10000000000000001\r\n"
    assert reply_score(-math.inf) == b"$4\r\n-inf\r\n"
    assert reply_score(1e20) == b"$5\r\n1e+20\r\n"
    assert format_score(1e15) == b"1000000000000000"
    assert format_score(2.0**53) == b"9007199254740992"
    assert format_score(-0.0) == b"0"
    assert format_score(2.5) == b"2.5"
