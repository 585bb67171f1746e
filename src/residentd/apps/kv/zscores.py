"""Scores and ranges of sorted sets, read and written as Redis 7.0 reads and writes them.

Redis parses a score with C's ``strtod``, which Python's ``float`` does not match: ``float``
takes underscores, surrounding spaces and ``nan``, and quietly turns ``1e999`` into infinity.
So the text is checked against strtod's grammar first (decimal, ``inf``/``infinity`` and hex
floats), then converted:

- ``parse_score`` is ``getDoubleFromObject`` (ZADD, ZINCRBY, WEIGHTS): the whole text, no
  leading space, no NaN, and no overflow or underflow to zero (strtod's ERANGE);
- ``parse_score_range`` is ``zslParseRange`` (BYSCORE, ZCOUNT, ZREMRANGEBYSCORE): an optional
  ``(`` for an open bound, then plain strtod, which skips leading spaces, reads an empty text
  as 0 and lets an overflow become infinity;
- ``parse_lex_range`` is ``zslParseLexRange``: ``[member``, ``(member``, ``-`` or ``+``.

Replies format a score as ``addReplyDouble`` does in Redis 7.0 (``%.17g``, ``inf``), and
ZSCAN as ``d2string`` (integers without a fraction, as a listpack stores them).
"""

from __future__ import annotations

import math
import re

from residentd.apps.kv.zset import LEX_MAX, LEX_MIN, LexBound

_DECIMAL = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INFINITY = re.compile(rb"[+-]?(?:inf|infinity)", re.IGNORECASE)
_HEX = re.compile(rb"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?")
_NONZERO_MANTISSA = re.compile(rb"[1-9]")
_SPACE = b" \t\n\v\f\r"
_D2STRING_LIMIT = 4503599627370496.0  # 2**52: integers below it print without a fraction


def _strtod(text: bytes) -> tuple[float, bool] | None:
    """What strtod reads from all of ``text``: (value, out of range), or None if it stops
    short of the end or reads nothing."""
    if _DECIMAL.fullmatch(text):
        value = float(text)
        if math.isinf(value):
            return value, True
        if value == 0.0:
            mantissa = text.split(b"e")[0].split(b"E")[0]
            return value, _NONZERO_MANTISSA.search(mantissa) is not None
        return value, False
    if _INFINITY.fullmatch(text):
        return (-math.inf if text[:1] == b"-" else math.inf), False
    if _HEX.fullmatch(text):
        try:
            value = float.fromhex(text.decode())
        except OverflowError:
            return (-math.inf if text[:1] == b"-" else math.inf), True
        return value, False
    return None


def parse_score(text: bytes) -> float | None:
    """getDoubleFromObject: a double, or None where Redis answers "not a valid float"."""
    if not text or text[0] in _SPACE:
        return None
    parsed = _strtod(text)
    if parsed is None or parsed[1]:
        return None
    return parsed[0]


def _lenient(text: bytes) -> float | None:
    """strtod as zslParseRange calls it: up to a NUL, leading spaces skipped, empty is 0."""
    text = text.split(b"\0", 1)[0]
    if not text:
        return 0.0
    stripped = text.lstrip(_SPACE)
    parsed = _strtod(stripped) if stripped else None
    return None if parsed is None else parsed[0]


def parse_score_range(low: bytes, high: bytes) -> tuple[float, bool, float, bool] | None:
    """zslParseRange: (min, min is open, max, max is open), or None if either is bad."""
    bounds: list[float | bool] = []
    for text in (low, high):
        is_open = text[:1] == b"("
        value = _lenient(text[1:] if is_open else text)
        if value is None or value != value:
            return None
        bounds += (value, is_open)
    low_value, low_open, high_value, high_open = bounds
    return float(low_value), bool(low_open), float(high_value), bool(high_open)


def _lex_bound(text: bytes) -> LexBound | None:
    first = text[:1]
    if first == b"+" and len(text) == 1:
        return LEX_MAX
    if first == b"-" and len(text) == 1:
        return LEX_MIN
    if first == b"(":
        return text[1:], True
    if first == b"[":
        return text[1:], False
    return None


def parse_lex_range(low: bytes, high: bytes) -> tuple[LexBound, LexBound] | None:
    """zslParseLexRange: the two bounds, or None if either is bad."""
    low_bound = _lex_bound(low)
    high_bound = _lex_bound(high)
    if low_bound is None or high_bound is None:
        return None
    return low_bound, high_bound


def reply_score(score: float) -> bytes:
    """addReplyDouble in RESP2: a bulk string."""
    if score == math.inf:
        return b"$3\r\ninf\r\n"
    if score == -math.inf:
        return b"$4\r\n-inf\r\n"
    text = b"%.17g" % score
    return b"$%d\r\n%b\r\n" % (len(text), text)


def format_score(score: float) -> bytes:
    """d2string: how a listpack holds a score, and ZSCAN shows it."""
    if math.isinf(score):
        return b"inf" if score > 0 else b"-inf"
    if -_D2STRING_LIMIT < score < _D2STRING_LIMIT and score == int(score):
        return b"%d" % int(score)
    return b"%.17g" % score
