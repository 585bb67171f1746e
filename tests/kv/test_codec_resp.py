"""RespCodec, sans-IO: the same commands however the bytes are split, Redis's errors and limits
for bad input, the fast path agreeing with the exact parser, and bounded memory on garbage.

Every test runs twice: with the C reader on the fast path, and with hiredis's reader there (what
an install without a compiler uses)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.codecs import resp as resp_module
from residentd.codecs.resp import (
    INLINE_MAX_SIZE,
    RespCodec,
    bulk_array,
    encode_value,
    parse_int,
    split_args,
)
from residentd.errors import CloseCode, ProtocolError

from .helpers import resp

C_READER = resp_module.read_commands


@pytest.fixture(autouse=True, scope="module", params=["c-reader", "hiredis"])
def fast_path(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "c-reader" and C_READER is None:
        pytest.skip("the C reader is not built (no compiler at install)")
    resp_module.read_commands = C_READER if request.param == "c-reader" else None
    yield request.param
    resp_module.read_commands = C_READER


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def events(codec: RespCodec, chunks: list[bytes]) -> list[Any]:
    """Commands, then the error code if one ended the run."""
    out: list[Any] = []
    for chunk in chunks:
        try:
            out += codec.feed(chunk)
            if codec.buffered:
                out += codec.feed(b"")  # a pending error comes out of the next feed
        except ProtocolError as error:
            return [*out, ("error", error.code, error.detail)]
    return out


cuts = st.lists(st.integers(min_value=0, max_value=1 << 16), max_size=30)
arguments = st.binary(max_size=40)
commands = st.lists(st.lists(arguments, min_size=1, max_size=6), max_size=20)


@settings(max_examples=300, deadline=None)
@given(commands, cuts)
def test_commands_come_out_whole_however_split(cmds: list[list[bytes]], at: list[int]) -> None:
    data = b"".join(resp(*argv) for argv in cmds)
    assert events(RespCodec(), split_at(data, at)) == cmds


@pytest.mark.parametrize("chunk", [1, 7, 4096, 65536])
def test_an_argument_larger_than_any_read_buffer_is_reassembled(chunk: int) -> None:
    value = bytes(range(256)) * 4096  # 1 MiB, CR and LF included
    data = resp("SET", "k", value) + resp("GET", "k") + b"PING\r\n"
    codec = RespCodec()
    out: list[list[bytes]] = []
    for start in range(0, len(data), chunk):
        out += codec.feed(data[start : start + chunk])
        assert codec.buffered <= len(value) + 64
    assert out == [[b"SET", b"k", value], [b"GET", b"k"], [b"PING"]]
    assert codec.buffered == 0


def test_a_feed_yields_every_command_it_completes() -> None:
    codec = RespCodec()
    assert codec.feed(resp("GET", "a") + resp("GET", "b")[:5]) == [[b"GET", b"a"]]
    assert codec.feed(resp("GET", "b")[5:] + resp("GET", "c")) == [[b"GET", b"b"], [b"GET", b"c"]]
    assert codec.feed(resp("GET", "d")[:3]) == []
    codec = RespCodec()
    assert codec.feed(resp("PING") + resp("PING") + b"*1\r\n+x\r\n") == [[b"PING"], [b"PING"]]
    with pytest.raises(ProtocolError):
        codec.feed(b"")  # the error found after them


# -- Redis's protocol errors -----------------------------------------------------------------

BAD = {
    b"*x\r\n": "invalid multibulk length",
    b"*-\r\n": "invalid multibulk length",
    b"*03\r\n": "invalid multibulk length",
    b"*2147483648\r\n": "invalid multibulk length",
    b"*1\r\n$-1\r\n": "invalid bulk length",
    b"*1\r\n$x\r\n": "invalid bulk length",
    b"*1\r\n$+3\r\nabc\r\n": "invalid bulk length",
    b"*1\r\n$536870913\r\n": "invalid bulk length",
    b"*1\r\n+PING\r\n": "expected '$', got '+'",
    b"*1\r\n:1\r\n": "expected '$', got ':'",
    b"*2\r\n*1\r\n$1\r\na\r\n": "expected '$', got '*'",
    b"*2\r\n$3\r\nGET\r\nfoo\r\n": "expected '$', got 'f'",
    b'SET "a b\r\n': "unbalanced quotes in request",
    b"SET 'a\r\n": "unbalanced quotes in request",
    b'SET "a"b\r\n': "unbalanced quotes in request",
}


@pytest.mark.parametrize("data", list(BAD))
def test_bad_input_gets_redis_protocol_error(data: bytes) -> None:
    codec = RespCodec()
    assert codec.feed(resp("PING") + data + resp("PING")) == [[b"PING"]]  # what came before runs
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    error = caught.value
    assert error.detail == BAD[data]
    assert codec.error_reply(error) == b"-ERR Protocol error: " + BAD[data].encode() + b"\r\n"
    assert codec.buffered == 0


def test_bulk_length_limit_is_checked_on_the_header() -> None:
    codec = RespCodec(max_bulk_len=10)
    assert codec.feed(resp("SET", "k", "x" * 10)) == [[b"SET", b"k", b"x" * 10]]
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        codec.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$11\r\n")  # no data sent yet
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        RespCodec(max_bulk_len=10).feed(resp("SET", "k", "x" * 11))  # all of it at once


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"G" * (INLINE_MAX_SIZE + 1), "too big inline request"),
        (b"*" + b"1" * (INLINE_MAX_SIZE + 1), "too big mbulk count string"),
        (b"*1\r\n$" + b"1" * (INLINE_MAX_SIZE + 1), "too big bulk count string"),
    ],
)
def test_lines_without_an_end_are_refused_past_64k(data: bytes, detail: str) -> None:
    codec = RespCodec()
    assert codec.feed(data[:INLINE_MAX_SIZE]) == []
    with pytest.raises(ProtocolError) as caught:
        codec.feed(data[INLINE_MAX_SIZE:])
    assert caught.value.detail == detail


def test_empty_commands_and_lines_are_skipped() -> None:
    codec = RespCodec()
    data = b"*0\r\n*-1\r\n\r\n   \r\n" + resp("PING") + b"*0\r\n" + resp("PING")
    assert codec.feed(data) == [[b"PING"], [b"PING"]]
    assert codec.feed(b"*0\r\n") == []


def test_the_two_bytes_after_an_argument_are_not_checked_as_in_redis() -> None:
    assert RespCodec().feed(b"*1\r\n$4\r\nPINGxx*1\r\n$4\r\nPING\r\n") == [[b"PING"], [b"PING"]]


@pytest.mark.parametrize("cut", [4, 9, 14, 17, 21])  # after the count, a header, an argument
def test_a_feed_of_nothing_keeps_a_partial_command_held(cut: int) -> None:
    """The connection feeds ``b""`` while the codec holds input; the partial command stays
    held and counted in ``buffered`` (kv's serve_chunk reads a chunk itself only when
    ``buffered`` is 0), and the rest completes it."""
    data = resp("SET", "k", "value")
    codec = RespCodec()
    assert codec.feed(data[:cut]) == []
    assert codec.buffered
    assert codec.feed(b"") == []
    assert codec.buffered
    assert codec.feed(data[cut:]) == [[b"SET", b"k", b"value"]]
    assert codec.buffered == 0


def test_buffered_counts_what_is_held_beyond_the_bulk_being_read() -> None:
    codec = RespCodec()
    data = resp("SET", "key", "v" * 1000)
    assert codec.feed(data[:600]) == []
    assert codec.buffered == 1  # inside a bulk of a known, legal length: held, not a flood
    assert codec.feed(data[600:]) == [[b"SET", b"key", b"v" * 1000]]
    assert codec.buffered == 0
    assert codec.feed(b"*2\r\n$3\r\nGET\r\n$" + b"1" * 50) == []  # a length line, unended
    assert codec.buffered == 51


def test_the_query_buffer_limit_counts_the_bulk_being_read() -> None:
    codec = RespCodec(max_query_buffer=1000)
    assert codec.feed(resp("SET", "k", "v" * 990)) == [[b"SET", b"k", b"v" * 990]]
    assert codec.feed(resp("SET", "k", "v" * 2000)[:900]) == []
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"v" * 200)
    assert caught.value.code == CloseCode.INPUT_BUFFER_FULL
    assert codec.error_reply(caught.value) is None  # Redis closes without a word


# -- the fast path agrees with the exact parser ----------------------------------------------

FRAGMENTS = [
    b"*1\r\n",
    b"*2\r\n",
    b"*3\r\n",
    b"*0\r\n",
    b"*-1\r\n",
    b"$1\r\n",
    b"$3\r\n",
    b"$-1\r\n",
    b"$0\r\n",
    b"+OK\r\n",
    b":1\r\n",
    b"-ERR\r\n",
    b"_\r\n",
    b",1.5\r\n",
    b"%1\r\n",
    b"~1\r\n",
    b">1\r\n",
    b"=7\r\ntxt:abc\r\n",
    b"PING\r\n",
    b"GET a\tb \r\n",
    b"ECHO a\rb\n",
    b"  \t\r\n",
    b"\x0bPING\n",
    b"GET 'a b'\n",
    b'"x\\x41"\r\n',
    b"\r\n",
    b"abc",
    b"a",
    b"\r",
    b"\n",
    b"*",
    b"$",
]
garbage = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.lists(arguments, min_size=1, max_size=3).map(lambda argv: resp(*argv)),
        st.binary(max_size=8),
    ),
    max_size=25,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(garbage, cuts)
def test_fast_path_and_exact_parser_agree(data: bytes, at: list[int]) -> None:
    # Fed a byte at a time, every command goes through the exact parser; fed in chunks,
    # most take the fast path. The result must be the same: exactly with the C reader; with
    # hiredis but for the documented leniency: where Redis finds a non-bulk argument, or
    # reads a RESP3 set or push header as an inline command, hiredis may read on if "$" and
    # "*" bytes elsewhere make up the counts. Even then, every argument is bytes.
    exact = events(RespCodec(), [data[i : i + 1] for i in range(len(data))])
    for chunks in ([data], split_at(data, at)):
        fast = events(RespCodec(), chunks)
        if fast != exact:
            assert resp_module.read_commands is None, (fast, exact)
            assert exact[-1][:2] == ("error", "unexpected-type") or any(
                isinstance(event, list) and event[0][:1] in (b"~", b">") for event in exact
            ), (fast, exact)
        for event in fast:
            assert isinstance(event, tuple) or all(type(arg) is bytes for arg in event)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_garbage_raises_only_protocol_errors_and_stays_bounded(chunks: list[bytes]) -> None:
    codec = RespCodec(max_bulk_len=1000)
    for chunk in chunks:
        try:
            codec.feed(chunk)
        except ProtocolError:
            codec = RespCodec(max_bulk_len=1000)
        # A partial command: its arguments (each within the bulk limit) and one line.
        assert codec.buffered <= 6000 + INLINE_MAX_SIZE


inline_lines = st.lists(
    st.lists(st.sampled_from([b"a", b"GET", b" ", b"\t", b"\r", b"\x0b", b"\0", b'"', b"'"]),
             max_size=8).map(b"".join),
    min_size=1, max_size=6,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(inline_lines)
def test_the_c_reader_splits_plain_inline_lines_as_sdssplitargs(lines: list[bytes]) -> None:
    """It reads each whole line without quotes or the bytes sdssplitargs treats specially, as
    split_args does, skips blank lines, and stops at the first line it leaves to Python."""
    if resp_module.read_commands is None:
        pytest.skip("the hiredis reader reads no inline command")
    data = b"".join(line + b"\r\n" for line in lines) + b"PING"  # the last one not complete
    commands, end = resp_module.read_commands(data, 1 << 20)
    expected: list[list[bytes]] = []
    stop = 0
    for line in lines:
        if any(special in line for special in (b'"', b"'", b"\x0b", b"\0")):
            break
        args = split_args(line)
        assert args is not None
        if args:
            expected.append(args)
        stop += len(line) + 2
    assert (commands, end) == (expected, stop)


# -- pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"SET a b", [b"SET", b"a", b"b"]),
        (b"  GET   a  ", [b"GET", b"a"]),
        (b'SET "a b" c', [b"SET", b"a b", b"c"]),
        (b'ECHO "\\x41\\x4a\\n\\t\\"\\\\"', [b"ECHO", b'AJ\n\t"\\']),
        (b'ECHO "\\xZZ"', [b"ECHO", b"xZZ"]),
        (b'ECHO "\\x4"', [b"ECHO", b"x4"]),
        (b"ECHO 'it\\'s' 'a\\nb'", [b"ECHO", b"it's", b"a\\nb"]),
        (b'ECHO ab"c d"e', None),
        (b'ECHO ab"c d" e', [b"ECHO", b"abc d", b"e"]),
        (b"ECHO \"a\" 'b'", [b"ECHO", b"a", b"b"]),
        (b'ECHO "a', None),
        (b"ECHO 'a", None),
        (b"ECHO a\0b c", [b"ECHO", b"a"]),
        (b"", []),
        (b"\t", []),
    ],
)
def test_inline_split_follows_sdssplitargs(line: bytes, args: list[bytes] | None) -> None:
    assert split_args(line) == args


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"-1", -1),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"9223372036854775808", None),
        (b"-0", None),
        (b"01", None),
        (b"+1", None),
        (b" 1", None),
        (b"1 ", None),
        (b"1.0", None),
        (b"", None),
        (b"-", None),
        (b"\xd9\xa1", None),
    ],
)
def test_parse_int_follows_string2ll(text: bytes, value: int | None) -> None:
    assert parse_int(text) == value


def test_encoders() -> None:
    assert encode_value([b"a", None, 3, "é", [True]]) == (
        b"*5\r\n$1\r\na\r\n$-1\r\n:3\r\n$2\r\n\xc3\xa9\r\n*1\r\n:1\r\n"
    )
    assert bulk_array([b"x" * 2000]) == b"*1\r\n$2000\r\n" + b"x" * 2000 + b"\r\n"
    with pytest.raises(TypeError):
        encode_value(1.5)
