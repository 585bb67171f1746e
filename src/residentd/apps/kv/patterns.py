"""Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE, CONFIG GET), compiled to regexes.

The language is Redis's ``stringmatchlen``: ``*`` any run of bytes, ``?`` one byte, ``[abc]``
one of a set, ``[^abc]`` none of them, ``[a-z]`` a range (written either way round), and
``\\`` quoting the next byte, inside brackets too. A bracket that is never closed ends at the
end of the pattern. Matching works on bytes, case-sensitively.

Two corners follow Redis rather than regex habits: ``[]`` matches nothing and ``[^]`` any byte,
and an empty string matches only the empty pattern (a lone ``*`` matches everything, the empty
key included, as KEYS and SCAN treat it in Redis). tests/kv/test_conformance.py compares
these rules with redis-server's KEYS. Compiled patterns are cached, since clients repeat them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

Matcher = Callable[[bytes], bool]


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes) -> Matcher:
    """A predicate telling whether a byte string matches ``pattern``."""
    if pattern == b"*":
        return _everything
    regex = re.compile(_translate(pattern), re.DOTALL)
    fullmatch = regex.fullmatch

    def match(text: bytes) -> bool:
        if not text:
            return not pattern
        return fullmatch(text) is not None

    return match


def _everything(text: bytes) -> bool:
    return True


def _translate(pattern: bytes) -> bytes:
    out: list[bytes] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # '*'
            while i + 1 < n and pattern[i + 1] == 0x2A:
                i += 1
            out.append(b".*")
        elif c == 0x3F:  # '?'
            out.append(b".")
        elif c == 0x5B:  # '['
            i, item = _bracket(pattern, i + 1)
            out.append(item)
        elif c == 0x5C and i + 1 < n:  # '\\'
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        else:
            out.append(re.escape(pattern[i : i + 1]))
        i += 1
    return b"".join(out)


def _bracket(pattern: bytes, i: int) -> tuple[int, bytes]:
    """Translate a set starting after its ``[``; returns the index of its last byte."""
    n = len(pattern)
    negate = i < n and pattern[i] == 0x5E  # '^'
    if negate:
        i += 1
    members: set[int] = set()
    while True:
        if i < n and pattern[i] == 0x5C and n - i >= 2:
            i += 1
            members.add(pattern[i])
        elif i < n and pattern[i] == 0x5D:  # ']'
            break
        elif i >= n:
            i = n - 1  # an unclosed set ends with the pattern
            break
        elif n - i >= 3 and pattern[i + 1] == 0x2D:  # 'a-z'
            low, high = sorted((pattern[i], pattern[i + 2]))
            members.update(range(low, high + 1))
            i += 2
        else:
            members.add(pattern[i])
        i += 1
    if not members:
        return i, b"(?!)" if not negate else b"."
    body = b"".join(b"\\x%02x" % member for member in sorted(members))
    return i, b"[" + (b"^" if negate else b"") + body + b"]"


def matches(pattern: bytes, text: bytes) -> bool:
    return compile_glob(pattern)(text)
