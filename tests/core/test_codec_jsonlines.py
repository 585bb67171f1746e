"""JsonLinesCodec: objects survive any split, a bad line is a recoverable typed error."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.codecs.jsonlines import JsonLinesCodec
from residentd.errors import ProtocolError

from .helpers import Err, cuts, feed_events, feed_garbage, split_at

MAX = 48

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)

# Lines that must each give one recoverable error, and its code.
BAD_LINES = [
    (b"not json", "invalid-json"),
    (b'{"a": 1', "invalid-json"),
    (b'{"a": 1} {"b": 2}', "invalid-json"),
    (b"   ", "invalid-json"),
    (b"\xff\xfe", "invalid-json"),
    (b'{"a": "\xff"}', "invalid-json"),  # not UTF-8 inside a string
    (b"[" * 1200, "invalid-json"),  # nested past the decoder's depth
    (b"[1, 2]", "not-an-object"),
    (b"42", "not-an-object"),
    (b'"text"', "not-an-object"),
    (b"null", "not-an-object"),
]

# One item of a stream: an object, a bad line, or an empty line (skipped).
items = st.one_of(
    objects.map(lambda obj: ("ok", obj)),
    st.sampled_from(BAD_LINES).map(lambda bad: ("bad", bad)),
    st.just(("empty", None)),
)


def encode_item(kind: str, value: Any, crlf: bool) -> bytes:
    end = b"\r\n" if crlf else b"\n"
    if kind == "ok":
        return msgspec.json.encode(value) + end
    if kind == "bad":
        return value[0] + end
    return end


def expected(stream: list[tuple[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for kind, value in stream:
        if kind == "ok":
            out.append(value)
        elif kind == "bad":
            out.append(Err(value[1]))
    return out


@settings(max_examples=250, deadline=None)
@given(st.lists(st.tuples(items, st.booleans()), max_size=20), cuts)
def test_random_splits_give_the_same_objects_and_errors(
    stream: list[tuple[tuple[str, Any], bool]], at: list[int]
) -> None:
    data = b"".join(encode_item(kind, value, crlf) for (kind, value), crlf in stream)
    events = feed_events(JsonLinesCodec(max_line=16_384), split_at(data, at))
    assert events == expected([item for item, _ in stream])


garbage = st.lists(
    st.one_of(
        st.binary(max_size=60),
        st.sampled_from([b'{"a": 1}', b"\n", b"[1]", b"{", b"}", b'"', b"\r\n", b"x" * 50]),
    ),
    max_size=20,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(garbage, cuts)
def test_garbage_splits_agree_up_to_the_first_fatal_error(data: bytes, at: list[int]) -> None:
    whole = feed_events(JsonLinesCodec(MAX), [data])
    assert feed_events(JsonLinesCodec(MAX), split_at(data, at)) == whole


@settings(max_examples=300, deadline=None)
@given(st.lists(garbage, max_size=10))
def test_garbage_raises_only_protocol_errors_and_stays_bounded(chunks: list[bytes]) -> None:
    codes = {"invalid-json", "not-an-object", "line-too-long", "invalid-message"}
    feed_garbage(JsonLinesCodec(MAX), chunks, codes, bound=MAX + 1)


def test_lines_after_a_bad_line_still_come_out() -> None:
    # The messages before the bad line are the feed's result; the error waits for the next
    # feed, and the lines behind it for the one after.
    codec = JsonLinesCodec()
    assert codec.feed(b'{"a": 1}\nnot json\n{"b": 2}\n{"c": 3}\n') == [{"a": 1}]
    assert codec.buffered > 0  # the error and the two good lines wait in the codec
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    assert caught.value.code == "invalid-json"
    assert caught.value.recoverable
    assert codec.feed(b"") == [{"b": 2}, {"c": 3}]
    assert codec.buffered == 0
    assert codec.feed(b'{"d": 4}\n') == [{"d": 4}]


def test_a_bad_line_then_an_overlong_line_in_one_chunk() -> None:
    # The recoverable error comes first, the fatal one is not lost behind it.
    assert feed_events(JsonLinesCodec(16), [b'{"a":1}\n[]\n' + b"x" * 40 + b"\n{}\n"]) == [
        {"a": 1},
        Err("not-an-object"),
        Err("line-too-long"),
    ]


def test_large_object_is_reassembled() -> None:
    obj = {"blob": "x" * 3_000_000, "n": 1}
    data = msgspec.json.encode(obj) + b"\n"
    codec = JsonLinesCodec(max_line=4_000_000)
    out: list[Any] = []
    for start in range(0, len(data), 65536):
        out += codec.feed(data[start : start + 65536])
    assert out == [obj]


class Join(msgspec.Struct, tag="join"):
    room: str


class Say(msgspec.Struct, tag="say"):
    text: str


def test_typed_messages_are_validated() -> None:
    codec = JsonLinesCodec(type=Join | Say)
    assert codec.feed(b'{"type": "join", "room": "r"}\n') == [Join("r")]
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b'{"type": "say", "text": 5}\n{"type": "say", "text": "hi"}\n')
    assert caught.value.code == "invalid-message"
    assert "$.text" in caught.value.detail
    assert codec.feed(b"") == [Say("hi")]
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"{nope\n")
    assert caught.value.code == "invalid-json"


def test_overlong_line_is_fatal() -> None:
    with pytest.raises(ProtocolError) as caught:
        JsonLinesCodec(max_line=10).feed(b'{"a": "' + b"x" * 20)
    assert caught.value.code == "line-too-long"
    assert not caught.value.recoverable


def test_error_form_and_encode() -> None:
    codec = JsonLinesCodec()
    error = ProtocolError("invalid-json", "JSON is malformed")
    reply = codec.error_reply(error)
    assert reply.endswith(b"\n")
    assert msgspec.json.decode(reply) == {
        "type": "error",
        "code": "invalid-json",
        "detail": "JSON is malformed",
    }
    assert codec.encode({"a": [1, 2]}) == b'{"a":[1,2]}\n'
