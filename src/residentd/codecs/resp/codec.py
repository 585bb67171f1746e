"""RESP2, the Redis protocol, as a residentd codec: requests in, pre-encoded replies out.

A request is a command, a list of byte strings. It comes either as a multibulk array
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``, what every client library sends) or as an inline line
(``GET k\\r\\n``), chosen per command by its first byte, exactly as Redis's
``processInputBuffer`` does. Replies are bytes already in RESP form (replies.py): ``encode``
passes bytes through untouched.

Two parsers share the work:

* The exact parser (parser.py) reads inline commands that have quotes in them, garbage, and
  the feed that completes a partial command (only up to the end of that command: the rest
  goes back to the fast path).
* The fast path reads a chunk. With the C extension built (the usual case) it is
  ``_resp_reader.read_commands``: it reads the plainly written multibulk commands and the
  complete inline lines without quotes at the start of the chunk, exactly as Redis would, and
  stops at anything else; the exact parser reads on from there. Without the extension it is
  hiredis's C ``Reader``, for a chunk that starts with ``*``; it accepts more than Redis does,
  so the codec checks its result:

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

A protocol error ends the connection (after Redis's error reply); the commands before it in
the same chunk are returned first and the error comes out of the next ``feed`` (codecs/base.py).
How much unparsed input a connection may hold is bounded twice (parser.py): the whole partial
command by ``max_query_buffer`` (Redis's ``client-query-buffer-limit``), and what is held
beyond the bulk being read by the connection's ``max_input_buffer``, so a legal large value
passes while a flood does not.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any

import hiredis

from residentd.codecs.resp.parser import (
    DEFAULT_MAX_BULK_LEN,
    DEFAULT_MAX_QUERY_BUFFER,
    PROTOCOL_CODES,
    RespParser,
)
from residentd.codecs.resp.replies import _ARRAY_HEADERS, CRLF, SMALL, encode_value
from residentd.errors import CloseCode, ProtocolError
from residentd.speedups import choose

# Without the C reader (no compiler at install), hiredis's reader is the fast path.
read_commands = choose("residentd.codecs._resp_reader", "read_commands", None)

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

# The core's refusals and closes, in Redis's words where Redis has any. ``None``: Redis closes
# such a connection without a word (query buffer limit, idle timeout, output buffer limit).
_CLOSE_REPLIES: dict[str, bytes | None] = {
    CloseCode.MAX_CONNECTIONS: b"-ERR max number of clients reached\r\n",
    CloseCode.MAX_CONNECTIONS_PER_IP: b"-ERR max number of clients per IP address reached\r\n",
    CloseCode.SERVER_SHUTDOWN: b"-ERR server is shutting down\r\n",
    CloseCode.INTERNAL_ERROR: b"-ERR internal error, closing the connection\r\n",
    CloseCode.INPUT_BUFFER_FULL: None,
    CloseCode.IDLE_TIMEOUT: None,
    CloseCode.HANDSHAKE_TIMEOUT: None,
}


class RespCodec(RespParser):
    """RESP2 requests in (lists of bytes), RESP replies out (bytes, passed through)."""

    __slots__ = ("_error", "_reader")

    def __init__(
        self,
        max_bulk_len: int = DEFAULT_MAX_BULK_LEN,
        max_query_buffer: int = DEFAULT_MAX_QUERY_BUFFER,
    ) -> None:
        super().__init__(max_bulk_len, max_query_buffer)
        self._reader = hiredis.Reader()
        self._error: ProtocolError | None = None  # found after commands that went out first

    def feed(self, data: bytes) -> list[list[bytes]]:
        if (
            self._buffer
            or self._argv is not None
            or len(data) > self.max_bulk_len  # could hold a bulk over the limit
            or self._error is not None
        ):
            return self._feed_exact(data)
        if read_commands is not None:
            out, end = read_commands(data, self.max_bulk_len)
            if end == len(data):
                return out
            return self._feed_rest(out, data[end:] if end else data)
        if data[:1] != b"*":
            return self._feed_exact(data)
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
        if error.code in PROTOCOL_CODES:  # one line, as Redis's addReplyErrorFormat makes it
            detail = error.detail.replace("\r", " ").replace("\n", " ")
            return b"-ERR Protocol error: " + detail.encode("latin-1") + CRLF
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
        except ProtocolError as error:
            self._hold(error, out)
        return out

    def _feed_exact(self, data: bytes) -> list[list[bytes]]:
        pending = self._error
        if pending is not None:
            self._error = None
            self.buffered = 0
            raise pending
        out: list[list[bytes]] = []
        try:
            if self._buffer or self._argv is not None:
                self._complete(data, out)
            elif data:
                self._buffer += data
                self._parse(out, one=False)
        except ProtocolError as error:
            self._reset()
            self._reader = hiredis.Reader()
            self._hold(error, out)
        return out

    def _hold(self, error: ProtocolError, out: list[list[bytes]]) -> None:
        """Keep ``error`` for the next feed when commands came before it, else raise it."""
        if not out:
            raise error
        self._error = error
        self.buffered = 1  # something is held: the connection feeds again for the error

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
