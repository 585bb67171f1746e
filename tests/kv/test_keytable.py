"""kv's keyspace table (``KeyTable``, _keytable.h) against the dict it stands in for.

With the C speedups built, every database's ``data`` is a ``KeyTable``: a mapping of bytes
keys that keeps a string value of at most 15 bytes inside its entry. Random sequences of
every mapping operation (set, get, pop, del, setdefault, update, copy, clear, membership,
iteration, ==) run on a table and on a dict side by side, with values short and long,
empty, not bytes at all, and keys that collide in the table's slots; after each step both
hold the same keys in the same order with equal values. Direct tests pin what differs
from a dict by design (a short string read back is a new, equal object; keys must be
bytes), that iterating while keys are added or deleted raises, that copy() drops the holes
deleted keys leave, that every reference is given back, and that the fast path serves the
values the table keeps inline and the ones it keeps as objects the same.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.speedups import native

KeyTable: Any = native("residentd.apps.kv._fastpath", "KeyTable")

pytestmark = pytest.mark.skipif(KeyTable is None, reason="the C speedups are not built")

keys = st.binary(max_size=3).map(lambda b: b"k" + b) | st.sampled_from([b"", b"x" * 40])
values: st.SearchStrategy[Any] = (
    st.binary(max_size=20)
    | st.integers()
    | st.builds(deque, st.lists(st.binary(max_size=3), max_size=3))
    | st.sets(st.binary(max_size=2), max_size=3)
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("get"), keys),
        st.tuples(st.just("pop"), keys),
        st.tuples(st.just("del"), keys),
        st.tuples(st.just("setdefault"), keys, values),
        st.tuples(st.just("update"), st.dictionaries(keys, values, max_size=4)),
        st.tuples(st.just("copy")),
        st.tuples(st.just("clear")),
    ),
    max_size=120,
)


def apply(mapping: Any, operation: tuple[Any, ...]) -> Any:
    """Runs one operation; its result, or the exception's type."""
    kind, *args = operation
    try:
        if kind == "set":
            mapping[args[0]] = args[1]
            return None
        if kind == "get":
            return (mapping.get(args[0]), args[0] in mapping, mapping.get(args[0], 7))
        if kind == "pop":
            return mapping.pop(args[0], "none")
        if kind == "del":
            del mapping[args[0]]
            return None
        if kind == "setdefault":
            return mapping.setdefault(args[0], args[1])
        if kind == "update":
            mapping.update(args[0])
            return None
        if kind == "copy":
            return mapping.copy()
        mapping.clear()
        return None
    except Exception as exc:  # the two must fail alike
        return type(exc)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_a_table_behaves_as_a_dict(steps: list[tuple[Any, ...]]) -> None:
    table, reference = KeyTable(), dict[bytes, Any]()
    for step in steps:
        got, expected = apply(table, step), apply(reference, step)
        if step[0] == "copy":
            assert list(got.items()) == list(expected.items())
            table = got  # go on with the copy: it must be a whole table too
            reference = expected
        else:
            assert got == expected
        assert len(table) == len(reference)
        assert list(table) == list(reference)
        assert list(table.items()) == list(reference.items())
        assert list(table.values()) == list(reference.values())
        assert table == reference and reference == table
        assert (table != reference) is False


def test_many_keys_grow_shrink_and_keep_their_order() -> None:
    table, reference = KeyTable(), dict[bytes, Any]()
    for i in range(50_000):
        key = b"key:%d" % (i * 7919 % 20_000)
        if i % 3 == 2:
            assert table.pop(key, None) == reference.pop(key, None)
        else:
            table[key] = reference[key] = b"%d" % i if i % 2 else b"v" * (i % 40)
    assert list(table.items()) == list(reference.items())
    for key in list(reference):
        del table[key]
    assert len(table) == 0 and list(table) == [] and table == {}


def test_a_short_string_is_kept_in_the_entry_a_long_one_as_its_object() -> None:
    table = KeyTable()
    short, long = b"x" * 15, b"y" * 16
    table[b"s"], table[b"l"] = short, long
    assert table[b"s"] == short and table[b"s"] is not short
    assert table[b"l"] is long  # the object itself
    assert table.get(b"s") == short and table.pop(b"s") == short


def test_keys_are_bytes() -> None:
    table = KeyTable()
    with pytest.raises(TypeError, match="keyspace keys are bytes, not str"):
        table["text"] = b"v"
    assert "text" not in table and table.get("text") is None
    with pytest.raises(KeyError):
        table["text"]
    with pytest.raises(KeyError):
        del table[b"missing"]
    with pytest.raises(TypeError):
        KeyTable(a=1)
    with pytest.raises(TypeError):
        hash(table)


def test_iterating_while_keys_change_raises_as_a_dict_does() -> None:
    table = KeyTable({b"a": b"1", b"b": b"2"})
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        for key in table:
            table[key + b"!"] = b"x"
    table = KeyTable({b"a": b"1", b"b": b"2"})
    for key in table:  # replacing values is allowed
        table[key] = b"new"
    assert table == {b"a": b"new", b"b": b"new"}
    iterator = iter(table)
    assert iterator.__length_hint__() == 2
    assert list(iterator) == [b"a", b"b"] and iterator.__length_hint__() == 0


def test_copy_drops_the_holes_of_deleted_keys() -> None:
    table = KeyTable((b"k%d" % i, b"v") for i in range(1000))
    for i in range(0, 1000, 2):
        del table[b"k%d" % i]
    copy = table.copy()
    assert copy == table and list(copy) == [b"k%d" % i for i in range(1, 1000, 2)]
    assert type(copy) is KeyTable


def test_every_reference_is_given_back() -> None:
    key, value = b"a key of some length", b"a value longer than fifteen bytes"
    key_refs, value_refs = sys.getrefcount(key), sys.getrefcount(value)
    table = KeyTable()
    for _ in range(3):
        table[key] = value
        table[key + b"2"] = value
    copy = table.copy()
    assert sys.getrefcount(value) == value_refs + 4
    del copy
    table.pop(key)
    del table[key + b"2"]
    assert sys.getrefcount(key) == key_refs and sys.getrefcount(value) == value_refs
    table[key] = value
    table.clear()
    assert sys.getrefcount(key) == key_refs and sys.getrefcount(value) == value_refs
    table[key] = value
    del table
    assert sys.getrefcount(key) == key_refs and sys.getrefcount(value) == value_refs


def test_the_fast_path_serves_inline_and_object_values_alike() -> None:
    from residentd.apps.kv._fastpath import execute
    from residentd.apps.kv.store import Keyspace

    db = Keyspace()
    assert type(db.data) is KeyTable
    commands = [
        [b"SET", b"short", b"x" * 15],
        [b"SET", b"long", b"y" * 16],
        [b"MGET", b"short", b"long", b"none"],
        [b"INCRBY", b"n", b"99999999999999"],  # 14 digits: kept inline
        [b"INCRBY", b"n", b"900000000000000000"],  # 18 digits: a bytes object
        [b"GET", b"n"],
        [b"APPEND", b"short", b"z"],  # Python's
    ]
    replies: list[bytes] = []
    assert execute(commands, 0, db, replies) == 6
    assert replies == [
        b"+OK\r\n+OK\r\n*3\r\n$15\r\n" + b"x" * 15 + b"\r\n$16\r\n" + b"y" * 16 + b"\r\n$-1\r\n"
        b":99999999999999\r\n:900099999999999999\r\n$18\r\n900099999999999999\r\n"
    ]
    assert db.data == {b"short": b"x" * 15, b"long": b"y" * 16, b"n": b"900099999999999999"}
    db.data[b"l"] = deque([b"a"])
    replies.clear()
    assert execute([[b"LPUSH", b"short", b"v"]], 0, db, replies) == 0  # WRONGTYPE: Python's
    assert execute([[b"GET", b"l"]], 0, db, replies) == 0
    assert replies == []


def test_random_key_picks_every_key_alike_and_only_keys() -> None:
    table = KeyTable()
    assert table.random_key() is None
    for i in range(3000):
        table[b"k%d" % i] = b"v"
    for i in range(3, 3000):  # three keys left among 2,997 holes: the walk's case
        del table[b"k%d" % i]
    counts = dict.fromkeys([b"k0", b"k1", b"k2"], 0)
    for _ in range(3000):
        counts[table.random_key()] += 1
    assert all(800 < count < 1200 for count in counts.values()), counts
    table = table.copy()  # no holes: the probes' case
    for i in range(3, 40):
        table[b"k%d" % i] = b"v"
    counts = dict.fromkeys(table, 0)
    for _ in range(8000):
        counts[table.random_key()] += 1
    assert all(100 < count < 330 for count in counts.values()), counts
