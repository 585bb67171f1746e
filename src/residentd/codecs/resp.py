"""RESP2, the Redis protocol: requests in, pre-encoded replies out, with Redis's own limits.

A request is a command, a list of byte strings. It comes either as a multibulk array
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``, what every client library sends) or as an inline line
(``GET k\\r\\n``, what people type into telnet), chosen per command by its first byte, exactly as
Redis's ``processInputBuffer`` does. Replies are bytes already in RESP form: ``encode`` passes
bytes through untouched, and the helpers below (``bulk``, ``integer``, ``array``, ``OK``, ...)
build them, so a server answers without an encoding step per message.

Two parsers share the work:

* The exact parser is a Python port of Redis's ``processMultibulkBuffer`` and
  ``processInlineBuffer``: it keeps a partial command across feeds and fails exactly where and
  how Redis fails, with Redis's error texts (``Protocol error: invalid bulk length``, ...). It
  reads inline commands, garbage, and the feed that completes a partial command (only up to
  the end of that command: the rest goes back to the fast path).
* The fast path reads a chunk that starts with ``*``. With the C extension built (the usual
  case) it is ``_resp_reader.read_commands``: it reads the plainly written multibulk commands
  at the start of the chunk, exactly as Redis would, and stops at anything else; the exact
  parser reads on from there. Without the extension it is hiredis's C ``Reader``, which
  accepts more than Redis does, so the codec checks its result:

  - the chunk goes to hiredis behind an array header counting the chunk's ``*`` bytes (so one
    ``gets`` returns every command) and followed by a sentinel reply: getting the sentinel
    back proves the chunk ended on a command boundary with one ``*`` per command;
  - hiredis's result stands only if every command is a non-empty list of bytes and, when the
    chunk holds a byte that starts another string or list type, one ``$`` per argument
    (``_canonical``); anything else is read again, from the start of the chunk, by the exact
    parser. A chunk that ends inside a command keeps hiredis's commands up to there (their
    canonical size says where) and gives the rest to the exact parser;
  - chunks that hold an array count of five digits or more skip hiredis, which allocates a
    whole array when it reads the count;
  - what this path reads differently from Redis is limited to requests crafted to make up for
    a missing header with ``$`` or ``*`` bytes inside arguments; they run as the commands of
    bytes hiredis reads.

Limits, all Redis's: a bulk longer than ``max_bulk_len`` (``proto-max-bulk-len``, 512 MiB) is
refused as soon as its header is read; a multibulk count above 2**31 - 1 is refused; an inline
request, or a count or length line, that has no line end within 64 KiB is refused. How much
unparsed input a connection may hold (Redis's ``client-query-buffer-limit``) is the
connection's ``max_input_buffer``: ``buffered`` counts the partial command, arguments already
split off included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import chain
from typing import Any

import hiredis

from residentd.errors import ProtocolError
from residentd.speedups import load

_c_reader = load("residentd.codecs._resp_reader")
# Without the C reader (no compiler at install), hiredis's reader is the fast path.
read_commands = _c_reader.read_commands if _c_reader is not None else None

DEFAULT_MAX_BULK_LEN = 512 * 1024 * 1024  # proto-max-bulk-len
INLINE_MAX_SIZE = 64 * 1024  # PROTO_INLINE_MAX_SIZE
MAX_MULTIBULK_LEN = 2**31 - 1  # INT_MAX

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

CRLF = b"\r\n"
OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
QUEUED = b"+QUEUED\r\n"
NIL = b"$-1\r\n"
NIL_ARRAY = b"*-1\r\n"
EMPTY_ARRAY = b"*0\r\n"
EMPTY_BULK = b"$0\r\n\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"

_JOIN = b"".join

# hiredis allocates an array's whole list when it reads the count, and freeing the list of a
# partial array walks all of it: "*2147483647\r\n" would cost seconds. Chunks with a count of
# five digits or more anywhere go to the exact parser, which grows a command as it arrives.
_LARGE_ARRAY = re.compile(rb"\*[0-9]{5}")
_LARGE_RESP3 = re.compile(rb"[>~][0-9]{5}")  # pushes and sets, which hiredis reads too
# hiredis keeps its buffer, as large as the largest chunk it was fed, until its next feed: a
# connection that sent one large request and went idle would hold it. After a chunk above
# this size the reader is replaced, which frees it (a new reader costs about a microsecond).
_READER_KEEP = 4096
_SENTINEL = b"+\x00\r\n"  # a simple-string reply no request contains
_SENTINEL_REPLY = b"\x00"

# Digits of each length below 100,000: one table lookup per argument in the fast path's check.
_DIGITS = bytes(len(str(n)) for n in range(100_000))

# Pre-encoded headers and integers for small values: most replies are small. BULK_HEADERS is
# public for handlers that build a bulk reply inline on their hot path (kv's GET).
SMALL = 1024
BULK_HEADERS = [b"$%d\r\n" % n for n in range(SMALL)]
_ARRAY_HEADERS = [b"*%d\r\n" % n for n in range(SMALL)]
_INTEGERS = [b":%d\r\n" % n for n in range(SMALL)]

# Codes of the errors this codec raises, with Redis's text as their detail.
PROTOCOL_CODES = frozenset(
    {
        "invalid-multibulk-length",
        "invalid-bulk-length",
        "unexpected-type",
        "unbalanced-quotes",
        "inline-too-big",
        "multibulk-count-too-big",
        "bulk-count-too-big",
    }
)

# The core's refusals and closes, in Redis's words where Redis has any. ``None``: Redis closes
# such a connection without a word (query buffer limit, idle timeout, output buffer limit).
_CLOSE_REPLIES: dict[str, bytes | None] = {
    "max-connections": b"-ERR max number of clients reached\r\n",
    "max-connections-per-ip": b"-ERR max number of clients per IP address reached\r\n",
    "server-shutdown": b"-ERR server is shutting down\r\n",
    "internal-error": b"-ERR internal error, closing the connection\r\n",
    "input-buffer-full": None,
    "idle-timeout": None,
    "handshake-timeout": None,
}


# -- replies ---------------------------------------------------------------------------------


def bulk(value: bytes) -> bytes:
    """A bulk string reply: ``$<len>\\r\\n<value>\\r\\n``."""
    size = len(value)
    if size < SMALL:
        return BULK_HEADERS[size] + value + CRLF
    return b"$%d\r\n%b\r\n" % (size, value)


def integer(value: int) -> bytes:
    """An integer reply: ``:<value>\\r\\n``."""
    if 0 <= value < SMALL:
        return _INTEGERS[value]
    return b":%d\r\n" % value


def array_header(count: int) -> bytes:
    return _ARRAY_HEADERS[count] if count < SMALL else b"*%d\r\n" % count


def bulk_array(values: Iterable[bytes | None]) -> bytes:
    """An array of bulk strings (``None`` is a nil bulk)."""
    parts = [NIL if value is None else bulk(value) for value in values]
    return array_header(len(parts)) + b"".join(parts)


def array(replies: list[bytes]) -> bytes:
    """An array of replies that are already encoded."""
    return array_header(len(replies)) + b"".join(replies)


def simple(text: str) -> bytes:
    return b"+" + text.encode() + CRLF


def error(text: str | bytes) -> bytes:
    """An error reply; CR and LF become spaces, as Redis's ``addReplyErrorFormat`` does."""
    if isinstance(text, str):
        text = text.encode()
    return b"-" + text.replace(b"\r", b" ").replace(b"\n", b" ") + CRLF


def encode_value(value: Any) -> bytes:
    """RESP for plain Python data: bytes, str, int, None, lists and tuples of those."""
    if isinstance(value, bytes):
        return bulk(value)
    if isinstance(value, str):
        return bulk(value.encode())
    if isinstance(value, bool):
        return integer(int(value))
    if isinstance(value, int):
        return integer(value)
    if value is None:
        return NIL
    if isinstance(value, list | tuple):
        return array([encode_value(item) for item in value])
    raise TypeError(f"cannot encode {type(value).__name__} as RESP")


# -- numbers ---------------------------------------------------------------------------------


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


# -- inline requests -------------------------------------------------------------------------

_SPACE = frozenset(b" \t\n\r\v\f")  # C isspace
_TOKEN_END = frozenset(b" \n\r\t\0")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_PLAIN_SPECIALS = frozenset(b"\"'\v\f\0")


def _hex_pair(line: bytes, i: int) -> bool:
    return i + 1 < len(line) and line[i] in _HEX and line[i + 1] in _HEX


def split_args(line: bytes) -> list[bytes] | None:
    """Split an inline request into arguments as Redis's ``sdssplitargs`` does, or ``None``
    for unbalanced quotes. Quotes may hold ``\\xHH``, ``\\n`` and the like (double quotes) or
    ``\\'`` (single quotes); a closing quote must be followed by a space or the end."""
    if _PLAIN_SPECIALS.isdisjoint(line):
        return line.split()
    line = line.split(b"\0", 1)[0]  # a C string: it ends at the first NUL
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0  # the quote we are inside: 0x22 ("), 0x27 (') or none
        while True:
            c = line[i] if i < n else 0
            nxt = line[i + 1] if i + 1 < n else 0
            if not quote:
                if c in _TOKEN_END:
                    break
                if c in (0x22, 0x27):
                    quote = c
                else:
                    current.append(c)
            elif c == 0x5C and quote == 0x22 and nxt == 0x78 and _hex_pair(line, i + 2):
                current.append(int(line[i + 2 : i + 4], 16))  # "\xHH"
                i += 3
            elif c == 0x5C and quote == 0x22 and nxt:
                current.append(_ESCAPES.get(nxt, nxt))  # "\n", "\"", ...
                i += 1
            elif c == 0x5C and quote == 0x27 and nxt == 0x27:
                current.append(0x27)  # '\''
                i += 1
            elif c == quote:
                if nxt and nxt not in _SPACE:
                    return None  # a closing quote must end the argument
                i += 1
                break
            elif not c:
                return None  # the line ended inside quotes
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


# -- the codec -------------------------------------------------------------------------------


class RespCodec:
    """RESP2 requests in (lists of bytes), RESP replies out (bytes, passed through)."""

    __slots__ = (
        "_argv",
        "_argv_size",
        "_buffer",
        "_bulk_len",
        "_reader",
        "_remaining",
        "buffered",
        "max_bulk_len",
    )

    def __init__(self, max_bulk_len: int = DEFAULT_MAX_BULK_LEN) -> None:
        if max_bulk_len < 1:
            raise ValueError("max_bulk_len must be at least 1")
        self.max_bulk_len = max_bulk_len
        self._reader = hiredis.Reader()
        self._buffer = bytearray()  # input the exact parser has not consumed yet
        self._argv: list[bytes] | None = None  # arguments of a partial multibulk command
        self._argv_size = 0
        self._remaining = 0  # arguments still to read for it
        self._bulk_len = -1  # length of the argument being read, once its header is in
        # Bytes of the partial command held (the connection checks it after each feed): a
        # plain attribute, kept by the exact parser, as the fast path never holds any.
        self.buffered = 0

    def feed(self, data: bytes) -> list[list[bytes]]:
        if (
            data[:1] != b"*"
            or self._buffer
            or self._argv is not None
            or len(data) > self.max_bulk_len  # could hold a bulk over the limit
        ):
            return self._feed_exact(data)
        if read_commands is not None:
            out, end = read_commands(data, self.max_bulk_len)
            if end == len(data):
                return out
            return self._feed_rest(out, data[end:] if end else data)
        stars = data.count(b"*")
        if (data[1:6].isdigit() if stars == 1 else _LARGE_ARRAY.search(data) is not None) or (
            (62 in data or 126 in data) and _LARGE_RESP3.search(data) is not None
        ):
            return self._feed_exact(data)
        reader = self._reader
        if stars > 1:
            # One array around the whole chunk: hiredis hands back every command in one call.
            reader.feed(_ARRAY_HEADERS[stars] if stars < SMALL else b"*%d\r\n" % stars)
        reader.feed(data)
        reader.feed(_SENTINEL)
        try:
            out = reader.gets()
            last = reader.gets()
        except Exception:  # hiredis.ProtocolError, or TypeError for RESP3 maps keyed by arrays
            self._reader = hiredis.Reader()
            return self._feed_exact(data)
        if last != _SENTINEL_REPLY or reader.has_data():
            self._reader = hiredis.Reader()
            return self._feed_partial(data)
        if stars == 1:
            out = [out]
        # A false element is an empty command ("*0", which Redis skips) or an empty string
        # where a command should be: the exact parser sorts them out.
        if not (all(out) and _canonical(data, len(data), out)):
            return self._feed_exact(data)
        if len(data) > _READER_KEEP:
            self._reader = hiredis.Reader()  # let go of the reader's big buffer
        return out

    def encode(self, message: Any) -> bytes:
        return message if isinstance(message, bytes) else encode_value(message)

    def unparsed(self) -> bytes:
        """The partial command held, in RESP (for a live upgrade): the arguments the exact
        parser has already taken off its buffer are written back in front of the rest."""
        rest = bytes(self._buffer)
        argv = self._argv
        if argv is None:
            return rest
        head = [b"*%d\r\n" % (len(argv) + self._remaining)]
        head += [b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in argv]
        if self._bulk_len >= 0:
            head.append(b"$%d\r\n" % self._bulk_len)
        return b"".join(head) + rest

    def error_reply(self, error: ProtocolError) -> bytes | None:
        if error.code in PROTOCOL_CODES:
            return b"-ERR Protocol error: " + error.detail.encode("latin-1") + CRLF
        return _CLOSE_REPLIES.get(error.code, b"-ERR " + error.code.encode() + CRLF)

    # -- the rest ------------------------------------------------------------------------------

    def _feed_partial(self, data: bytes) -> list[list[bytes]]:
        """A chunk that ends inside a command (or that hiredis refused): keep the commands
        hiredis reads before that point if they are its canonical encoding, and give the
        rest to the exact parser, which keeps a partial command until it is complete."""
        reader = hiredis.Reader()
        reader.feed(data)
        out = _read_replies(reader)
        if out is None:
            return self._feed_exact(data)
        end = _wire_size(out)
        if end < 0 or not _canonical(data, end, out):
            return self._feed_exact(data)
        return self._feed_rest([argv for argv in out if argv], data[end:])

    def _feed_rest(self, out: list[list[bytes]], rest: bytes) -> list[list[bytes]]:
        """The fast path read ``out`` off a chunk: the exact parser reads the ``rest``."""
        try:
            out += self._feed_exact(rest)
        except ProtocolError as exc:
            exc.messages[:0] = out
            raise
        return out

    def _feed_exact(self, data: bytes) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        try:
            if self._buffer or self._argv is not None:
                self._complete(data, out)
            elif data:
                self._buffer += data
                self._parse(out, one=False)
        except ProtocolError as exc:
            exc.messages[:0] = out
            self._reset()
            raise
        return out

    def _complete(self, data: bytes, out: list[list[bytes]]) -> None:
        """Finish the pending partial command exactly, then feed the rest afresh, which
        takes the fast path again when it can."""
        self._buffer += data
        if not self._parse(out, one=True):
            return  # still partial
        rest = bytes(self._buffer)
        self._buffer.clear()
        self.buffered = 0
        if rest:
            out += RespCodec.feed(self, rest)

    # -- exact parser --------------------------------------------------------------------------

    def _parse(self, out: list[list[bytes]], one: bool) -> bool:
        """Parse commands off the buffer into ``out``; with ``one``, stop after the first.
        Returns whether the buffer ends on a command boundary (nothing partial held)."""
        buf = self._buffer
        end = len(buf)
        pos = 0
        try:
            while pos < end:
                if self._argv is None:
                    if buf[pos] != 0x2A:  # not '*': an inline command
                        newline = buf.find(b"\n", pos)
                        if newline < 0:
                            if end - pos > INLINE_MAX_SIZE:
                                raise _error("inline-too-big", "too big inline request")
                            return False
                        stop = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
                        argv = split_args(bytes(buf[pos:stop]))
                        if argv is None:
                            raise _error("unbalanced-quotes", "unbalanced quotes in request")
                        pos = newline + 1
                        if argv:
                            out.append(argv)
                            if one:
                                return True
                        continue
                    newline = buf.find(b"\r", pos)
                    if newline < 0:
                        if end - pos > INLINE_MAX_SIZE:
                            raise _error("multibulk-count-too-big", "too big mbulk count string")
                        return False
                    if newline > end - 2:
                        return False  # the '\n' is not in yet
                    count = parse_int(bytes(buf[pos + 1 : newline]))
                    if count is None or count > MAX_MULTIBULK_LEN:
                        raise _error("invalid-multibulk-length", "invalid multibulk length")
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
                        newline = buf.find(b"\r", pos)
                        if newline < 0:
                            if end - pos > INLINE_MAX_SIZE:
                                raise _error("bulk-count-too-big", "too big bulk count string")
                            return False
                        if newline > end - 2:
                            return False
                        if buf[pos] != 0x24:  # '$'
                            got = buf[pos : pos + 1].decode("latin-1").replace("\r", " ")
                            raise _error("unexpected-type", f"expected '$', got '{got}'")
                        parsed = parse_int(bytes(buf[pos + 1 : newline]))
                        if parsed is None or parsed < 0 or parsed > self.max_bulk_len:
                            raise _error("invalid-bulk-length", "invalid bulk length")
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
            return True
        finally:
            if pos:
                del buf[:pos]
            self.buffered = len(buf) + self._argv_size

    def _reset(self) -> None:
        self._buffer.clear()
        self._argv = None
        self._argv_size = 0
        self._remaining = 0
        self._bulk_len = -1
        self._reader = hiredis.Reader()
        self.buffered = 0


def _error(code: str, detail: str) -> ProtocolError:
    return ProtocolError(code, detail)


def _read_replies(reader: Any) -> list[Any] | None:
    """Every complete reply the hiredis reader holds, or ``None`` if it refused the input."""
    out = []
    try:
        reply = reader.gets()
        while reply is not False:
            out.append(reply)
            reply = reader.gets()
    except Exception:  # hiredis.ProtocolError, or TypeError for RESP3 maps keyed by arrays
        return None
    return out


def _canonical(data: bytes, end: int, commands: list[Any]) -> bool:
    """Whether ``data[:end]``, which hiredis read as ``commands`` (none of them empty), is
    their canonical encoding: a ``*`` array of ``$`` bulk strings each. hiredis has checked
    the framing and the numbers; what it accepts beyond that is other reply types. Those
    that give neither bytes nor a list (integers, nil, ...), nested arrays, and strings where
    a command should be fail the joins. The rest need a header byte of their own: ``+``
    simple, ``=`` verbatim and ``(`` big-number strings give bytes, ``~`` sets, ``|``
    attributes and ``>`` pushes give lists, ``%`` maps give dicts. Only a chunk that holds
    one of those seven bytes anywhere needs counting: one ``*`` per command and one ``$``
    per argument. A ``$`` or ``*`` inside an argument fails the count too, and the chunk
    goes to the exact parser: slower, never wrong. Only such bytes placed to make up for a
    missing header fool the counts; the result is then still commands of bytes, read
    differently from Redis."""
    try:
        if len(commands) == 1:
            _JOIN(commands[0])  # TypeError for anything but bytes in it
        else:
            list(map(_JOIN, commands))
        if not (
            43 in data
            or 61 in data
            or 40 in data
            or 126 in data
            or 124 in data
            or 62 in data
            or 37 in data
        ):
            return True
        arguments = sum(map(list.__len__, commands))  # TypeError for anything but lists
    except TypeError:
        return False
    return data.count(b"*", 0, end) == len(commands) and data.count(b"$", 0, end) == arguments


def _wire_size(commands: list[Any]) -> int:
    """Bytes of the canonical RESP encoding of ``commands``, or -1 when one of them is not a
    list of bytes or is too large for the digit table (then the exact parser decides)."""
    try:
        counts = list(map(list.__len__, commands))
        sizes = list(map(bytes.__len__, chain.from_iterable(commands)))
        digits = _DIGITS.__getitem__
        return (
            3 * len(counts)
            + sum(map(digits, counts))
            + 5 * len(sizes)
            + sum(sizes)
            + sum(map(digits, sizes))
        )
    except (TypeError, IndexError):
        return -1
