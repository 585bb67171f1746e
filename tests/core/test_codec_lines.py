"""LineCodec: same lines however the bytes are split, bounded on garbage, typed limit errors.

Every test runs against both versions of the codec, the C one (``_lines.c``, when built) and
the Python reference, and a differential test feeds both the same random bytes.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.codecs import lines as lines_module
from residentd.errors import ProtocolError

from .helpers import Err, cuts, feed_events, feed_garbage, split_at

MAX = 32
C_CODEC = lines_module.LineCodec if lines_module.LineCodec is not lines_module.PyLineCodec else None
LineCodec: Any = lines_module.LineCodec


@pytest.fixture(autouse=True, scope="module", params=["c", "python"])
def version(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the module's tests with the C codec, then with the Python one."""
    global LineCodec
    if request.param == "c" and C_CODEC is None:
        pytest.skip("the C line codec is not built (no compiler at install)")
    LineCodec = C_CODEC if request.param == "c" else lines_module.PyLineCodec
    yield request.param
    LineCodec = lines_module.LineCodec


# A line body and whether it goes out with CRLF. A body sent with a bare LF may not end in CR
# (the codec drops one trailing CR); with CRLF it may.
lines = st.lists(
    st.tuples(st.binary(max_size=MAX).map(lambda b: b.replace(b"\n", b"")), st.booleans()).map(
        lambda item: (item[0].rstrip(b"\r") if not item[1] else item[0], item[1])
    ),
    max_size=30,
)


def wire(items: list[tuple[bytes, bool]]) -> bytes:
    return b"".join(body + (b"\r\n" if crlf else b"\n") for body, crlf in items)


@settings(max_examples=300, deadline=None)
@given(lines, cuts)
def test_random_splits_give_the_same_lines(items: list[tuple[bytes, bool]], at: list[int]) -> None:
    chunks = split_at(wire(items), at)
    assert feed_events(LineCodec(MAX), chunks) == [body for body, _ in items]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), cuts)
def test_garbage_splits_agree_up_to_the_first_error(data: bytes, at: list[int]) -> None:
    # Messages and the error (if any) are the same whether the bytes come at once or in pieces.
    whole = feed_events(LineCodec(MAX), [data])
    assert feed_events(LineCodec(MAX), split_at(data, at)) == whole
    assert all(isinstance(event, bytes) for event in whole[:-1])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=100), max_size=30))
def test_garbage_raises_only_protocol_errors_and_stays_bounded(chunks: list[bytes]) -> None:
    feed_garbage(LineCodec(MAX), chunks, {"line-too-long"}, bound=MAX + 1)


@pytest.mark.parametrize("chunk", [997, 4096, 65536, 300_000])
def test_line_larger_than_any_read_buffer_is_reassembled(chunk: int) -> None:
    line = bytes(range(256)).replace(b"\n", b"") * 4000  # ~1 MiB
    data = b"first\n" + line + b"\r\nlast\n"
    codec = LineCodec(max_line=2 * len(line))
    out: list[bytes] = []
    for start in range(0, len(data), chunk):
        out += codec.feed(data[start : start + chunk])
    assert out == [b"first", line, b"last"]
    assert codec.buffered == 0


def test_line_at_the_limit_passes_and_one_byte_more_fails() -> None:
    codec = LineCodec(max_line=10)
    assert codec.feed(b"x" * 10 + b"\n") == [b"x" * 10]
    assert codec.feed(b"y" * 10 + b"\r\n") == [b"y" * 10]
    assert codec.feed(b"z" * 10 + b"\r") == []
    assert codec.feed(b"\n") == [b"z" * 10]
    assert codec.feed(b"ok\n" + b"w" * 11 + b"\n") == [b"ok"]  # the error waits behind it
    assert codec.buffered == 1
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    assert codec.buffered == 0
    assert caught.value.code == "line-too-long"
    assert caught.value.detail == "limit=10"
    assert not caught.value.recoverable
    assert codec.error_reply(caught.value) == b"ERR line-too-long limit=10\n"


def test_too_long_is_raised_before_the_line_ends() -> None:
    codec = LineCodec(max_line=100)
    codec.feed(b"a" * 100)
    with pytest.raises(ProtocolError) as caught:
        for _ in range(10):
            codec.feed(b"a")
    assert caught.value.code == "line-too-long"
    assert codec.buffered == 0
    # After the error the codec starts afresh.
    assert codec.feed(b"next\n") == [b"next"]


def test_empty_lines_and_lone_cr_are_messages() -> None:
    assert LineCodec().feed(b"\n\r\n\r\r\n") == [b"", b"", b"\r"]
    assert feed_events(LineCodec(), [b"a\r", b"\n", b"\r", b"\r\n"]) == [b"a", b"\r"]


def test_encode_and_error_form() -> None:
    codec = LineCodec(newline=b"\r\n")
    assert codec.encode("héllo") == "héllo\r\n".encode()
    assert codec.encode(b"x") == b"x\r\n"
    assert codec.error_reply(ProtocolError("max-connections")) == b"ERR max-connections\r\n"
    with pytest.raises(ValueError):
        LineCodec(0)


def test_err_helper_marks_fatal_errors() -> None:
    assert feed_events(LineCodec(4), [b"ab\nabcdef\nlost\n"]) == [b"ab", Err("line-too-long")]


def outcome(codec: Any, chunk: bytes) -> tuple[Any, ...]:
    """What one feed did: the lines, or the error; and what is held (a pending error too)."""
    try:
        result: tuple[Any, ...] = ("lines", codec.feed(chunk))
    except ProtocolError as error:
        result = ("error", error.code, error.detail, error.recoverable)
    return (*result, codec.buffered)


near_the_limit = st.lists(
    st.tuples(st.integers(min_value=-3, max_value=2), st.sampled_from([b"\n", b"\r\n", b"\r", b""]))
)
garbage = st.binary(max_size=90).map(lambda b: b.replace(b"a", b"\n").replace(b"b", b"\r"))


@settings(max_examples=500, deadline=None)
@given(
    st.integers(min_value=1, max_value=40),
    st.sampled_from([b"\n", b"\r\n"]),
    st.lists(garbage),
    near_the_limit,
    cuts,
)
def test_c_and_python_versions_agree(
    max_line: int,
    newline: bytes,
    chunks: list[bytes],
    lines_near_limit: list[tuple[int, bytes]],
    at: list[int],
) -> None:
    if C_CODEC is None:
        pytest.skip("the C line codec is not built (no compiler at install)")
    # Random bytes rich in LF and CR, then lines a few bytes either side of the limit.
    stream = b"".join(b"x" * max(0, max_line + delta) + end for delta, end in lines_near_limit)
    chunks = chunks + split_at(stream, at)
    c_codec, py_codec = C_CODEC(max_line, newline), lines_module.PyLineCodec(max_line, newline)
    for chunk in chunks:
        assert outcome(c_codec, chunk) == outcome(py_codec, chunk)
        if c_codec.buffered and chunk[-1:] == b"\n":  # drained as a connection does
            assert outcome(c_codec, b"") == outcome(py_codec, b"")
    for messages in ([], [b"x"], chunks, ["é", b"y"], [bytearray(b"z"), b"w"]):
        assert c_codec.encode_many(messages) == py_codec.encode_many(messages)
    for message in (b"", "é", bytearray(b"q")):
        assert c_codec.encode(message) == py_codec.encode(message)
        assert type(c_codec.encode(message)) is type(py_codec.encode(message))
    for error in (ProtocolError("x"), ProtocolError("line-too-long", f"limit={max_line}")):
        assert c_codec.error_reply(error) == py_codec.error_reply(error)


def test_a_long_lines_buffer_is_given_back() -> None:
    # After a 1 MiB line the codec keeps only what is left of the stream, not the line's buffer.
    codec = LineCodec(max_line=2 << 20)
    tracemalloc.start()
    try:
        codec.feed(b"y" * (1 << 20))
        assert codec.buffered == 1 << 20
        assert codec.feed(b"\nrest") == [b"y" * (1 << 20)]
        assert codec.buffered == 4
        assert tracemalloc.get_traced_memory()[0] < 4096
    finally:
        tracemalloc.stop()
    assert codec.feed(b"\n") == [b"rest"]
    assert codec.buffered == 0
