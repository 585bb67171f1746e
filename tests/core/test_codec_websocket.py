"""WebSocketCodec on its own, against RFC 6455: the handshake, masking, fragmentation, control
frames (between fragments too), close codes, limits; the codec contract (errors after the
messages before them, the protocol's own bytes through ``data_to_send``); and a real socket,
where the connection sends those bytes and closes after a close echo."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from websockets.frames import Close, Frame, Opcode

from residentd.app import Session
from residentd.codecs.websocket import Request, WebSocketCodec, text_frame
from residentd.errors import ProtocolError

from .helpers import Client, cuts, feed_events, fresh, serving, split_at, wait_until

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


def handshake(key: str | None = None, **fields: str) -> bytes:
    headers = {
        "Host": "example.test",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **fields,
    }
    lines = ["GET /ws HTTP/1.1", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """A frame written byte by byte (RFC 6455 5.2), so that broken ones can be written too."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def frame(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    return raw_frame(opcode.value, payload, fin=fin)


def server_frames(data: bytes) -> list[Frame]:
    """The frames a server sent (unmasked), parsed back."""
    frames = []
    while data:
        size = data[1] & 0x7F
        start = 2
        if size == 126:
            size, start = struct.unpack("!H", data[2:4])[0], 4
        assert not data[1] & 0x80, "a server must not mask (5.1)"
        frames.append(
            Frame(Opcode(data[0] & 0x0F), data[start : start + size], bool(data[0] & 0x80))
        )
        data = data[start + size :]
    return frames


def opened(max_message: int = 1024, allow_binary: bool = False) -> WebSocketCodec:
    codec = WebSocketCodec(max_message=max_message, allow_binary=allow_binary)
    [request] = codec.feed(handshake())
    assert isinstance(request, Request)
    assert codec.accept(request).startswith(b"HTTP/1.1 101 ")
    assert codec.open
    return codec


def raises(codec: WebSocketCodec, data: bytes) -> ProtocolError:
    """Feed ``data`` and then ``b""``, as a connection does, and return the error raised."""
    with pytest.raises(ProtocolError) as caught:
        codec.feed(data)
        codec.feed(b"")
    return caught.value


def close_of(reply: bytes | None) -> Close:
    assert reply is not None
    [closing] = server_frames(reply)
    assert closing.opcode is Opcode.CLOSE
    return Close.parse(closing.data)


# -- the opening handshake (4.2) -----------------------------------------------------------------


def test_the_handshake_answers_with_the_key_s_accept_value() -> None:
    key = base64.b64encode(b"0123456789abcdef").decode()
    codec = WebSocketCodec()
    [request] = codec.feed(handshake(key))
    response = codec.accept(request).decode()
    expected = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    assert response.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert f"Sec-WebSocket-Accept: {expected}\r\n" in response
    assert codec.open


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"Sec-WebSocket-Version": "8"}, 400),  # websockets says 400 (4.4 would add 426)
        ({"Upgrade": "h2c"}, 426),
        ({"Connection": "close"}, 426),
    ],
)
def test_a_handshake_that_is_not_one_is_refused(fields: dict[str, str], status: int) -> None:
    codec = WebSocketCodec()
    [request] = codec.feed(handshake(**fields))
    assert codec.accept(request).startswith(f"HTTP/1.1 {status} ".encode())
    assert not codec.open


def test_origins_are_checked_and_a_request_without_one_is_let_in() -> None:
    codec = WebSocketCodec(origins=("https://ok.test",), same_origin=False)
    [request] = codec.feed(handshake(Origin="https://evil.test"))
    assert codec.accept(request).startswith(b"HTTP/1.1 403 ")
    for origin in ({"Origin": "https://ok.test"}, {}):
        codec = WebSocketCodec(origins=("https://ok.test",), same_origin=False)
        [request] = codec.feed(handshake(**origin))
        assert codec.accept(request).startswith(b"HTTP/1.1 101 ")


def test_a_malformed_request_is_a_bad_request() -> None:
    error = raises(WebSocketCodec(), b"HELLO THERE\r\n\r\n")
    assert error.code == "bad-request" and not error.recoverable


# -- data frames: masking, fragmentation (5.1, 5.4) ---------------------------------------------


def test_an_unmasked_client_frame_fails_the_connection_with_1002() -> None:
    codec = opened()
    error = raises(codec, raw_frame(0x1, b"hi", mask=False))
    assert error.code == "bad-frame" and not error.recoverable
    assert close_of(codec.error_reply(error)).code == 1002


def test_fragments_are_joined_and_a_ping_between_them_is_answered() -> None:
    codec = opened()
    data = (
        frame(Opcode.TEXT, b"hel", fin=False)
        + frame(Opcode.PING, b"beat")
        + frame(Opcode.CONT, b"lo ", fin=False)
        + frame(Opcode.CONT, b"world")
    )
    assert codec.feed(data) == ["hello world"]
    [pong] = server_frames(b"".join(codec.data_to_send()))
    assert (pong.opcode, pong.data) == (Opcode.PONG, b"beat")
    assert codec.data_to_send() == []  # drained
    assert codec.buffered == 0


FRAGMENTED = (
    frame(Opcode.TEXT, b"one")
    + frame(Opcode.TEXT, b"tw", fin=False)
    + frame(Opcode.PING, b"")
    + frame(Opcode.CONT, "ö".encode())
    + frame(Opcode.TEXT, b"three")
)


@settings(max_examples=200, deadline=None)
@given(cuts)
def test_any_split_gives_the_same_messages(points: list[int]) -> None:
    codec = opened()
    assert feed_events(codec, split_at(FRAGMENTED, points)) == ["one", "twö", "three"]
    assert [f.opcode for f in server_frames(b"".join(codec.data_to_send()))] == [Opcode.PONG]


@pytest.mark.parametrize(
    "data",
    [
        frame(Opcode.CONT, b"no start"),  # a continuation with nothing to continue
        frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.TEXT, b"b"),  # a new message inside one
        raw_frame(0x3, b"x"),  # a reserved opcode
        raw_frame(0x1, b"x", rsv=4),  # RSV1 without an extension that defines it
        raw_frame(0x9, b"x", fin=False),  # a fragmented control frame (5.5)
        raw_frame(0x9, b"x" * 126),  # a control frame over 125 bytes (5.5)
    ],
    ids=["lone-cont", "text-in-text", "reserved-opcode", "rsv1", "fragmented-ping", "long-ping"],
)
def test_broken_framing_fails_the_connection_with_1002(data: bytes) -> None:
    codec = opened()
    error = raises(codec, data)
    assert error.code == "bad-frame" and not error.recoverable
    assert close_of(codec.error_reply(error)).code == 1002


def test_text_that_is_not_utf8_fails_the_connection_with_1007() -> None:
    codec = opened()
    error = raises(codec, frame(Opcode.TEXT, b"ok \xff"))
    assert error.code == "invalid-utf8" and not error.recoverable
    assert close_of(codec.error_reply(error)).code == 1007


def test_a_message_over_the_limit_fails_with_1009_even_in_fragments() -> None:
    for data in (
        frame(Opcode.TEXT, b"x" * 65),
        frame(Opcode.TEXT, b"x" * 40, fin=False) + frame(Opcode.CONT, b"x" * 40),
    ):
        codec = opened(max_message=64)
        error = raises(codec, data)
        assert error.code == "message-too-large"
        assert close_of(codec.error_reply(error)).code == 1009
    assert opened(max_message=64).feed(frame(Opcode.TEXT, b"x" * 64)) == ["x" * 64]


def test_binary_frames_are_refused_unless_allowed() -> None:
    codec = opened()
    assert codec.feed(frame(Opcode.TEXT, b"a") + frame(Opcode.BINARY, b"\x00")) == ["a"]
    error = raises(codec, b"")
    assert error.code == "unsupported-frame" and error.recoverable
    assert server_frames(codec.error_reply(error) or b"")[0].opcode is Opcode.TEXT  # no close
    assert opened(allow_binary=True).feed(frame(Opcode.BINARY, b"\x00")) == ["\x00"]


# -- the codec contract: errors wait behind the messages before them ----------------------------


def test_a_recoverable_error_comes_after_the_messages_before_it_and_before_those_after() -> None:
    codec = opened()
    data = frame(Opcode.TEXT, b"a") + frame(Opcode.BINARY, b"b") + frame(Opcode.TEXT, b"c")
    assert codec.feed(data) == ["a"]
    assert codec.buffered > 0  # the error and the frame behind it
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    assert caught.value.code == "unsupported-frame"
    assert codec.feed(b"") == ["c"]
    assert codec.buffered == 0


def test_a_fatal_error_waits_for_the_messages_before_it() -> None:
    codec = opened()
    assert codec.feed(frame(Opcode.TEXT, b"a") + raw_frame(0x1, b"b", mask=False)) == ["a"]
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    assert caught.value.code == "bad-frame"


# -- closing (5.5.1, 7.4) ------------------------------------------------------------------------


def test_a_close_from_the_peer_is_echoed_then_the_protocol_ends() -> None:
    codec = opened()
    assert codec.feed(frame(Opcode.CLOSE, Close(1000, "bye").serialize())) == []
    echo, end = codec.data_to_send()
    assert close_of(echo).code == 1000
    assert end == b""  # the connection closes once the echo is out
    assert not codec.open and codec.encode("late") == b""


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2999])
def test_a_close_code_the_rfc_does_not_allow_on_the_wire_is_a_protocol_error(code: int) -> None:
    codec = opened()
    error = raises(codec, frame(Opcode.CLOSE, struct.pack("!H", code)))
    assert error.code == "bad-frame"
    assert close_of(codec.error_reply(error)).code == 1002


def test_the_server_s_own_close_codes() -> None:
    codec = opened()
    assert close_of(codec.close_frame(1001, "server-shutdown")).code == 1001
    assert codec.close_frame() == b""  # once closing, no second close frame
    for reason, code in [("internal-error", 1011), ("input-buffer-full", 1009), ("x", 1008)]:
        codec = opened()
        frames = server_frames(codec.error_reply(ProtocolError(reason)) or b"")
        assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.CLOSE]
        assert Close.parse(frames[1].data).code == code
    timeout = WebSocketCodec().error_reply(ProtocolError("handshake-timeout"))
    assert timeout is not None and timeout.startswith(b"HTTP/1.1 408 ")


def test_text_frame_is_one_unmasked_final_text_frame() -> None:
    assert text_frame(b"{}") == b"\x81\x02{}"
    assert server_frames(text_frame(b"x" * 300)) == [Frame(Opcode.TEXT, b"x" * 300)]


# -- on a real socket: the connection sends the protocol's own bytes -----------------------------


class Upgrading(Session):
    """Accepts the handshake, echoes text, records its close reason."""

    __slots__ = ()
    reasons: list[str] = []

    def on_message(self, message: Any) -> None:
        if isinstance(message, Request):
            codec = self.conn.codec
            assert isinstance(codec, WebSocketCodec)
            self.send_bytes(codec.accept(message))
        else:
            self.send(message)

    def on_close(self, reason: str) -> None:
        self.reasons.append(reason)


def test_pongs_and_the_close_echo_go_out_through_the_connection(
    run: Callable[[Any], Any],
) -> None:
    session = fresh(Upgrading)

    async def scenario() -> None:
        async with serving(session, WebSocketCodec) as server:
            client = await Client.connect(server)
            client.write(handshake())
            await wait_until(lambda: b"\r\n\r\n" in client.data, what="the 101")
            head, _, _ = bytes(client.data).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 ")
            client.data.clear()
            client.write(frame(Opcode.PING, b"p1") + frame(Opcode.TEXT, b"hi"))
            await wait_until(lambda: len(server_frames(bytes(client.data))) == 2, what="2")
            assert [(f.opcode, f.data) for f in server_frames(bytes(client.data))] == [
                (Opcode.TEXT, b"hi"),  # the reply to the chunk's message, then the pong
                (Opcode.PONG, b"p1"),
            ]
            client.data.clear()
            client.write(frame(Opcode.CLOSE, Close(1000, "done").serialize()))
            rest = await client.until_closed()
            assert close_of(rest).code == 1000
            await wait_until(lambda: session.reasons == ["closed-by-peer"], what="on_close")

    run(scenario())


# -- a live upgrade's handover (unparsed, handshake=False) ----------------------------------------

HANDED_OVER = FRAGMENTED + frame(Opcode.TEXT, b"x" * 300) + frame(Opcode.TEXT, b"y" * 70_000)


@pytest.mark.parametrize("opening", ["handshake", "handed-over"])
def test_a_cut_anywhere_is_carried_on_by_an_open_codec_fed_unparsed_first(opening: str) -> None:
    # Every cut: between frames, inside a header or a payload, inside a fragmented message.
    stream = HANDED_OVER
    for cut in [*range(0, 40), *range(40, 400, 7), len(stream) - 70_003, len(stream) - 1]:
        if opening == "handshake":
            first = WebSocketCodec(max_message=100_000)
            [request, *before] = first.feed(handshake() + stream[:cut])
            assert first.accept(request).startswith(b"HTTP/1.1 101 ")
            before += first.feed(b"")
        else:
            first = WebSocketCodec(max_message=100_000, handshake=False)
            before = first.feed(stream[:cut])
        then = WebSocketCodec(max_message=100_000, handshake=False)
        assert then.open
        after = then.feed(first.unparsed() + stream[cut:])
        assert before + after == ["one", "twö", "three", "x" * 300, "y" * 70_000], cut


def test_an_open_codec_keeps_its_limit_for_the_message_it_carries_on() -> None:
    first = WebSocketCodec(max_message=64, handshake=False)
    assert first.feed(frame(Opcode.TEXT, b"x" * 40, fin=False)) == []
    then = WebSocketCodec(max_message=64, handshake=False)
    error = raises(then, first.unparsed() + frame(Opcode.CONT, b"x" * 40))
    assert error.code == "message-too-large"
    assert close_of(then.error_reply(error)).code == 1009
