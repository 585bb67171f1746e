"""``Buffer``: libevent's evbuffer, a byte queue added to at the end and read from the front.

The bytes live in one ``bytearray`` with a read offset. Reading (``remove``, ``drain``,
``readln``) only moves the offset; the dead prefix is cut off once it is at least half the array,
so every byte is moved at most a constant number of times however the data is added and taken:
no operation is quadratic, whatever the sizes of the pieces.

``readln`` remembers how far it has already looked for an end of line without finding one, so a
line that arrives in many small pieces is scanned once, not once per piece. ``search`` is
``bytearray.find`` on the live part.

``read_from`` and ``write_to`` move bytes between the buffer and a file descriptor (socket, pipe)
with one system call, as ``evbuffer_read`` and ``evbuffer_write`` do; a ``BufferEvent`` is built on
them. A buffer event that stopped reading at its high watermark sets ``drain_callback`` to learn
when its input has been read from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from residentd.libevent.flags import (
    EVBUFFER_EOL_ANY,
    EVBUFFER_EOL_CRLF,
    EVBUFFER_EOL_CRLF_STRICT,
    EVBUFFER_EOL_LF,
    EVBUFFER_EOL_NUL,
)

# Below this many dead bytes the prefix is never cut: moving a few bytes often costs more.
_COMPACT_MIN: Final = 4096
_CR: Final = 13
_LF: Final = 10
# What each style looks for, and how many bytes before the end a failed search must look again
# (a CRLF_STRICT buffer ending in "\r" may be completed by a "\n" added later).
_EOL_NEEDLE: Final = {
    EVBUFFER_EOL_CRLF: (b"\n", 0),
    EVBUFFER_EOL_CRLF_STRICT: (b"\r\n", 1),
    EVBUFFER_EOL_LF: (b"\n", 0),
    EVBUFFER_EOL_NUL: (b"\0", 0),
}


class Buffer:
    __slots__ = ("_buf", "_pos", "_scan", "_scan_style", "drain_callback")

    def __init__(self, data: bytes | bytearray | memoryview = b"") -> None:
        self._buf = bytearray(data)
        self._pos = 0
        # readln found no end of line (of style _scan_style) in _buf[_pos:_scan].
        self._scan = 0
        self._scan_style = -1
        #: Called with no arguments after any call that takes bytes out of the buffer.
        self.drain_callback: Callable[[], object] | None = None

    def __len__(self) -> int:
        return len(self._buf) - self._pos

    def __bool__(self) -> bool:
        return len(self._buf) > self._pos

    def __bytes__(self) -> bytes:
        return bytes(self._buf[self._pos :])

    def __repr__(self) -> str:
        return f"<Buffer {len(self)} bytes>"

    # Adding.

    def add(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` at the end (``evbuffer_add``)."""
        self._buf += data

    def add_buffer(self, other: Buffer) -> None:
        """Move all of ``other`` to the end of this buffer (``evbuffer_add_buffer``)."""
        if other is self:
            raise ValueError("cannot add a buffer to itself")
        with memoryview(other._buf) as view:
            self._buf += view[other._pos :]
        other.drain(len(other))

    # Taking out.

    def remove(self, n: int = -1) -> bytes:
        """Take up to ``n`` bytes (all for ``n < 0``) from the front (``evbuffer_remove``)."""
        data = self.peek(n)
        self._consume(len(data))
        return data

    def drain(self, n: int) -> None:
        """Drop up to ``n`` bytes from the front (``evbuffer_drain``)."""
        if n < 0:
            raise ValueError(f"cannot drain a negative number of bytes ({n})")
        self._consume(min(n, len(self)))

    def peek(self, n: int = -1) -> bytes:
        """Copy up to ``n`` bytes (all for ``n < 0``) from the front, leaving them in place
        (``evbuffer_copyout``)."""
        pos = self._pos
        end = len(self._buf) if n < 0 else min(pos + n, len(self._buf))
        with memoryview(self._buf) as view:
            return bytes(view[pos:end])

    def search(self, what: bytes, start: int = 0, end: int | None = None) -> int:
        """Offset of the first ``what`` in ``[start, end)`` of the buffer, or ``-1``
        (``evbuffer_search``)."""
        pos = self._pos
        stop = len(self._buf) if end is None else min(pos + end, len(self._buf))
        found = self._buf.find(what, pos + max(start, 0), stop)
        return found - pos if found >= 0 else -1

    def readln(self, style: int = EVBUFFER_EOL_CRLF) -> bytes | None:
        """Take one line, without its end of line, or return None while no line is complete
        (``evbuffer_readln``).

        ``style`` says what ends a line: ``EVBUFFER_EOL_LF`` a ``"\\n"``; ``EVBUFFER_EOL_CRLF`` a
        ``"\\n"`` with an optional ``"\\r"`` before it; ``EVBUFFER_EOL_CRLF_STRICT`` exactly
        ``"\\r\\n"``; ``EVBUFFER_EOL_NUL`` a ``"\\0"``; ``EVBUFFER_EOL_ANY`` any run of ``"\\r"``
        and ``"\\n"`` bytes (as in libevent, a run split across two reads gives an empty line).
        """
        buf = self._buf
        pos = self._pos
        start = self._scan if style == self._scan_style and self._scan > pos else pos
        if style == EVBUFFER_EOL_ANY:
            end, eol = self._find_any(start)
            retry = 0
        else:
            try:
                needle, retry = _EOL_NEEDLE[style]
            except KeyError:
                raise ValueError(f"unknown end-of-line style {style!r}") from None
            end = buf.find(needle, start)
            eol = len(needle)
            if style == EVBUFFER_EOL_CRLF and end > pos and buf[end - 1] == _CR:
                end -= 1
                eol = 2
        if end < 0:
            self._scan = max(pos, len(buf) - retry)
            self._scan_style = style
            return None
        line = bytes(buf[pos:end])
        self._consume(end + eol - pos)
        return line

    def _find_any(self, start: int) -> tuple[int, int]:
        buf = self._buf
        lf = buf.find(b"\n", start)
        cr = buf.find(b"\r", start, lf if lf >= 0 else len(buf))
        end = cr if cr >= 0 else lf
        if end < 0:
            return -1, 0
        stop = end + 1
        while stop < len(buf) and buf[stop] in (_CR, _LF):
            stop += 1
        return end, stop - end

    def _consume(self, n: int) -> None:
        pos = self._pos + n
        size = len(self._buf)
        if pos >= size:
            self._buf.clear()
            self._pos = self._scan = 0
        elif pos >= _COMPACT_MIN and pos * 2 >= size:
            del self._buf[:pos]
            self._pos = 0
            self._scan = max(self._scan - pos, 0)
        else:
            self._pos = pos
        if n and self.drain_callback is not None:
            self.drain_callback()

    # Moving bytes between the buffer and a file descriptor.

    def read_from(self, fd: int, n: int) -> int:
        """Read up to ``n`` bytes from ``fd`` onto the end; return how many (0 at end of file).

        ``BlockingIOError`` and other ``OSError`` come from ``os.read`` unchanged.
        """
        data = os.read(fd, n)
        self._buf += data
        return len(data)

    def write_to(self, fd: int, n: int = -1) -> int:
        """Write up to ``n`` bytes (all for ``n < 0``) from the front to ``fd`` and take off what
        was written; return how many. Errors come from ``os.write`` unchanged."""
        pos = self._pos
        end = len(self._buf) if n < 0 else min(pos + n, len(self._buf))
        with memoryview(self._buf) as view, view[pos:end] as chunk:
            written = os.write(fd, chunk)
        self._consume(written)
        return written
