"""Line framing: one message per line, ended by LF or CRLF.

Messages are the bytes of a line without its terminator (a trailing CR is dropped, so LF and
CRLF peers both work). A line longer than ``max_line`` bytes raises ``ProtocolError`` with code
``line-too-long`` as soon as the partial line passes the limit, without waiting for its end, so
a peer cannot make the buffer grow past the limit.

The partial line lives in a bytearray; each feed scans only the bytes it has not scanned
before, so a long line arriving in small pieces costs linear, not quadratic, time. Whole chunks
that end at a line break, the common case, take a fast path that never touches the buffer.

The error form is ``ERR <code> <detail>`` on a line of its own.
"""

from __future__ import annotations

from residentd.errors import ProtocolError

DEFAULT_MAX_LINE = 64 * 1024


class LineCodec:
    __slots__ = ("_buffer", "_scanned", "max_line", "newline")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, newline: bytes = b"\n") -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self.newline = newline
        self._buffer = bytearray()
        self._scanned = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if not self._buffer and data[-1:] == b"\n" and len(data) <= self.max_line + 1:
            # Fast path: whole lines only, none of them can be over the limit.
            if data.find(b"\n") == len(data) - 1:
                line = data[:-1]
                return [line[:-1] if line[-1:] == b"\r" else line]
            lines = data.split(b"\n")
            lines.pop()
            return _strip_cr(lines) if b"\r" in data else lines
        return self._feed_buffered(data)

    def _feed_buffered(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        lines: list[bytes] = []
        start = 0
        position = buffer.find(b"\n", self._scanned)
        while position >= 0:
            line = bytes(buffer[start:position])
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > self.max_line:
                raise self._too_long(lines)
            lines.append(line)
            start = position + 1
            position = buffer.find(b"\n", start)
        if start:
            del buffer[:start]
        partial = len(buffer)
        # A partial line may still lose a trailing CR, hence the +1.
        if partial > self.max_line + 1:
            raise self._too_long(lines)
        self._scanned = partial
        return lines

    def _too_long(self, decoded: list[bytes]) -> ProtocolError:
        self._buffer.clear()
        self._scanned = 0
        return ProtocolError("line-too-long", f"limit={self.max_line}", decoded)

    def encode(self, message: bytes | str) -> bytes:
        if isinstance(message, str):
            message = message.encode()
        return message + self.newline

    def error_reply(self, error: ProtocolError) -> bytes:
        text = f"ERR {error.code} {error.detail}" if error.detail else f"ERR {error.code}"
        return text.encode() + self.newline


def _strip_cr(lines: list[bytes]) -> list[bytes]:
    return [line[:-1] if line[-1:] == b"\r" else line for line in lines]
