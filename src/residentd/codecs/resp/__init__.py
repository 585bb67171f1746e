"""RESP2, the Redis protocol: requests in, pre-encoded replies out, with Redis's own limits.

The package's parts, one concern each: replies.py builds replies (``bulk``, ``integer``,
``array``, ``OK``, ...), inline.py splits inline requests as Redis does, parser.py is the exact
request parser (Redis's own, ported), codec.py is ``RespCodec``, which puts a fast path in front
of it. Everything public is importable from ``residentd.codecs.resp``.
"""

from residentd.codecs.resp.codec import RespCodec, read_commands
from residentd.codecs.resp.inline import split_args
from residentd.codecs.resp.parser import (
    DEFAULT_MAX_BULK_LEN,
    DEFAULT_MAX_QUERY_BUFFER,
    INLINE_MAX_SIZE,
    INT64_MAX,
    INT64_MIN,
    MAX_MULTIBULK_LEN,
    PROTOCOL_CODES,
    RespParser,
    parse_int,
)
from residentd.codecs.resp.replies import (
    BULK_HEADERS,
    CRLF,
    EMPTY_ARRAY,
    EMPTY_BULK,
    NIL,
    NIL_ARRAY,
    OK,
    ONE,
    PONG,
    QUEUED,
    SMALL,
    ZERO,
    array,
    array_header,
    bulk,
    bulk_array,
    encode_value,
    error,
    integer,
    simple,
)

__all__ = [
    "BULK_HEADERS",
    "CRLF",
    "DEFAULT_MAX_BULK_LEN",
    "DEFAULT_MAX_QUERY_BUFFER",
    "EMPTY_ARRAY",
    "EMPTY_BULK",
    "INLINE_MAX_SIZE",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_MULTIBULK_LEN",
    "NIL",
    "NIL_ARRAY",
    "OK",
    "ONE",
    "PONG",
    "PROTOCOL_CODES",
    "QUEUED",
    "SMALL",
    "ZERO",
    "RespCodec",
    "RespParser",
    "array",
    "array_header",
    "bulk",
    "bulk_array",
    "encode_value",
    "error",
    "integer",
    "parse_int",
    "read_commands",
    "simple",
    "split_args",
]
