"""LengthPrefixedCodec: frames survive any split, a hostile prefix is refused before buffering."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.codecs.base import Codec
from residentd.codecs.length_prefixed import LengthPrefixedCodec
from residentd.errors import ProtocolError

from .helpers import Err, cuts, feed_events, feed_garbage, split_at

MAX = 40
prefixes = st.sampled_from(["u16", "u32"])


@settings(max_examples=300, deadline=None)
@given(prefixes, st.lists(st.binary(max_size=MAX), max_size=30), cuts)
def test_random_splits_give_the_same_frames(
    prefix: str, frames: list[bytes], at: list[int]
) -> None:
    encoder = LengthPrefixedCodec(MAX, prefix)
    data = b"".join(encoder.encode(frame) for frame in frames)
    assert feed_events(LengthPrefixedCodec(MAX, prefix), split_at(data, at)) == frames


@settings(max_examples=300, deadline=None)
@given(prefixes, st.binary(max_size=300), cuts)
def test_garbage_splits_agree_up_to_the_first_error(
    prefix: str, data: bytes, at: list[int]
) -> None:
    whole = feed_events(LengthPrefixedCodec(MAX, prefix), [data])
    assert feed_events(LengthPrefixedCodec(MAX, prefix), split_at(data, at)) == whole


@settings(max_examples=300, deadline=None)
@given(prefixes, st.lists(st.binary(max_size=100), max_size=30))
def test_garbage_raises_only_protocol_errors_and_stays_bounded(
    prefix: str, chunks: list[bytes]
) -> None:
    codec = LengthPrefixedCodec(MAX, prefix)
    # Between feeds at most one incomplete frame is held: its prefix and less than MAX bytes.
    feed_garbage(codec, chunks, {"frame-too-large"}, bound=codec._prefix + MAX - 1)


@pytest.mark.parametrize("chunk", [1024, 65536, 262_144, 1_000_003])
def test_ten_mib_frame_is_reassembled(chunk: int) -> None:
    frame = os.urandom(10 * 1024 * 1024)
    codec = LengthPrefixedCodec(16 * 1024 * 1024)
    data = codec.encode(frame) + codec.encode(b"after")
    out: list[bytes] = []
    for start in range(0, len(data), chunk):
        out += codec.feed(data[start : start + chunk])
    assert len(out) == 2
    assert out[0] == frame
    assert out[1] == b"after"
    assert codec.buffered == 0


def test_oversized_prefix_is_refused_before_the_body() -> None:
    codec: Codec = LengthPrefixedCodec(1000)
    assert codec.feed(codec.encode(b"ok")) == [b"ok"]
    with pytest.raises(ProtocolError) as caught:
        codec.feed((1001).to_bytes(4, "big"))
    assert caught.value.code == "frame-too-large"
    assert caught.value.detail == "length=1001 limit=1000"
    assert not caught.value.recoverable
    assert codec.buffered == 0
    assert codec.error_reply(caught.value) is None


def test_frames_before_a_bad_prefix_come_with_the_error() -> None:
    codec = LengthPrefixedCodec(10, "u16")
    data = codec.encode(b"one") + codec.encode(b"") + b"\xff\xff" + b"body"
    assert feed_events(codec, [data]) == [b"one", b"", Err("frame-too-large")]


def test_limits_and_prefix_are_checked() -> None:
    with pytest.raises(ValueError):
        LengthPrefixedCodec(70_000, "u16")
    with pytest.raises(ValueError):
        LengthPrefixedCodec(0)
    with pytest.raises(ValueError):
        LengthPrefixedCodec(10, "u8")
    with pytest.raises(ValueError):
        LengthPrefixedCodec(3).encode(b"four")
    assert LengthPrefixedCodec(65535, "u16").encode(b"ab") == b"\x00\x02ab"


def test_an_oversized_prefix_waits_behind_the_frames_before_it() -> None:
    codec = LengthPrefixedCodec(max_length=8, prefix="u16")
    data = b"\x00\x02ok" + b"\x00\x09" + b"123456789"
    assert codec.feed(data) == [b"ok"]
    assert codec.buffered == 1  # the error, pending: the connection feeds again for it
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    assert caught.value.code == "frame-too-large" and codec.buffered == 0
    with pytest.raises(ProtocolError):
        LengthPrefixedCodec(max_length=8, prefix="u16").feed(b"\x00\x09")  # nothing before it
