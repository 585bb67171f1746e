"""The chat's pure parts, without sockets: tokens, the token bucket, history pages, the state
document, request decoding, and the two codecs fed arbitrary splits and garbage (hypothesis)."""

from __future__ import annotations

import base64
import itertools
import os
from types import SimpleNamespace

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from core.helpers import Err, cuts, feed_events, feed_garbage, split_at
from residentd.apps.chat import handlers
from residentd.apps.chat import protocol as p
from residentd.apps.chat.errors import ChatError
from residentd.apps.chat.history import RoomHistory
from residentd.apps.chat.hub import Hub
from residentd.apps.chat.ratelimit import TokenBucket
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.state import UserState
from residentd.apps.chat.tcp import ChatLineCodec
from residentd.apps.chat.tokens import check_token, make_token
from residentd.apps.chat.ws import FORMAT
from residentd.codecs.websocket import Request, WebSocketCodec, text_frame
from residentd.errors import ProtocolError

# -- tokens, bucket, history, state ------------------------------------------------------------


def test_tokens() -> None:
    token = make_token("secret", "ann", ttl=60, now=1000)
    assert check_token("secret", "ann", token, now=1059) is None
    assert check_token("secret", "ann", token, now=1061) == "the token has expired"
    assert check_token("secret", "bob", token, now=1000) is not None
    assert check_token("other", "ann", token, now=1000) is not None
    expires, _, signature = token.partition(".")
    assert check_token("secret", "ann", f"99999{expires}.{signature}", now=1000) is not None
    for bad in ("", "x", "12", "abc.def", "1.2.3"):
        assert check_token("secret", "ann", bad) is not None
    forever = make_token("secret", "ann")
    assert forever.startswith("0.")
    assert check_token("secret", "ann", forever, now=10**12) is None
    assert check_token("", "ann", forever) is not None
    with pytest.raises(ValueError):
        make_token("", "ann")


def test_token_bucket() -> None:
    bucket = TokenBucket(burst=3, now=0.0)
    assert [bucket.take(2.0, 3, 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(2.0, 3, 0.0) == pytest.approx(0.5)
    assert bucket.take(2.0, 3, 0.5) == 0.0  # one token came back in half a second
    assert bucket.take(2.0, 3, 100.0) == 0.0  # a long pause refills up to the burst only
    assert [bucket.take(2.0, 3, 100.0) == 0.0 for _ in range(3)] == [True, True, False]


def test_history_pages() -> None:
    history = RoomHistory(5)
    assert history.page(None, 10) == ([], False)
    for seq in range(1, 9):
        assert history.next_seq() == seq
        history.append(f'{{"seq":{seq}}}'.encode())

    def seqs(before: int | None, limit: int) -> tuple[list[int], bool]:
        messages, more = history.page(before, limit)
        return [msgspec.json.decode(m)["seq"] for m in messages], more

    assert seqs(None, 2) == ([7, 8], True)
    assert seqs(7, 2) == ([5, 6], True)
    assert seqs(5, 2) == ([4], False)  # 1-3 are forgotten
    assert seqs(4, 10) == ([], False)
    assert seqs(100, 100) == ([4, 5, 6, 7, 8], False)
    history.resize(2)
    assert seqs(None, 10) == ([7, 8], False)
    empty = RoomHistory(0)
    empty.append(b"{}")
    assert empty.last == 1 and empty.page(None, 5) == ([], False)


def test_state_document_sizes() -> None:
    state = UserState()
    assert state.set("a", msgspec.Raw(b"[1,2]"), 10, 100) == 6
    assert state.set("a", msgspec.Raw(b"1"), 10, 100) == 2  # replacing frees the old value
    assert state.incr("n", 5, 10, 100) == 5 and state.size == 2 + 2
    with pytest.raises(ChatError) as full:
        state.set("big", msgspec.Raw(b'"' + b"x" * 100 + b'"'), 10, 100)
    assert full.value.code == "state-full" and state.size == 4  # unchanged
    with pytest.raises(ChatError) as overflow:
        state.incr("n", 2**63, 10, 100)
    assert overflow.value.code == "not-a-number"
    assert state.delete("a") and not state.delete("a") and state.size == 2
    assert msgspec.json.decode(state.document().copy()) == {"n": 5}


def test_decoding_classifies_errors_and_finds_the_id() -> None:
    assert p.decode_request(b'{"op":"post","room":"r","text":"t","id":7}') == p.Post(
        id=7, room="r", text="t"
    )
    for line, code, request_id in [
        (b'{"op":"x","id":"a"}', "unknown-op", "a"),
        (b'{"id":3}', "missing-field", 3),
        (b'{"op":"who","room":1,"id":4}', "wrong-type", 4),
        (b'{"op":"who","id":[1]}', "wrong-type", None),
        (b'{"op":"who","limit":5000}', "invalid-value", None),
        (b"\xff", "invalid-json", None),
        (b"1", "not-an-object", None),
    ]:
        with pytest.raises(p.BadRequest) as error:
            p.decode_request(line)
        assert (error.value.code, error.value.request_id) == (code, request_id), line
        assert error.value.recoverable


def test_error_details_are_written_for_people() -> None:
    for line, code, detail in [
        (b'{"op":"shout"}', "unknown-op", "no request has op 'shout'"),
        (b'{"op":"' + b"x" * 5000 + b'"}', "unknown-op", f"no request has op {'x' * 40!r}..."),
        (b'{"op":"post","room":"r"}', "missing-field", "post needs text"),
        (b'{"room":"r"}', "missing-field", "a request needs an op"),
        (b'{"op":"who","room":1}', "wrong-type", "room must be a string or null, not a number"),
        (b'{"op":"create","room":"r","private":"yes"}', "wrong-type",
         "private must be true or false, not a string"),
        (b'{"op":7}', "wrong-type", "op must be a string"),
        (b"[1]", "not-an-object", "a message is a JSON object, not an array"),
        (b'{"op":"who","limit":5000}', "invalid-value", "limit is 1-1000"),
        (b'{"op":"history","room":"r","limit":0}', "invalid-value", "limit is 1-200"),
        (b'{"op":"history","room":"r","before":-1}', "invalid-value",
         "before is a message's seq: an integer, 0 or more"),
        (b'{"op":"topic","room":"r","topic":"' + b"t" * 201 + b'"}', "too-long",
         "a topic is at most 200 characters"),
        (b'{"op":"ping","id":"' + b"i" * 65 + b'"}', "too-long",
         "an id is an integer or a string of at most 64 characters"),
        (b'{"op":"hello","v":1,"user":"bob\\n"}', "invalid-value",
         "user names are 1-32 ASCII letters, digits, _ . - (a guest's with ~ in front)"),
        (b'{"op":"join","room":"' + b"r" * 33 + b'"}', "too-long",
         "room names are 1-32 ASCII letters, digits, _ . -"),
        (b'{"op":"post","op":"join","room":"r"}', "invalid-json",
         "the key op is in the message more than once"),
    ]:  # fmt: skip
        with pytest.raises(p.BadRequest) as error:
            p.decode_request(line)
        assert (error.value.code, error.value.detail) == (code, detail), line
    assert "msgspec" not in p.RULES and all("`" not in rule for rule in p.RULES.values())


def test_limits_are_written_one_way() -> None:
    assert p.setting("max_text", 2000) == "max_text = 2000"
    assert p.setting("rate_limit", 20.0) == "rate_limit = 20"
    assert p.setting("rate_limit", 0.5) == "rate_limit = 0.5"
    state = UserState()
    state.set("a", msgspec.Raw(b"1"), 1, 100)
    with pytest.raises(ChatError) as keys:
        state.set("b", msgspec.Raw(b"1"), 1, 100)
    assert keys.value.detail == "no room for another key (state_max_keys = 1)"
    with pytest.raises(ChatError) as size:
        state.set("a", msgspec.Raw(b"1" * 200), 1, 100)
    assert size.value.detail == "the document would be 201 bytes (state_max_bytes = 100)"
    # The core's own limits reach chat clients in the same form.
    for code, detail, said in [
        ("idle-timeout", "limit=0.3s", "silent for too long (idle_timeout = 0.3)"),
        ("input-buffer-full", "limit=64", "too much input not yet read (max_input_buffer = 64)"),
        ("server-shutdown", "stopping", "stopping"),
    ]:
        payload = p.protocol_error_payload(ProtocolError(code, detail))
        assert msgspec.json.decode(payload) == {"op": "error", "code": code, "detail": said}


def test_retry_after_is_never_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    assert p.retry_after(1e-9) == 0.001 and p.retry_after(0.0012) == 0.002
    # A request a hair before the next token: the wait rounds to 0 ms; it must say 1 ms.
    now = [100.0]
    monkeypatch.setattr(handlers, "time", SimpleNamespace(monotonic=lambda: now[0]))
    hub = Hub(ChatSettings(rate_limit=1000.0, rate_burst=1.0))
    user = hub.presence.add("ann", guest=False)
    session = SimpleNamespace(user=user)
    assert handlers.dispatch(hub, session, p.Rooms()) is not None  # type: ignore[arg-type]
    now[0] += 0.000_999_9
    with pytest.raises(ChatError) as limited:
        handlers.dispatch(hub, session, p.Rooms())  # type: ignore[arg-type]
    assert limited.value.code == "rate-limited" and limited.value.retry_after == 0.001
    assert limited.value.detail == "too many requests a second (rate_limit = 1000, rate_burst = 1)"


# -- the TCP codec -------------------------------------------------------------------------------

LINES = (
    b'{"op":"ping","id":1}\n'
    b"garbage\n"
    b'{"op":"post","room":"r","text":"\xc3\xa9t\xc3\xa9","id":2}\r\n'
    b"\n"
    b'{"op":"nope"}\n'
    b'{"op":"pong"}\n'
)
EXPECTED = [
    p.Ping(id=1),
    Err("invalid-json"),
    p.Post(id=2, room="r", text="été"),
    Err("unknown-op"),
    p.Pong(),
]


@given(cuts)
def test_line_codec_any_split(points: list[int]) -> None:
    assert feed_events(ChatLineCodec(1024), split_at(LINES, points)) == EXPECTED


@given(cuts)
def test_line_codec_answers_what_came_before_a_long_line(points: list[int]) -> None:
    stream = b'{"op":"ping"}\nbad\n{"op":"pong"}\n' + b"x" * 200
    events = feed_events(ChatLineCodec(100), split_at(stream, points))
    assert events == [p.Ping(), Err("invalid-json"), p.Pong(), Err("line-too-long")]


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_line_codec_garbage_stays_bounded(chunks: list[bytes]) -> None:
    codes = {"invalid-json", "not-an-object", "unknown-op", "missing-field", "wrong-type",
             "too-long", "invalid-value", "line-too-long"}  # fmt: skip
    feed_garbage(ChatLineCodec(100), chunks, codes, bound=101 + 300 * 30)


def test_line_codec_error_form() -> None:
    codec = ChatLineCodec(100)
    reply = codec.error_reply(p.BadRequest("unknown-op", "no", "r1"))
    assert msgspec.json.decode(reply) == {"op": "error", "code": "unknown-op", "detail": "no",
                                          "id": "r1"}  # fmt: skip
    assert codec.error_reply(ProtocolError("idle-timeout", "limit=5s")).endswith(b"\n")


# -- the WebSocket codec -------------------------------------------------------------------------


def handshake(origin: str | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws HTTP/1.1",
        "Host: chat.test:80",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def client_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin).serialize(mask=True)


FRAMES = (
    client_frame(Opcode.TEXT, b'{"op":"ping","id":1}')
    + client_frame(Opcode.TEXT, b"not json")
    + client_frame(Opcode.TEXT, b'{"op":"post","room":', fin=False)
    + client_frame(Opcode.PING, b"hb")
    + client_frame(Opcode.CONT, b'"r","text":"hi"}')
    + client_frame(Opcode.BINARY, b"{}")
    + client_frame(Opcode.TEXT, b'{"op":"pong"}')
)


def opened_codec() -> WebSocketCodec:
    codec = WebSocketCodec(FORMAT, max_message=1024)
    [request] = codec.feed(handshake())
    assert isinstance(request, Request) and request.path == "/ws"
    assert codec.accept(request).startswith(b"HTTP/1.1 101 ")
    assert codec.open
    return codec


@given(cuts)
def test_websocket_codec_any_split(points: list[int]) -> None:
    codec = opened_codec()
    events = feed_events(codec, split_at(FRAMES, points))
    assert events == [
        p.Ping(id=1),
        Err("invalid-json"),
        p.Post(room="r", text="hi"),
        Err("unsupported-frame"),
        p.Pong(),
    ]
    pongs = b"".join(codec.data_to_send())  # the protocol's own bytes, for the connection
    assert pongs == Frame(Opcode.PONG, b"hb").serialize(mask=False)


def test_websocket_codec_limits_and_close() -> None:
    codec = opened_codec()
    with pytest.raises(ProtocolError) as big:
        codec.feed(client_frame(Opcode.TEXT, b"x" * 2000))
    assert big.value.code == "message-too-large" and not big.value.recoverable
    reply = codec.error_reply(big.value)
    assert reply is not None and reply.startswith(bytes([0x88]))  # a close frame
    codec = opened_codec()
    with pytest.raises(ProtocolError) as unmasked:
        codec.feed(Frame(Opcode.TEXT, b"{}").serialize(mask=False))
    assert unmasked.value.code == "bad-frame"
    codec = opened_codec()
    assert codec.feed(client_frame(Opcode.CLOSE, b"\x03\xe8bye")) == []
    echo, end = codec.data_to_send()  # the close frame sent back, then the end
    assert echo.startswith(bytes([0x88])) and end == b""
    assert not codec.open and codec.encode(p.PongReply()) == b""


def test_websocket_codec_before_the_handshake() -> None:
    codec = WebSocketCodec(FORMAT, origins=("http://ok.example",))
    [request] = codec.feed(handshake(origin="http://evil.example"))
    assert codec.accept(request).startswith(b"HTTP/1.1 403 ")
    assert not codec.open
    codec = WebSocketCodec(FORMAT)
    [request] = codec.feed(handshake(origin="http://chat.test:80"))  # same origin
    assert codec.accept(request).startswith(b"HTTP/1.1 101 ")
    timeout = WebSocketCodec(FORMAT).error_reply(ProtocolError("handshake-timeout", "10s"))
    assert timeout is not None and timeout.startswith(b"HTTP/1.1 408 ")
    with pytest.raises(ProtocolError) as bad:
        WebSocketCodec(FORMAT).feed(b"HELLO\r\n\r\n")
    assert bad.value.code == "bad-request"
    assert text_frame(b"{}") == b"\x81\x02{}"


def test_websocket_codec_plain_text_by_default() -> None:
    codec = WebSocketCodec()
    [request] = codec.feed(handshake())
    codec.accept(request)
    assert codec.feed(client_frame(Opcode.TEXT, "héllo".encode())) == ["héllo"]
    assert codec.encode("hi") == text_frame(b"hi")
    # RFC 6455 8.1: a text message that is not UTF-8 fails the connection, with 1007.
    with pytest.raises(ProtocolError) as bad:
        codec.feed(client_frame(Opcode.TEXT, "é ".encode() + b"\xff"))
    assert bad.value.code == "invalid-utf8" and not bad.value.recoverable
    assert codec.error_reply(bad.value) == Frame(
        Opcode.CLOSE, b"\x03\xef" + b"text message is not UTF-8 (byte 3)"
    ).serialize(mask=False)
    assert not codec.open


def utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@given(
    st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=40)),
    st.lists(st.integers(0, 40), max_size=3),
)
def test_websocket_text_must_be_utf8_however_fragmented(payload: bytes, cuts: list[int]) -> None:
    codec = WebSocketCodec()
    [request] = codec.feed(handshake())
    codec.accept(request)
    # Fragments may split a character: only the whole message must be UTF-8.
    points = sorted({0, *(min(cut, len(payload)) for cut in cuts), len(payload)})
    pieces = [payload[a:b] for a, b in itertools.pairwise(points)] or [b""]
    frames = b"".join(
        client_frame(Opcode.TEXT if index == 0 else Opcode.CONT, piece, index == len(pieces) - 1)
        for index, piece in enumerate(pieces)
    )
    if utf8(payload):
        assert codec.feed(frames) == [payload.decode()]
        return
    with pytest.raises(ProtocolError) as bad:
        codec.feed(frames)
    assert bad.value.code == "invalid-utf8" and not bad.value.recoverable
    reply = codec.error_reply(bad.value)
    assert reply is not None and reply[0] == 0x88 and reply[2:4] == b"\x03\xef"  # 1007
    assert not codec.open


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=300), max_size=30))
def test_websocket_codec_garbage_stays_bounded(chunks: list[bytes]) -> None:
    codes = {
        "bad-frame", "message-too-large", "invalid-json", "not-an-object", "unknown-op",
        "missing-field", "wrong-type", "too-long", "invalid-value", "unsupported-frame",
        "invalid-utf8",
    }  # fmt: skip
    feed_garbage(opened_codec(), chunks, codes, bound=1024 + 14 + 300)


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_websocket_codec_garbage_before_the_handshake(chunks: list[bytes]) -> None:
    codes = {"bad-request", "head-too-large"}
    feed_garbage(WebSocketCodec(FORMAT), chunks, codes, bound=300 * 20)
