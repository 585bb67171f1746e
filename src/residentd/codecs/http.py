"""A small HTTP/1.x request parser for residentd's own endpoints (admin, web pages).

It reads a request line, headers and a ``Content-Length`` body, with limits on the head and the
body, and yields ``HttpRequest`` objects. It does not do chunked request bodies (refused with
``411``-style error ``length-required``) or pipelining beyond sequential requests on a
keep-alive connection. Responses are built with ``response()``.

This is for small control and page traffic, not a general web server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from residentd.errors import ProtocolError

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024

REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    500: "Internal Server Error",
}


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.target).query).items()}

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class HttpRequestCodec:
    __slots__ = ("_buffer", "_head", "max_body", "max_head")

    def __init__(self, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self._buffer = bytearray()
        self._head: HttpRequest | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[HttpRequest]:
        self._buffer += data
        requests: list[HttpRequest] = []
        while True:
            if self._head is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > self.max_head:
                        raise ProtocolError("head-too-large", f"limit={self.max_head}", requests)
                    return requests
                head = bytes(self._buffer[:end])
                del self._buffer[: end + 4]
                self._head = self._parse_head(head, requests)
            length = int(self._head.headers.get("content-length", "0"))
            if len(self._buffer) < length:
                return requests
            self._head.body = bytes(self._buffer[:length])
            del self._buffer[:length]
            requests.append(self._head)
            self._head = None

    def _parse_head(self, head: bytes, done: list[HttpRequest]) -> HttpRequest:
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise ProtocolError("bad-request", "malformed request line", done) from None
        if not version.startswith("HTTP/1."):
            raise ProtocolError("bad-request", f"unsupported version {version}", done)
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise ProtocolError("bad-request", "malformed header line", done)
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise ProtocolError("length-required", "chunked bodies are not accepted", done)
        length = headers.get("content-length", "0")
        if not length.isdigit():
            raise ProtocolError("bad-request", "bad content-length", done)
        if int(length) > self.max_body:
            raise ProtocolError("body-too-large", f"limit={self.max_body}", done)
        return HttpRequest(method, target, version, headers)

    def encode(self, message: bytes) -> bytes:
        return message

    def error_reply(self, error: ProtocolError) -> bytes:
        status = 413 if error.code.endswith("too-large") else 400
        return response(status, f"{error.code} {error.detail}\n".encode(), close=True)


def response(
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    *,
    close: bool = False,
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    if close:
        lines.append("Connection: close")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
