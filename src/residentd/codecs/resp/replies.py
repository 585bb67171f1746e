"""RESP replies, pre-encoded: what a server answers, as bytes already in RESP2 form.

``RespCodec.encode`` passes bytes through untouched, so a handler builds its reply with these
(``bulk``, ``integer``, ``array``, ``OK``, ...) and the connection sends it as it is, without an
encoding step per message. The common small headers and integers are built once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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

# Pre-encoded headers and integers for small values: most replies are small. BULK_HEADERS is
# public for handlers that build a bulk reply inline on their hot path (kv's GET).
SMALL = 1024
BULK_HEADERS = [b"$%d\r\n" % n for n in range(SMALL)]
_ARRAY_HEADERS = [b"*%d\r\n" % n for n in range(SMALL)]
_INTEGERS = [b":%d\r\n" % n for n in range(SMALL)]


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
