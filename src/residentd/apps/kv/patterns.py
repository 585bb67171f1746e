"""Redis's glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE, PUBSUB CHANNELS, CONFIG GET).

The language is Redis 7.0's ``stringmatchlen`` (util.c): ``*`` any run of bytes, ``?`` one
byte, ``[abc]`` one of a set, ``[^abc]`` none of them, ``[a-z]`` a range (written either way
round, its ends compared as C's signed ``char``), and ``\\`` quoting the next byte, inside
brackets too. A bracket that is never closed ends at the end of the pattern; ``[]`` matches
nothing and ``[^]`` any byte. An empty string matches only the empty pattern (KEYS and SCAN
treat a lone ``*`` as "every key" before they match, so the empty key is listed there).
CONFIG GET matches without case (``nocase``), as Redis does.

Redis matches by recursion on every ``*``, which took exponential time on patterns like
``a*a*a*a*b`` until it bounded it (CVE-2022-36021): it stops as soon as the rest of the
pattern matches no suffix, and gives up past 1000 nested stars. Both matchers here are
polynomial: ``stringmatch`` is the reference, the classic two-pointer walk that only ever
moves back to the last star (O(len(pattern) * len(text))); ``compile_glob`` turns the pattern
into a regex whose middle pieces are atomic groups, ``(?>.*?piece)``, so each finds its
earliest place once and is never retried, which makes it the same walk run by ``re``'s C
engine. Each byte position of a pattern becomes the exact set of bytes it accepts, so the
regex and the reference share one parse. tests/kv/test_patterns.py compares both with
redis-server's KEYS on random patterns and keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

Matcher = Callable[[bytes], bool]

# One position of a pattern: the bytes it accepts, or None for a run of stars.
Atom = frozenset[int] | None

# Redis gives up (no match) when matching needs more than this many nested stars.
MAX_NESTING = 1000

_ANY: frozenset[int] = frozenset(range(256))
_STAR, _QUESTION, _OPEN, _CLOSE, _CARET, _DASH, _BACKSLASH = b"*?[]^-\\"


def _lower(c: int) -> int:
    """C's ``tolower`` in the C locale, on a (possibly negative) ``char`` value."""
    return c + 32 if 65 <= c <= 90 else c


def _signed(c: int) -> int:
    """A byte as x86's signed ``char``: Redis compares range ends and bytes that way."""
    return c - 256 if c >= 128 else c


@lru_cache(maxsize=512)
def _literal(byte: int, nocase: bool) -> frozenset[int]:
    """The bytes a plain pattern byte accepts (one set per byte, shared by every pattern)."""
    if not nocase:
        return frozenset((byte,))
    return frozenset(c for c in range(256) if _lower(c) == _lower(byte))


def _range(first: int, last: int, nocase: bool) -> frozenset[int]:
    start, end = sorted((_signed(first), _signed(last)))
    if nocase:
        start, end = _lower(start), _lower(end)
    return frozenset(
        c for c in range(256) if start <= (_lower(_signed(c)) if nocase else _signed(c)) <= end
    )


def _bracket(pattern: bytes, i: int, nocase: bool) -> tuple[int, frozenset[int]]:
    """The set that starts after a ``[``, and the index of its last byte."""
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    if negate:
        i += 1
    members: set[int] = set()
    while True:
        if i < n and pattern[i] == _BACKSLASH and n - i >= 2:
            i += 1
            members.add(pattern[i])  # an escaped byte compares with case, even in nocase
        elif i < n and pattern[i] == _CLOSE:
            break
        elif i >= n:
            i = n - 1  # an unclosed set ends with the pattern
            break
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            members |= _range(pattern[i], pattern[i + 2], nocase)
            i += 2
        else:
            members |= _literal(pattern[i], nocase)
        i += 1
    return i, (_ANY - members if negate else frozenset(members))


@lru_cache(maxsize=256)
def parse(pattern: bytes, nocase: bool = False) -> tuple[Atom, ...]:
    """The pattern as positions: a set of bytes each, or None for a run of stars."""
    atoms: list[Atom] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            if not atoms or atoms[-1] is not None:
                atoms.append(None)
        elif c == _QUESTION:
            atoms.append(_ANY)
        elif c == _OPEN:
            i, members = _bracket(pattern, i + 1, nocase)
            atoms.append(members)
        else:
            if c == _BACKSLASH and i + 1 < n:
                i += 1
            atoms.append(_literal(pattern[i], nocase))
        i += 1
    return tuple(atoms)


def _hopeless(atoms: tuple[Atom, ...]) -> bool:
    """Whether Redis's nesting bound fails every string: its 1001st run of stars is not the
    pattern's last position, so every match would have to go deeper than the bound."""
    stars = 0
    for position, atom in enumerate(atoms):
        if atom is None:
            stars += 1
            if stars > MAX_NESTING:
                return position != len(atoms) - 1
    return False


def stringmatch(pattern: bytes, text: bytes, nocase: bool = False) -> bool:
    """Whether ``text`` matches ``pattern``, as Redis's ``stringmatchlen`` answers (the
    reference implementation: plain Python, polynomial time)."""
    if not text:
        return not pattern
    atoms = parse(pattern, nocase)
    if _hopeless(atoms):
        return False
    p = t = 0
    star = -1  # the position after the last star seen, and where its run began in text
    star_text = 0
    while t < len(text):
        atom = atoms[p] if p < len(atoms) else frozenset()
        if atom is None:
            p += 1
            star, star_text = p, t
        elif text[t] in atom:
            p += 1
            t += 1
        elif star >= 0:
            star_text += 1
            p, t = star, star_text
        else:
            return False
    return all(atom is None for atom in atoms[p:])


def _klass(members: frozenset[int]) -> bytes:
    if members == _ANY:
        return b"."
    if not members:
        return b"(?!)"
    if len(members) == 1:
        return b"\\x%02x" % next(iter(members))
    ranges: list[bytes] = []
    ordered = sorted(members)
    start = previous = ordered[0]
    for c in [*ordered[1:], -1]:
        if c != previous + 1:
            ranges.append(
                b"\\x%02x" % start if start == previous else b"\\x%02x-\\x%02x" % (start, previous)
            )
            start = c
        previous = c
    return b"[" + b"".join(ranges) + b"]"


def _regex(atoms: tuple[Atom, ...]) -> bytes:
    pieces: list[list[bytes]] = [[]]
    for atom in atoms:
        if atom is None:
            pieces.append([])
        else:
            pieces[-1].append(_klass(atom))
    if len(pieces) == 1:
        return b"".join(pieces[0])
    head, *middle, tail = (b"".join(piece) for piece in pieces)
    return head + b"".join(b"(?>.*?" + piece + b")" for piece in middle) + b".*" + tail


@lru_cache(maxsize=256)
def compile_glob(pattern: bytes, nocase: bool = False) -> Matcher:
    """A predicate telling whether a byte string matches ``pattern`` (as ``stringmatch``)."""
    atoms = parse(pattern, nocase)
    if not pattern:
        return _nothing_but_empty
    if _hopeless(atoms):
        return _nothing
    fullmatch = re.compile(_regex(atoms), re.DOTALL).fullmatch

    def match(text: bytes) -> bool:
        return bool(text) and fullmatch(text) is not None

    return match


def _nothing(text: bytes) -> bool:
    return False


def _nothing_but_empty(text: bytes) -> bool:
    return not text
