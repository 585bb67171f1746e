"""HTTP/1.1 requests as a residentd codec (RFC 9112), for residentd's own endpoints.

``HttpRequestCodec`` reads requests, each a head (request line and header fields) and a body
framed by ``Content-Length``, and yields ``HttpRequest`` objects in the order they arrive, so a
keep-alive connection may send one request after another and a pipelining client several at
once: the session answers each in turn. It is fed arbitrary chunks and yields the same requests
however the bytes are split; like h11, it scans only bytes it has not scanned before.

What it accepts and refuses, and why (h11 is the model; every refusal is a ``ProtocolError``
whose code maps to the status in ``error_reply``, and the connection closes after it):

* Lines end in CRLF. A bare LF or a bare CR is refused (2.2 lets a recipient take a bare LF
  as a line end, and h11 does; we do not, so that no proxy in front can read a head's lines
  differently from us). Empty lines before a request line are skipped (2.2).
* The request line is ``method SP target SP HTTP/1.x`` with a token method and a target of
  visible ASCII; longer than ``max_request_line``: ``uri-too-long`` (414). A version other than
  1.0 or 1.1: ``version-not-supported`` (505).
* Header fields are ``name: value`` with a token name and no white space before the colon
  (5.1); a line that starts with white space (obsolete line folding, 5.2) is refused. A head
  longer than ``max_head`` or with more than ``max_headers`` fields: ``head-too-large`` (431).
  HTTP/1.1 needs exactly one ``Host`` (3.2). Repeated fields are joined with ", " (RFC 9110
  5.3).
* The body: ``Content-Length`` must be digits and appear once (a repeat, even of the same value,
  is refused: 6.3 lets a server refuse it and h11 refuses conflicts); over ``max_body``:
  ``body-too-large`` (413), before any of it is read. ``Transfer-Encoding`` is not supported:
  chunked gets ``length-required`` (411), any other coding ``not-implemented`` (501), and with a
  ``Content-Length`` beside it, ``bad-request`` (the classic smuggling shape, 6.3).
* Persistence (9.3): an HTTP/1.1 request keeps the connection open unless ``Connection:
  close``; an HTTP/1.0 one closes it unless ``Connection: keep-alive``. After a request that
  closes the connection, the codec reads nothing more (9.6: no further requests are processed).
* Upgrade: after a request asking to switch protocols (``Connection: upgrade`` and an
  ``Upgrade`` field) the codec stops, as h11 does; ``take_upgrade()`` hands over the raw bytes
  of that request's head and everything received after it, for the next protocol's parser.

A head written the plain way (what every client library sends) is read in one call,
``read_head`` (_http_head.c, or ``read_head_py``, its Python reference); anything it does not
take is read line by line by ``_refuse_head``, which holds every refusal above, so the fast
path never accepts what the careful one refuses.

Responses are built with ``response()``. This is for small API, control and page traffic,
not a general web server: no chunked bodies, no ``Expect: 100-continue`` (curl waits a second
for the ``100`` and then sends the body anyway).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote, urlsplit

from residentd.errors import CloseCode, ProtocolError, ProtocolErrorCode
from residentd.speedups import choose

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADERS = 100

# Status of the HTTP error response to each fatal error code.
ERROR_STATUS: dict[str, int] = {
    ProtocolErrorCode.BAD_REQUEST: 400,
    ProtocolErrorCode.BODY_TOO_LARGE: 413,
    CloseCode.INPUT_BUFFER_FULL: 413,
    ProtocolErrorCode.URI_TOO_LONG: 414,
    ProtocolErrorCode.HEAD_TOO_LARGE: 431,
    ProtocolErrorCode.LENGTH_REQUIRED: 411,
    ProtocolErrorCode.NOT_IMPLEMENTED: 501,
    ProtocolErrorCode.VERSION_NOT_SUPPORTED: 505,
    CloseCode.HANDSHAKE_TIMEOUT: 408,
    CloseCode.IDLE_TIMEOUT: 408,
    CloseCode.INTERNAL_ERROR: 500,
    CloseCode.MAX_CONNECTIONS: 503,
    CloseCode.MAX_CONNECTIONS_PER_IP: 503,
    CloseCode.SERVER_SHUTDOWN: 503,
}

_TOKEN = r"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(r"(" + _TOKEN + r") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_FIELD_NAME = re.compile(_TOKEN)
# Every field line of a head after its request line, each ``CRLF name: value`` (the value's
# trailing white space is stripped after: a lazy match to leave it out is slower).
# A head whose lines all match has as many matches as field lines (``_parse_head``).
_FIELD_LINES = re.compile(r"\r\n(" + _TOKEN + r"):[ \t]*([^\r\n]*)")
# Every byte a head may hold but the control characters (HTAB, CR and LF are let through, and
# CR and LF checked as line ends): ``head.translate(None, _ALLOWED)`` keeps only the bad ones.
_ALLOWED = bytes(set(range(256)) - set(range(32)) - {127} | {9, 10, 13})
# The same without CR and LF: what ``translate`` leaves of a good head is its line ends.
_ALLOWED_IN_LINE = bytes(set(_ALLOWED) - {10, 13})

# Codec states.
_READING = 0
_CLOSED = 1  # after a request that closes the connection, or an error: input is ignored
_UPGRADED = 2  # after a request that switches protocols: input is kept for take_upgrade()


class HttpRequest:
    __slots__ = ("body", "head", "headers", "keep_alive", "method", "target", "upgrade", "version")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        head: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers: dict[str, str] = {} if headers is None else headers  # names in lower case
        self.body = body
        self.head = head  # the raw head, kept only for a request that asks to upgrade
        # Whether the connection stays open after this request's response (RFC 9112 9.3), and
        # the protocol this request asks to switch to (``Connection: upgrade`` and ``Upgrade``).
        self.upgrade: str | None = None
        options = self.headers.get("connection")
        if options is None:
            self.keep_alive = version == "HTTP/1.1"
            return
        tokens = {item.strip().lower() for item in options.split(",")}
        self.keep_alive = "close" not in tokens and (
            version == "HTTP/1.1" or "keep-alive" in tokens
        )
        if "upgrade" in tokens:
            self.upgrade = self.headers.get("upgrade") or None

    def __repr__(self) -> str:
        return f"HttpRequest({self.method!r}, {self.target!r}, {self.version!r})"

    @property
    def raw_path(self) -> str:
        """The target's path, as sent (percent-encoded)."""
        target = self.target
        if target[:1] == "/":
            return target.partition("?")[0]
        return urlsplit(target).path  # the absolute form, http://host/path

    @property
    def path(self) -> str:
        """The target's path, percent-decoded."""
        path = self.raw_path
        return unquote(path) if "%" in path else path

    @property
    def query(self) -> dict[str, str]:
        """The target's query, decoded (the last value of a repeated name)."""
        target = self.target
        if target[:1] == "/":
            query = target.partition("?")[2].partition("#")[0]
        else:
            query = urlsplit(target).query
        if not query:
            return {}
        if "%" in query or "+" in query:
            return dict(parse_qsl(query))
        if "&" not in query:
            name, _, value = query.partition("=")
            return {name: value} if value else {}
        # parse_qsl's answer, without its per-pair decoding: pairs split on "&", a pair without
        # "=" or with an empty value dropped.
        values: dict[str, str] = {}
        for pair in query.split("&"):
            name, _, value = pair.partition("=")
            if value:
                values[name] = value
        return values


def read_head_py(
    head: bytes, max_request_line: int, max_headers: int
) -> tuple[str, str, str, dict[str, str]] | None:
    """A plainly written head (without its final empty line) as ``(method, target, version,
    fields)``, names in lower case; None for anything else, which ``_refuse_head`` reads line
    by line. In a few passes: one split, a regex for the request line and one for all the field
    lines. _http_head.c's ``read_head`` is the same function in C."""
    text = head.decode("latin-1")
    lines = text.split("\r\n")
    count = len(lines)
    # Only CRLF pairs may be left once the allowed bytes are taken out: no control
    # character, no bare CR or LF.
    if len(head.translate(None, _ALLOWED_IN_LINE)) != 2 * count - 2 or count > max_headers:
        return None
    first = lines[0]
    request_line = _REQUEST_LINE.fullmatch(first)
    if request_line is None or len(first) > max_request_line:
        return None
    method, target, major, minor = request_line.groups()
    if major != "1" or (minor != "1" and minor != "0"):
        return None
    fields = _FIELD_LINES.findall(text, len(first))
    headers = {name.lower(): value.rstrip(" \t") for name, value in fields}
    if len(fields) != count - 1 or len(headers) != len(fields):
        return None  # a malformed line, or a repeated name
    return method, target, "HTTP/1.1" if minor == "1" else "HTTP/1.0", headers


read_head = choose("residentd.codecs._http_head", "read_head", read_head_py)


class HttpRequestCodec:
    __slots__ = (
        "_body_length",
        "_buffer",
        "_error",
        "_head",
        "_scanned",
        "_state",
        "max_body",
        "max_head",
        "max_headers",
        "max_request_line",
    )

    def __init__(
        self,
        max_head: int = MAX_HEAD,
        max_body: int = MAX_BODY,
        max_request_line: int = MAX_REQUEST_LINE,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.max_request_line = max_request_line
        self.max_headers = max_headers
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer searched for the end of the head
        self._head: HttpRequest | None = None  # a request whose body is still coming
        self._body_length = 0
        self._state = _READING
        self._error: ProtocolError | None = None  # found after requests that went out first

    @property
    def buffered(self) -> int:
        return len(self._buffer) + (self._error is not None)

    @property
    def stopped(self) -> bool:
        """True after a request that closes the connection or switches protocols."""
        return self._state != _READING

    def take_upgrade(self) -> bytes:
        """After an upgrade request: its raw head and every byte received after it."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def feed(self, data: bytes) -> list[HttpRequest]:
        error = self._error
        if error is not None:
            self._error = None
            raise error
        buffer = self._buffer
        if self._state == _CLOSED:
            return []
        if not buffer and self._head is None and self._state == _READING:
            # The usual chunk on a keep-alive connection: one whole request, nothing before it.
            end = data.find(b"\r\n\r\n")
            if 0 < end <= self.max_head and data[:2] != b"\r\n":
                try:
                    first = self._parse_head(data[:end])
                except ProtocolError:
                    self._state = _CLOSED
                    raise
                start = end + 4
                if first.upgrade is not None:
                    first.head = data[:start]
                elif first.keep_alive and len(data) == start + self._body_length:
                    if start < len(data):
                        first.body = data[start:]
                    return [first]
                self._head = first  # the general way on from here, with the rest
                data = data[start:]
        buffer += data
        requests: list[HttpRequest] = []
        while self._state == _READING:
            request = self._head
            if request is None:
                if not buffer:
                    break
                try:
                    request = self._read_head()
                except ProtocolError as error:
                    self._state = _CLOSED  # the connection closes: nothing more is read
                    buffer.clear()
                    if not requests:
                        raise
                    self._error = error  # for the next feed, once these are answered
                    break
                if request is None:
                    break
            length = self._body_length
            if len(buffer) < length:
                self._head = request
                break
            self._head = None
            if length:
                request.body = bytes(buffer[:length])
                del buffer[:length]
            requests.append(request)
            if request.upgrade is not None:
                self._state = _UPGRADED
                buffer[:0] = request.head  # take_upgrade() starts with the request's head
            elif not request.keep_alive:
                self._state = _CLOSED
                buffer.clear()
        return requests

    def _read_head(self) -> HttpRequest | None:
        buffer = self._buffer
        while buffer[:2] == b"\r\n":  # empty lines before a request line (2.2)
            del buffer[:2]
            self._scanned = max(0, self._scanned - 2)
        # The head ends at the first empty line.
        end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0 or end > self.max_head:
            self._incomplete_head(end)
            return None
        head = bytes(buffer[:end])
        del buffer[: end + 4]
        self._scanned = 0
        request = self._parse_head(head)
        if request.upgrade is not None:
            request.head = head + b"\r\n\r\n"
        return request

    def _incomplete_head(self, end: int) -> None:
        """A head not yet ended (``end`` < 0) or too long: refuse it as soon as it is bad."""
        buffer = self._buffer
        scanned = self._scanned
        stop = len(buffer) if end < 0 else end + 4
        # Every LF must end a CRLF (checked on the bytes not scanned before).
        if buffer.count(b"\n", scanned, stop) != buffer.count(b"\r\n", max(0, scanned - 1), stop):
            raise ProtocolError(
                ProtocolErrorCode.BAD_REQUEST, "a bare LF in the head: lines end in CRLF"
            )
        if end >= 0 or len(buffer) > self.max_head:
            raise ProtocolError(ProtocolErrorCode.HEAD_TOO_LARGE, f"limit={self.max_head} bytes")
        line_limit = self.max_request_line
        if len(buffer) > line_limit and buffer.find(b"\n", 0, line_limit + 2) < 0:
            raise ProtocolError(ProtocolErrorCode.URI_TOO_LONG, f"limit={line_limit}")
        self._scanned = len(buffer)

    def _parse_head(self, head: bytes) -> HttpRequest:
        """The request of a whole head (without its final empty line): ``read_head`` reads a
        plainly written one; anything else goes to ``_refuse_head``, the line-by-line reading,
        which names the fault (or reads the head, when nothing was wrong but, say, a repeated
        field)."""
        parsed = read_head(head, self.max_request_line, self.max_headers)
        if parsed is None:
            return self._refuse_head(head)
        method, target, version, headers = parsed
        if version == "HTTP/1.1" and "host" not in headers:
            raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "HTTP/1.1 needs a Host field")
        self._body_length = self._framing(headers, version)
        return HttpRequest(method, target, version, headers)

    def _refuse_head(self, head: bytes) -> HttpRequest:
        """``_parse_head`` line by line, each check in turn: refuses a bad head with the error
        that names its fault, and reads a good one that the fast path does not take."""
        if head.count(b"\n") != head.count(b"\r\n"):
            raise ProtocolError(
                ProtocolErrorCode.BAD_REQUEST, "a bare LF in the head: lines end in CRLF"
            )
        text = head.decode("latin-1")
        first, crlf, block = text.partition("\r\n")
        if len(first) > self.max_request_line:
            raise ProtocolError(ProtocolErrorCode.URI_TOO_LONG, f"limit={self.max_request_line}")
        request_line = _REQUEST_LINE.fullmatch(first)
        if request_line is None:
            raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "malformed request line")
        method, target, major, minor = request_line.groups()
        if major != "1" or minor not in ("0", "1"):
            raise ProtocolError(
                ProtocolErrorCode.VERSION_NOT_SUPPORTED, f"HTTP/{major}.{minor}: use 1.1"
            )
        version = "HTTP/1.1" if minor == "1" else "HTTP/1.0"
        if head.translate(None, _ALLOWED):
            raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "a control character in the head")
        if head.count(b"\r") != head.count(b"\r\n"):
            raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "a bare CR in the head")
        headers: dict[str, str] = {}
        lines = block.split("\r\n") if crlf else ()
        if len(lines) > self.max_headers:
            raise ProtocolError(
                ProtocolErrorCode.HEAD_TOO_LARGE, f"more than {self.max_headers} fields"
            )
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or _FIELD_NAME.fullmatch(name) is None:
                if line[:1] in (" ", "\t"):
                    raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "obsolete line folding")
                raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "malformed header field")
            name = name.lower()
            value = value.strip(" \t")
            if name in headers:
                if name in ("content-length", "host"):
                    raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, f"more than one {name}")
                value = f"{headers[name]}, {value}"
            headers[name] = value
        if version == "HTTP/1.1" and "host" not in headers:
            raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, "HTTP/1.1 needs a Host field")
        self._body_length = self._framing(headers, version)
        return HttpRequest(method, target, version, headers)

    def _framing(self, headers: dict[str, str], version: str) -> int:
        """The body's length, from the head's fields."""
        coding = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if coding is not None:
            if length is not None or version == "HTTP/1.0":
                detail = "Transfer-Encoding with Content-Length or in HTTP/1.0"
                raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, detail)
            if coding.rpartition(",")[2].strip().lower() == "chunked":
                detail = "chunked request bodies are not accepted: send Content-Length"
                raise ProtocolError(ProtocolErrorCode.LENGTH_REQUIRED, detail)
            raise ProtocolError(ProtocolErrorCode.NOT_IMPLEMENTED, f"Transfer-Encoding: {coding}")
        if length is None:
            return 0
        if not length.isascii() or not length.isdigit():
            raise ProtocolError(ProtocolErrorCode.BAD_REQUEST, f"Content-Length: {length[:40]}")
        if len(length) > 18 or int(length) > self.max_body:
            raise ProtocolError(ProtocolErrorCode.BODY_TOO_LARGE, f"limit={self.max_body} bytes")
        return int(length)

    def encode(self, message: bytes) -> bytes:
        return message

    def error_reply(self, error: ProtocolError) -> bytes:
        return error_response(error)


def error_response(error: ProtocolError) -> bytes:
    """The HTTP response to a fatal ``ProtocolError``; the connection closes after it."""
    status = ERROR_STATUS.get(error.code, 400)
    text = f"{error.code} {error.detail}".rstrip() + "\n"
    return response(status, text.encode(), close=True)


# The start of a response head up to the Content-Length value, by status and content type:
# the few the endpoints use are built once.
_HEAD_STARTS: dict[tuple[int, str], bytes] = {}
_MAX_HEAD_STARTS = 256


def _head_start(status: int, content_type: str) -> bytes:
    start = _HEAD_STARTS.get((status, content_type))
    if start is None:
        phrase = HTTPStatus(status).phrase
        text = f"HTTP/1.1 {status} {phrase}\r\nContent-Type: {content_type}\r\nContent-Length: "
        start = text.encode("latin-1")
        if len(_HEAD_STARTS) < _MAX_HEAD_STARTS:
            _HEAD_STARTS[status, content_type] = start
    return start


def response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    *,
    close: bool = False,
    headers: dict[str, str] | None = None,
    head: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response; ``head``: without the body (an answer to HEAD)."""
    end = b"\r\n\r\n"
    if close or headers:
        lines = ["Connection: close"] if close else []
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        end = ("\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return b"%s%d%s%s" % (_head_start(status, content_type), len(body), end, b"" if head else body)


def reply(
    request: HttpRequest,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: dict[str, str] | None = None,
) -> bytes:
    """The response to ``request``: no body for HEAD, ``Connection: close`` when the request
    closes the connection, ``Connection: keep-alive`` to an HTTP/1.0 request that keeps it
    (RFC 9112 9.3: else an HTTP/1.0 client takes the connection to be closing)."""
    keep_alive = request.keep_alive
    if (
        keep_alive
        and headers is None
        and request.version == "HTTP/1.1"
        and request.method != "HEAD"
    ):
        return b"%s%d\r\n\r\n%s" % (_head_start(status, content_type), len(body), body)
    if keep_alive and request.version == "HTTP/1.0":
        headers = {**(headers or {}), "Connection": "keep-alive"}
    head = request.method == "HEAD"
    return response(status, body, content_type, close=not keep_alive, headers=headers, head=head)
