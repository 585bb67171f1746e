"""The exact RESP2 request parser: a Python port of Redis's ``processMultibulkBuffer`` and
``processInlineBuffer``.

It keeps a partial command across feeds and fails exactly where and how Redis fails, with
Redis's error texts (``Protocol error: invalid bulk length``, ...), raised as ``ProtocolError``
with one of ``PROTOCOL_CODES``. ``RespCodec`` (codec.py) is built on it: its fast path reads the
plain multibulk commands, and this parser reads everything else. Limits, all Redis's: a bulk
longer than ``max_bulk_len`` is refused as soon as its header is read, a multibulk count above
2**31 - 1 is refused, and an inline request, or a count or length line, that has no line end
within 64 KiB is refused.

How much input it holds is two numbers. The query buffer (what Redis's
``client-query-buffer-limit`` bounds, 1 GiB by default) is every byte not yet consumed,
the bulk being read included: past ``max_query_buffer`` the parser raises
``input-buffer-full``, which closes the connection without a reply, as Redis does.
``buffered``, which the connection holds to its ``max_input_buffer``, counts only what is held
beyond the bulk whose length has been read: a legal value of 20 MB is data the client
announced, not a flood, and so passes a 4 MiB ``max_input_buffer``.
"""

from __future__ import annotations

from residentd.codecs.resp.inline import split_args
from residentd.errors import CloseCode, ProtocolError, ProtocolErrorCode

DEFAULT_MAX_BULK_LEN = 512 * 1024 * 1024  # proto-max-bulk-len
DEFAULT_MAX_QUERY_BUFFER = 1024 * 1024 * 1024  # client-query-buffer-limit
INLINE_MAX_SIZE = 64 * 1024  # PROTO_INLINE_MAX_SIZE
MAX_MULTIBULK_LEN = 2**31 - 1  # INT_MAX

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Codes of the errors this codec raises, with Redis's text as their detail.
PROTOCOL_CODES = frozenset(
    {
        ProtocolErrorCode.INVALID_MULTIBULK_LENGTH,
        ProtocolErrorCode.INVALID_BULK_LENGTH,
        ProtocolErrorCode.UNEXPECTED_TYPE,
        ProtocolErrorCode.UNBALANCED_QUOTES,
        ProtocolErrorCode.INLINE_TOO_BIG,
        ProtocolErrorCode.MULTIBULK_COUNT_TOO_BIG,
        ProtocolErrorCode.BULK_COUNT_TOO_BIG,
    }
)


def parse_int(text: bytes) -> int | None:
    """A signed 64-bit integer written as Redis's ``string2ll`` accepts it, or ``None``.

    No sign but ``-``, no leading zeros, no spaces, nothing but ASCII digits.
    """
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or (digits[0] == 48 and len(text) > 1) or len(digits) > 19:
        return None
    value = int(text)
    if value < INT64_MIN or value > INT64_MAX:
        return None
    return value


def _line_end(buf: bytearray, pos: int, terminator: bytes) -> int:
    """Where the line at ``pos`` ends, as Redis finds it: ``strchr`` for the terminator, which
    stops at a NUL, so a line with a NUL before its end never ends (the client stalls until
    the limit on a line's size is passed); -1 for not yet."""
    found = buf.find(terminator, pos)
    if found > pos and buf.find(b"\0", pos, found) >= 0:
        return -1
    return found


class RespParser:
    """The exact parser's state, and ``_parse``, which reads commands off ``_buffer``."""

    __slots__ = (
        "_argv",
        "_argv_size",
        "_buffer",
        "_bulk_len",
        "_remaining",
        "buffered",
        "max_bulk_len",
        "max_query_buffer",
    )

    def __init__(
        self,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        max_query_buffer: int = DEFAULT_MAX_QUERY_BUFFER,
    ) -> None:
        if max_bulk_len < 1 or max_query_buffer < 1:
            raise ValueError("max_bulk_len and max_query_buffer must be at least 1")
        self.max_bulk_len = max_bulk_len
        self.max_query_buffer = max_query_buffer
        self._buffer = bytearray()  # input the exact parser has not consumed yet
        self._argv: list[bytes] | None = None  # arguments of a partial multibulk command
        self._argv_size = 0
        self._remaining = 0  # arguments still to read for it
        self._bulk_len = -1  # length of the argument being read, once its header is in
        # Bytes held beyond the bulk being read, at least 1 while anything is held (the
        # connection checks it after each feed): a plain attribute, kept by this parser, as
        # the codec's fast path never holds any.
        self.buffered = 0

    def _parse(self, out: list[list[bytes]], one: bool) -> bool:
        """Parse commands off the buffer into ``out``; with ``one``, stop after the first.
        Returns whether the buffer ends on a command boundary (nothing partial held); raises
        ``input-buffer-full`` when the partial command left is over ``max_query_buffer``."""
        if self._read(out, one):
            return True
        if len(self._buffer) > self.max_query_buffer:
            raise ProtocolError(CloseCode.INPUT_BUFFER_FULL, f"limit={self.max_query_buffer}")
        return False

    def _read(self, out: list[list[bytes]], one: bool) -> bool:
        buf = self._buffer
        end = len(buf)
        pos = 0
        try:
            while pos < end:
                if self._argv is None:
                    if buf[pos] != 0x2A:  # not '*': an inline command
                        newline = _line_end(buf, pos, b"\n")
                        if newline < 0:
                            if end - pos > INLINE_MAX_SIZE:
                                raise _error(
                                    ProtocolErrorCode.INLINE_TOO_BIG, "too big inline request"
                                )
                            return False
                        stop = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
                        argv = split_args(bytes(buf[pos:stop]))
                        if argv is None:
                            raise _error(
                                ProtocolErrorCode.UNBALANCED_QUOTES, "unbalanced quotes in request"
                            )
                        pos = newline + 1
                        if argv:
                            out.append(argv)
                            if one:
                                return True
                        continue
                    newline = _line_end(buf, pos, b"\r")
                    if newline < 0:
                        if end - pos > INLINE_MAX_SIZE:
                            raise _error(
                                ProtocolErrorCode.MULTIBULK_COUNT_TOO_BIG,
                                "too big mbulk count string",
                            )
                        return False
                    if newline > end - 2:
                        return False  # the '\n' is not in yet
                    count = parse_int(bytes(buf[pos + 1 : newline]))
                    if count is None or count > MAX_MULTIBULK_LEN:
                        raise _error(
                            ProtocolErrorCode.INVALID_MULTIBULK_LENGTH, "invalid multibulk length"
                        )
                    pos = newline + 2
                    if count <= 0:
                        continue  # an empty command: Redis skips it
                    self._argv = []
                    self._argv_size = 0
                    self._remaining = count
                argv = self._argv
                while self._remaining:
                    size = self._bulk_len
                    if size < 0:
                        newline = _line_end(buf, pos, b"\r")
                        if newline < 0:
                            if end - pos > INLINE_MAX_SIZE:
                                raise _error(
                                    ProtocolErrorCode.BULK_COUNT_TOO_BIG,
                                    "too big bulk count string",
                                )
                            return False
                        if newline > end - 2:
                            return False
                        if buf[pos] != 0x24:  # '$'
                            got = chr(buf[pos])  # the codec's reply writes CR and LF as spaces
                            raise _error(
                                ProtocolErrorCode.UNEXPECTED_TYPE, f"expected '$', got '{got}'"
                            )
                        parsed = parse_int(bytes(buf[pos + 1 : newline]))
                        if parsed is None or parsed < 0 or parsed > self.max_bulk_len:
                            raise _error(
                                ProtocolErrorCode.INVALID_BULK_LENGTH, "invalid bulk length"
                            )
                        size = self._bulk_len = parsed
                        pos = newline + 2
                    if end - pos < size + 2:
                        return False  # Redis does not check the two bytes after the data
                    argv.append(bytes(buf[pos : pos + size]))
                    self._argv_size += size
                    pos += size + 2
                    self._bulk_len = -1
                    self._remaining -= 1
                out.append(argv)
                self._argv = None
                self._argv_size = 0
                if one:
                    return True
            # Nothing left to read: a boundary, unless a partial command was held before this
            # feed and it brought nothing (``feed(b"")``, which the connection makes while
            # anything is held).
            return self._argv is None
        finally:
            if pos:
                del buf[:pos]
            held = len(buf)
            if self._bulk_len >= 0:  # the bulk being read: its length is known and legal
                held = max(held - self._bulk_len - 2, 0)
            self.buffered = held or int(bool(buf) or self._argv is not None)

    def _reset(self) -> None:
        """Forget the partial command (after an error)."""
        self._buffer.clear()
        self._argv = None
        self._argv_size = 0
        self._remaining = 0
        self._bulk_len = -1
        self.buffered = 0


def _error(code: str, detail: str) -> ProtocolError:
    return ProtocolError(code, detail)
