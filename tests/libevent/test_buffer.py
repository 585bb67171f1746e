"""Buffer: adding and taking bytes, search, readln in every EOL style, fd I/O, random splits."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.libevent import (
    EVBUFFER_EOL_ANY,
    EVBUFFER_EOL_CRLF,
    EVBUFFER_EOL_CRLF_STRICT,
    EVBUFFER_EOL_LF,
    EVBUFFER_EOL_NUL,
    Buffer,
)


def test_add_remove_drain_peek() -> None:
    buf = Buffer(b"hello")
    buf.add(b" wide")
    buf.add(bytearray(b" world"))
    assert len(buf) == 16
    assert buf.peek(5) == b"hello"
    assert buf.remove(6) == b"hello "
    buf.drain(4)
    assert bytes(buf) == b" world"
    assert buf.remove(100) == b" world"
    assert not buf
    assert buf.remove() == b""
    buf.add(memoryview(b"abc"))
    buf.drain(10)
    assert len(buf) == 0
    with pytest.raises(ValueError):
        buf.drain(-1)


def test_add_buffer_moves_everything() -> None:
    a, b = Buffer(b"one "), Buffer(b"xxtwo")
    b.drain(2)
    a.add_buffer(b)
    assert bytes(a) == b"one two"
    assert len(b) == 0
    with pytest.raises(ValueError):
        a.add_buffer(a)


def test_search_is_relative_to_the_front() -> None:
    buf = Buffer(b"--abcabc")
    buf.drain(2)
    assert buf.search(b"abc") == 0
    assert buf.search(b"abc", 1) == 3
    assert buf.search(b"abc", 1, 5) == -1
    assert buf.search(b"abc", 1, 6) == 3
    assert buf.search(b"zzz") == -1


@pytest.mark.parametrize(
    ("style", "data", "lines", "rest"),
    [
        (EVBUFFER_EOL_LF, b"a\nb\r\n\nc", [b"a", b"b\r", b""], b"c"),
        (EVBUFFER_EOL_CRLF, b"a\nb\r\nc\rd\n\r\r\ne", [b"a", b"b", b"c\rd", b"\r"], b"e"),
        (EVBUFFER_EOL_CRLF_STRICT, b"a\nb\r\nc\r", [b"a\nb"], b"c\r"),
        (EVBUFFER_EOL_NUL, b"a\0\0b\nc", [b"a", b""], b"b\nc"),
        (EVBUFFER_EOL_ANY, b"a\r\n\r\nb\nc\rd", [b"a", b"b", b"c"], b"d"),
    ],
)
def test_readln_styles(style: int, data: bytes, lines: list[bytes], rest: bytes) -> None:
    buf = Buffer(data)
    got = []
    while (line := buf.readln(style)) is not None:
        got.append(line)
    assert got == lines
    assert bytes(buf) == rest


def test_readln_waits_for_the_end_of_line_across_adds() -> None:
    buf = Buffer()
    for piece in (b"par", b"tial\r"):
        buf.add(piece)
        assert buf.readln(EVBUFFER_EOL_CRLF_STRICT) is None
    buf.add(b"\nnext")
    assert buf.readln(EVBUFFER_EOL_CRLF_STRICT) == b"partial"
    assert buf.readln(EVBUFFER_EOL_CRLF_STRICT) is None
    # What one style did not find says nothing about another.
    buf.add(b"\n")
    assert buf.readln(EVBUFFER_EOL_CRLF_STRICT) is None
    assert buf.readln(EVBUFFER_EOL_LF) == b"next"


def test_readln_any_splits_a_run_across_reads_like_libevent() -> None:
    buf = Buffer(b"a\r")
    assert buf.readln(EVBUFFER_EOL_ANY) == b"a"
    buf.add(b"\nb\n")
    assert buf.readln(EVBUFFER_EOL_ANY) == b""
    assert buf.readln(EVBUFFER_EOL_ANY) == b"b"


def test_readln_rejects_an_unknown_style() -> None:
    with pytest.raises(ValueError):
        Buffer(b"x\n").readln(99)


def test_drain_callback_runs_when_bytes_are_taken() -> None:
    buf = Buffer(b"abcdef\n")
    calls: list[int] = []
    buf.drain_callback = lambda: calls.append(len(buf))
    buf.add(b"more")
    buf.drain(0)
    assert calls == []
    buf.remove(1)
    buf.drain(1)
    buf.readln(EVBUFFER_EOL_LF)
    assert calls == [10, 9, 4]


def test_read_from_and_write_to_a_pipe() -> None:
    read_fd, write_fd = os.pipe()
    try:
        out = Buffer(b"x" * 10 + b"payload")
        out.drain(10)
        assert out.write_to(write_fd, 3) == 3
        assert out.write_to(write_fd) == 4
        assert len(out) == 0
        into = Buffer(b"<")
        assert into.read_from(read_fd, 5) == 5
        assert into.read_from(read_fd, 100) == 2
        assert bytes(into) == b"<payload"
        os.close(write_fd)
        write_fd = -1
        assert into.read_from(read_fd, 100) == 0
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)


# Random splits: the same lines come out however the bytes are cut into adds.

_EOL = {
    EVBUFFER_EOL_LF: b"\n",
    EVBUFFER_EOL_CRLF: b"\r\n",
    EVBUFFER_EOL_CRLF_STRICT: b"\r\n",
    EVBUFFER_EOL_NUL: b"\0",
}


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=200, deadline=None)
@given(
    style=st.sampled_from(sorted(_EOL)),
    lines=st.lists(st.binary(max_size=300), max_size=20),
    tail=st.binary(max_size=50),
    cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=30),
)
def test_readln_random_splits(style: int, lines: list[bytes], tail: bytes, cuts: list[int]) -> None:
    eol = _EOL[style]
    # Keep the end-of-line bytes out of the content (CRLF allows a lone "\r"; not at a line's end).
    lines = [line.replace(b"\n", b"").replace(b"\0", b"").rstrip(b"\r") for line in lines]
    if style != EVBUFFER_EOL_NUL:
        lines = [line.replace(b"\r", b"") for line in lines]
    tail = tail.replace(eol[-1:], b"").rstrip(b"\r")
    data = b"".join(line + eol for line in lines) + tail
    buf = Buffer()
    got = []
    for piece in _split(data, cuts):
        buf.add(piece)
        while (line := buf.readln(style)) is not None:
            got.append(line)
    assert got == lines
    assert bytes(buf) == tail


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.binary(max_size=5000)),
            st.tuples(st.just("remove"), st.integers(min_value=-1, max_value=6000)),
            st.tuples(st.just("drain"), st.integers(min_value=0, max_value=6000)),
            st.tuples(st.just("readln"), st.just(0)),
        ),
        max_size=60,
    )
)
def test_buffer_matches_a_bytes_model(ops: list[tuple[str, object]]) -> None:
    buf = Buffer()
    model = b""
    for op, arg in ops:
        if op == "add":
            assert isinstance(arg, bytes)
            buf.add(arg)
            model += arg
        elif op == "remove":
            assert isinstance(arg, int)
            n = len(model) if arg < 0 else arg
            assert buf.remove(arg) == model[:n]
            model = model[n:]
        elif op == "drain":
            assert isinstance(arg, int)
            buf.drain(arg)
            model = model[arg:]
        else:
            end = model.find(b"\n")
            assert buf.readln(EVBUFFER_EOL_LF) == (model[:end] if end >= 0 else None)
            if end >= 0:
                model = model[end + 1 :]
        assert len(buf) == len(model)
        assert bytes(buf) == model
        assert buf.search(b"\n") == model.find(b"\n")
