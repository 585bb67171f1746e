"""RawCodec: every chunk is one message; nothing is buffered, nothing raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.codecs.base import Codec
from residentd.codecs.raw import RawCodec
from residentd.errors import ProtocolError

from .helpers import cuts, feed_events, feed_garbage, split_at


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500), cuts)
def test_random_splits_keep_every_byte_in_order(data: bytes, at: list[int]) -> None:
    chunks = split_at(data, at)
    out = feed_events(RawCodec(), chunks)
    assert out == [chunk for chunk in chunks if chunk]
    assert b"".join(out) == data


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_garbage_never_raises_and_nothing_is_buffered(chunks: list[bytes]) -> None:
    feed_garbage(RawCodec(), chunks, set(), bound=0)


def test_encode_and_no_error_form() -> None:
    codec: Codec = RawCodec()
    assert codec.encode(b"ab") == b"ab"
    assert codec.feed(b"") == []
    assert codec.error_reply(ProtocolError("x")) is None
