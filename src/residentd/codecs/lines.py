"""Line framing: one message per line, ended by LF or CRLF.

Messages are the bytes of a line without its terminator (a trailing CR is dropped, so LF and
CRLF peers both work). A line longer than ``max_line`` bytes is a ``ProtocolError`` with code
``line-too-long`` as soon as the partial line passes the limit, without waiting for its end, so
a peer cannot make the buffer grow past the limit; the lines before it come out first, and the
error from the next ``feed`` (codecs/base.py).

The partial line lives in a bytearray; each feed scans only the bytes it has not scanned
before, so a long line arriving in small pieces costs linear, not quadratic, time. A chunk that
arrives with nothing held and is too short to break the limit, the common case, takes a fast
path: one ``split``, and only a trailing partial line is copied into the buffer.

The error form is ``ERR <code> <detail>`` on a line of its own.
"""

from __future__ import annotations

from residentd.errors import ProtocolError, ProtocolErrorCode
from residentd.speedups import choose

DEFAULT_MAX_LINE = 64 * 1024


class LineCodec:
    __slots__ = ("_buffer", "_error", "_scanned", "buffered", "max_line", "newline")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, newline: bytes = b"\n") -> None:
        if max_line < 1:
            raise ValueError("max_line must be at least 1")
        self.max_line = max_line
        self.newline = newline
        # The partial line: made on first use, so an idle connection does not pay for it.
        self._buffer: bytearray | None = None
        self._scanned = 0
        self.buffered = 0  # bytes of the partial line held for the next feed
        self._error: ProtocolError | None = None  # found after lines that went out first

    def feed(self, data: bytes) -> list[bytes]:
        if self.buffered or len(data) > self.max_line + 1:
            return self._feed_buffered(data)
        # Fast path: nothing held, and no line in this chunk can be over the limit.
        lines = data.split(b"\n")
        partial = lines.pop()
        if partial:
            self._hold(partial)
        if 13 in data:  # b"\r", tested as an int: much cheaper than a bytes search
            return _strip_cr(lines)
        return lines

    def _hold(self, partial: bytes) -> None:
        if self._buffer is None:
            self._buffer = bytearray()
        self._buffer += partial
        self._scanned = self.buffered = len(partial)

    def _feed_buffered(self, data: bytes) -> list[bytes]:
        error = self._error
        if error is not None:
            self._error = None
            self.buffered = 0
            raise error
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = bytearray()
        buffer += data
        lines: list[bytes] = []
        start = 0
        position = buffer.find(b"\n", self._scanned)
        while position >= 0:
            line = bytes(buffer[start:position])
            if line[-1:] == b"\r":
                line = line[:-1]
            if len(line) > self.max_line:
                return self._too_long(lines)
            lines.append(line)
            start = position + 1
            position = buffer.find(b"\n", start)
        if start:
            del buffer[:start]
        partial = len(buffer)
        # A partial line may still lose a trailing CR, hence the +1.
        if partial > self.max_line + 1:
            return self._too_long(lines)
        self._scanned = self.buffered = partial
        return lines

    def unparsed(self) -> bytes:
        """The partial line held, as the bytes that came in: a live upgrade hands them to the
        next generation's codec with the connection (a held error is not input)."""
        if self._error is not None or not self.buffered or self._buffer is None:
            return b""
        return bytes(self._buffer[: self.buffered])

    def _too_long(self, decoded: list[bytes]) -> list[bytes]:
        """Drop the partial line; raise line-too-long now, or, when lines came before it,
        return them and keep the error for the next feed (``buffered`` stays above 0)."""
        if self._buffer is not None:
            self._buffer.clear()
        self._scanned = self.buffered = 0
        error = ProtocolError(ProtocolErrorCode.LINE_TOO_LONG, f"limit={self.max_line}")
        if not decoded:
            raise error
        self._error = error
        self.buffered = 1
        return decoded

    def encode(self, message: bytes | str) -> bytes:
        if isinstance(message, str):
            message = message.encode()
        return message + self.newline

    def encode_many(self, messages: list[bytes]) -> bytes:
        """Several messages in one buffer: one join instead of one concatenation each."""
        newline = self.newline
        try:
            return newline.join(messages) + newline
        except TypeError:  # some are str
            return b"".join(map(self.encode, messages))

    def error_reply(self, error: ProtocolError) -> bytes:
        text = f"ERR {error.code} {error.detail}" if error.detail else f"ERR {error.code}"
        return text.encode() + self.newline


def _strip_cr(lines: list[bytes]) -> list[bytes]:
    return [line[:-1] if line[-1:] == b"\r" else line for line in lines]


# The Python version above is the reference; _lines.c is the same class in C, used when built.
PyLineCodec = LineCodec
LineCodec = choose("residentd.codecs._lines", "LineCodec", PyLineCodec)  # type: ignore[misc]
