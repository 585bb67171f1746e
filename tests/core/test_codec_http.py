"""HttpRequestCodec: the same requests however the bytes are split, RFC 9112's framing and
persistence rules, and a clear error code (and status) for every malformed or oversized head."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd import speedups
from residentd.codecs.http import HttpRequest, HttpRequestCodec, error_response, read_head_py
from residentd.errors import ProtocolError

from .helpers import Err, cuts, feed_events, feed_garbage, split_at

token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
value = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=20).map(
    str.strip
)


@st.composite
def requests(draw: Any) -> tuple[bytes, list[tuple[str, str, dict[str, str], bytes]]]:
    """A stream of keep-alive requests and what the codec must read from it; the last may
    close the connection, and then what follows it is never read."""
    newline = b"\r\n"
    stream = b""
    expected = []
    count = draw(st.integers(1, 4))
    for number in range(count):
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
        target = "/" + draw(token)
        fields = {"host": "example.test"}
        fields.update(draw(st.dictionaries(token.map(lambda name: "x-" + name), value, max_size=4)))
        body = draw(st.binary(max_size=300)) if method in ("POST", "PUT") else b""
        if body or draw(st.booleans()):
            fields["content-length"] = str(len(body))
        if number == count - 1 and draw(st.booleans()):
            fields["connection"] = draw(st.sampled_from(["close", "Close", "keep-alive, close"]))
        stream += draw(st.sampled_from([b"", newline, newline * 2]))  # empty lines before
        head = [f"{method} {target} HTTP/1.1"]
        head += [
            f"{name.title()}:{draw(st.sampled_from(['', ' ', '  ']))}{v}"
            for name, v in fields.items()
        ]
        stream += newline.join(line.encode() for line in head) + newline * 2 + body
        expected.append((method, target, fields, body))
    if "connection" in expected[-1][2]:
        stream += draw(st.binary(max_size=100))  # never read
    return stream, expected


def read(request: HttpRequest) -> tuple[str, str, dict[str, str], bytes]:
    return request.method, request.target, request.headers, request.body


@settings(max_examples=80, deadline=None)
@given(requests(), cuts)
def test_same_requests_whatever_the_split(stream: Any, offsets: list[int]) -> None:
    data, expected = stream
    codec = HttpRequestCodec()
    events = feed_events(codec, split_at(data, offsets))
    assert [read(request) for request in events] == expected
    assert codec.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=30))
def test_garbage_gives_only_known_errors_and_stays_bounded(chunks: list[bytes]) -> None:
    codec = HttpRequestCodec(max_head=1024, max_body=512, max_request_line=256)
    codes = {"bad-request", "head-too-large", "uri-too-long", "version-not-supported"}
    feed_garbage(codec, chunks, codes | {"body-too-large", "length-required"}, 1024 + 512 + 200)


def only(data: bytes, **limits: int) -> list[Any]:
    return feed_events(HttpRequestCodec(**limits), [data])


GOOD = b"GET / HTTP/1.1\r\nHost: x\r\n"


@pytest.mark.parametrize(
    ("data", "code", "status"),
    [
        (GOOD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nab", "bad-request", 400),
        (GOOD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nabc", "bad-request", 400),
        (GOOD + b"Content-Length: +2\r\n\r\nab", "bad-request", 400),
        (GOOD + b"Content-Length: 0x2\r\n\r\nab", "bad-request", 400),
        (GOOD + b"Content-Length: 1 2\r\n\r\nab", "bad-request", 400),
        (GOOD + b"Content-Length: -1\r\n\r\n", "bad-request", 400),
        (GOOD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", "length-required", 411),
        (GOOD + b"Transfer-Encoding: gzip\r\n\r\n", "not-implemented", 501),
        (GOOD + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "bad-request", 400),
        (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A: 1\r\n  folded\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A : 1\r\n\r\n", "bad-request", 400),
        (GOOD + b"X A: 1\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A: 1\x00\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A: 1\rX-B: 2\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A: 1\rX\nX-B: 2\r\n\r\n", "bad-request", 400),  # a bare CR, then LF
        (GOOD + b"X-A: 1\r\n\tfolded\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A: 1\r\n:\r\n\r\n", "bad-request", 400),
        (GOOD + b"X-A: 1\r\nX-B\r\n\r\n", "bad-request", 400),
        (GOOD + b"Host: y\r\n\r\n", "bad-request", 400),
        (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", "bad-request", 400),  # no Host
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", "version-not-supported", 505),
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", "version-not-supported", 505),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", "bad-request", 400),
        (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", "bad-request", 400),
        (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "bad-request", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "bad-request", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", "uri-too-long", 414),
        (b"GET /" + b"a" * 9000, "uri-too-long", 414),  # the line is not even complete
        (GOOD + b"X-A: " + b"a" * 17000 + b"\r\n\r\n", "head-too-large", 431),
        (GOOD + b"X-A: b\r\n" * 101 + b"\r\n", "head-too-large", 431),
        (GOOD + b"Content-Length: 65537\r\n\r\n", "body-too-large", 413),
        (GOOD + b"Content-Length: 99999999999999999999999\r\n\r\n", "body-too-large", 413),
    ],
)
def test_refusals(data: bytes, code: str, status: int) -> None:
    events = only(data)
    assert events == [Err(code)]
    reply = error_response(ProtocolError(code, "why"))
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()) and b"Connection: close" in reply


@given(st.text("ab=&%+2x0 ;#", max_size=24))
def test_the_query_is_read_as_parse_qsl_reads_it(query: str) -> None:
    target = "/p?" + query.replace(" ", "")
    request = HttpRequest("GET", target, "HTTP/1.1", {"host": "x"})
    assert request.query == dict(parse_qsl(urlsplit(target).query))


def test_repeated_and_odd_fields_read_the_same_as_plain_ones() -> None:
    """Heads the fast reading hands to the line-by-line one come out as they should."""
    [request] = only(GOOD + b"X-A: 1\r\nx-a: 2\r\nX-B:\t 3 \t\r\nX-C:\r\n\r\n")
    assert request.headers == {"host": "x", "x-a": "1, 2", "x-b": "3", "x-c": ""}
    assert request.keep_alive and request.upgrade is None


HEAD_PIECES = [
    b"GET", b"POST", b"G(T", b" ", b"  ", b"/a", b"/%20?x=1", b"\x7f", b"\xe9", b"\x00", b"\t",
    b" HTTP/1.1", b" HTTP/1.0", b" HTTP/1.2", b" HTTP/2.0", b"\r\n", b"\r", b"\n", b"Host",
    b"host", b"X-A", b"x-a", b":", b": ", b" v ", b"1", b"\r\n ", b"\r\n\t",
]  # fmt: skip


C_READ_HEAD = speedups.native("residentd.codecs._http_head", "read_head")


@pytest.mark.skipif(C_READ_HEAD is None, reason="the C speedups are off or not built")
@settings(max_examples=500)
@given(
    st.lists(st.sampled_from(HEAD_PIECES), max_size=24).map(b"".join),
    st.integers(1, 40),
    st.integers(1, 6),
)
def test_the_c_head_reader_reads_as_the_python_one(tail: bytes, line: int, fields: int) -> None:
    """_http_head.c's read_head and read_head_py: the same answer for every head, plain ones
    (a good start, then anything) and broken ones."""
    assert C_READ_HEAD is not None
    for head in (tail, GOOD.rstrip(b"\r\n") + tail, b"GET / HTTP/1.1" + tail):
        for limits in ((line, fields), (8192, 100)):
            assert C_READ_HEAD(head, *limits) == read_head_py(head, *limits)


def test_requests_before_a_refusal_come_out_first() -> None:
    data = GOOD + b"\r\n" + GOOD + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"
    events = only(data)
    assert [type(event) for event in events] == [HttpRequest, Err]


def test_fields_are_read_as_rfc_9110_says() -> None:
    [request] = only(
        b"POST /a%20b?x=1&y=2 HTTP/1.1\r\nHOST:  x \r\nAccept: a\r\naccept: b\r\n"
        b"Content-Length: 3\r\n\r\nabc"
    )
    assert request.path == "/a b" and request.query == {"x": "1", "y": "2"}
    assert request.headers == {"host": "x", "accept": "a, b", "content-length": "3"}
    assert request.body == b"abc" and request.keep_alive and request.upgrade is None


@pytest.mark.parametrize(
    ("version", "connection", "keep_alive"),
    [
        ("1.1", None, True),
        ("1.1", "close", False),
        ("1.1", "Keep-Alive, Close", False),
        ("1.0", None, False),
        ("1.0", "keep-alive", True),
        ("1.0", "Keep-Alive", True),
    ],
)
def test_persistence(version: str, connection: str | None, keep_alive: bool) -> None:
    head = f"GET /one HTTP/{version}\r\nHost: x\r\n"
    if connection:
        head += f"Connection: {connection}\r\n"
    codec = HttpRequestCodec()
    data = head.encode() + b"\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
    requests = codec.feed(data)
    assert requests[0].keep_alive is keep_alive
    # 9.6: after a request that closes the connection, nothing more is read.
    assert [request.target for request in requests] == ["/one", "/two"][: 2 if keep_alive else 1]
    assert codec.stopped is not keep_alive
    assert codec.feed(b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n") == [] or keep_alive


def test_upgrade_stops_and_hands_over_the_rest() -> None:
    codec = HttpRequestCodec()
    head = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    frames = b"\x81\x85 frames after the handshake"
    [request] = codec.feed(head + frames[:5])
    assert request.upgrade == "websocket" and codec.stopped
    assert codec.feed(frames[5:]) == []
    assert codec.take_upgrade() == head + frames
    assert codec.buffered == 0


def test_leading_empty_lines_are_skipped() -> None:
    [request] = only(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
    assert (request.target, request.body) == ("/a", b"ok")


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        GOOD + b"X-A: 1\n\r\n",
        GOOD + b"X-A: 1\r\n\n",
        b"GET / HTTP/1.1\n",  # refused at once, not when the head limit is reached
    ],
)
def test_a_bare_lf_is_refused(data: bytes) -> None:
    for chunks in ([data], [bytes([byte]) for byte in data]):
        assert feed_events(HttpRequestCodec(), chunks) == [Err("bad-request")]


def test_a_body_is_held_until_complete_and_counted_as_buffered() -> None:
    codec = HttpRequestCodec()
    assert codec.feed(GOOD + b"Content-Length: 10\r\n\r\n12345") == []
    assert codec.buffered == 5
    [request] = codec.feed(b"67890GET")
    assert request.body == b"1234567890" and codec.buffered == 3


def test_limits_are_exact() -> None:
    body = b"x" * 100
    [request] = only(GOOD + b"Content-Length: 100\r\n\r\n" + body, max_body=100)
    assert request.body == body
    assert only(GOOD + b"Content-Length: 101\r\n\r\n" + body + b"x", max_body=100) == [
        Err("body-too-large")
    ]


# -- the codec contract, and more of RFC 9112 --------------------------------------------------


def test_a_refusal_waits_behind_the_requests_before_it_and_ends_the_reading() -> None:
    codec = HttpRequestCodec()
    data = GOOD + b"\r\n" + b"GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n" + GOOD + b"\r\n"
    [first] = codec.feed(data)  # the request before the fault is the feed's result
    assert first.target == "/"
    assert codec.buffered == 1  # the refusal, pending
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"")
    assert (caught.value.code, caught.value.detail) == ("bad-request", "obsolete line folding")
    assert not caught.value.recoverable
    assert codec.buffered == 0 and codec.stopped
    assert codec.feed(GOOD + b"\r\n") == []  # 9.6: nothing after it is read


def test_a_refusal_with_nothing_before_it_is_raised_at_once() -> None:
    codec = HttpRequestCodec()
    with pytest.raises(ProtocolError) as caught:
        codec.feed(b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n")
    assert caught.value.code == "bad-request"
    assert codec.buffered == 0


@pytest.mark.parametrize(
    ("line", "target"),
    [
        (b"OPTIONS * HTTP/1.1", "*"),  # asterisk-form (3.2.4)
        (b"GET http://x/a?b=1 HTTP/1.1", "http://x/a?b=1"),  # absolute-form (3.2.2)
        (b"CONNECT x:443 HTTP/1.1", "x:443"),  # authority-form (3.2.3)
        (b"GET /a%20b HTTP/1.1", "/a%20b"),  # origin-form, sent as it came
    ],
)
def test_the_request_target_forms(line: bytes, target: str) -> None:
    [request] = only(line + b"\r\nHost: x\r\n\r\n")
    assert request.target == target


def test_an_http_1_0_request_needs_no_host() -> None:
    [request] = only(b"GET / HTTP/1.0\r\n\r\n")
    assert request.version == "HTTP/1.0" and not request.keep_alive


@pytest.mark.parametrize(
    ("value", "body"),
    [(b"0", b""), (b"007", b"1234567"), (b"  3  ", b"abc"), (b"3", b"abc")],
)
def test_content_length_is_digits_leading_zeros_and_white_space_allowed(
    value: bytes, body: bytes
) -> None:
    # RFC 9110 8.6: 1*DIGIT; the field's surrounding white space is not part of the value (5.5).
    [request] = only(GOOD + b"Content-Length:" + value + b"\r\n\r\n" + body)
    assert request.body == body


@pytest.mark.parametrize("coding", [b"chunked", b"Chunked", b"gzip, chunked", b"gzip,chunked"])
def test_a_chunked_body_gets_411_and_a_close_as_documented(coding: bytes) -> None:
    codec = HttpRequestCodec()
    data = GOOD + b"Transfer-Encoding: " + coding + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    with pytest.raises(ProtocolError) as caught:
        codec.feed(data)
    assert caught.value.code == "length-required"
    reply = codec.error_reply(caught.value)
    assert reply.startswith(b"HTTP/1.1 411 Length Required\r\n") and b"Connection: close" in reply
    assert codec.feed(GOOD + b"\r\n") == []  # what followed is not read as a request


def test_pipelined_requests_with_bodies_come_out_in_order_with_theirs() -> None:
    stream = b"".join(
        b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (n, n, b"b" * n)
        for n in range(5)
    )
    for size in (1, 7, len(stream)):
        codec = HttpRequestCodec()
        events = feed_events(codec, [stream[i : i + size] for i in range(0, len(stream), size)])
        assert [(request.target, request.body) for request in events] == [
            (f"/{n}", b"b" * n) for n in range(5)
        ]
