"""The sorted set value: members with a score, ordered by (score, member), as Redis's ``zset``.

Redis keeps a dict of member to score beside a skip list with spans, so that a lookup by
member is O(1) and an insert, a delete, a rank or a walk from a rank is O(log n). This is the
same pair: ``scores`` is a dict, and ``order`` holds the ``(score, member)`` tuples in order.
``order`` is ``Order``: _zorder.c's ``ZOrder`` when the C speedups are built, an
order-statistic B+ tree (the same O(log n) operations as Redis's skip list with spans, in a
few node reads) which the C fast path (_fastpath.c) also changes directly, else
sortedcontainers' ``SortedList``, a list of sorted sublists with a positional index over their
lengths that gives the same O(log n) bisect, insert, delete and index-by-rank in pure Python
(bench/kv_zset.py measures both). ZOrder keeps the part of SortedList's API used here. Tuples
compare by score and then by member bytes, which is Redis's order: scores as doubles, ties
broken by ``memcmp`` of the members. No score is NaN: Redis refuses one before it gets here.

Redis stores a small sorted set as a listpack and converts it to a skip list once it holds
more than ``zset-max-listpack-entries`` (128) members or a member longer than
``zset-max-listpack-value`` (64 bytes), never back. ``big`` records that, for what shows the
encoding: OBJECT ENCODING's name and ZSCAN, which answers a listpack in one step. A listpack
holds a score as text (``d2string``), which has no negative zero: a -0 stored there reads
back as 0, so ``add`` turns it into 0 while the set is small, as Redis's round trip does.
"""

from __future__ import annotations

import math
import random
from collections import OrderedDict
from collections.abc import Collection, Iterator
from typing import Any

from sortedcontainers import SortedList

from residentd.speedups import choose

MAX_LISTPACK_ENTRIES = 128  # zset-max-listpack-entries
MAX_LISTPACK_VALUE = 64  # zset-max-listpack-value
MAX_MARKS = 8  # ZSCAN cursors remembered per set
_RANK_BITS = 32
_RANK_MASK = (1 << _RANK_BITS) - 1

Entry = tuple[float, bytes]

# The entries in order: the C order-statistic tree (ZOrder) when built, else the pure Python sorted
# list; both take the same calls (``order: Any`` below is either).
Order = choose("residentd.apps.kv._zorder", "ZOrder", SortedList)


class SortedSet:
    __slots__ = ("big", "marks", "order", "scores")

    def __init__(self, entries: Collection[Entry] = ()) -> None:
        """An empty set, or one built whole from ``entries`` (distinct members), its encoding
        chosen from their count and lengths as Redis does for a set it builds at once."""
        self.scores: dict[bytes, float] = {}
        self.order = Order()
        self.marks: OrderedDict[int, Entry] | None = None  # ZSCAN cursors: see scan()
        self.big = len(entries) > MAX_LISTPACK_ENTRIES or any(
            len(member) > MAX_LISTPACK_VALUE for _, member in entries
        )
        for score, member in entries:
            self.add(member, score)

    @classmethod
    def filled_in_order(cls, entries: list[Entry], size_hint: int) -> SortedSet:
        """A set filled one entry at a time in the order given, as Redis fills ZRANGESTORE's
        destination: a listpack unless ``size_hint`` is over 128, made big by the entry that
        needs it. So an entry's -0 reads back as 0 if the set was still small when it came."""
        filled = cls()
        filled.big = size_hint > MAX_LISTPACK_ENTRIES
        for score, member in entries:
            filled.add(member, score)
        return filled

    def __len__(self) -> int:
        return len(self.scores)

    def __contains__(self, member: bytes) -> bool:
        return member in self.scores

    def __iter__(self) -> Iterator[Entry]:
        """(score, member) in order."""
        return iter(self.order)

    def __repr__(self) -> str:
        return f"SortedSet({list(self.order)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortedSet) and self.scores == other.scores

    __hash__ = None  # type: ignore[assignment]

    @property
    def encoding(self) -> bytes:
        """What Redis's OBJECT ENCODING would name this set."""
        return b"skiplist" if self.big else b"listpack"

    # -- changes -------------------------------------------------------------------------------

    def add(self, member: bytes, score: float) -> None:
        """Insert ``member`` or move it to ``score``."""
        scores = self.scores
        old = scores.get(member)
        if old is not None:
            if old == score:
                return
            self.order.remove((old, member))
        elif not self.big and (
            len(scores) >= MAX_LISTPACK_ENTRIES or len(member) > MAX_LISTPACK_VALUE
        ):
            self.big = True
        if score == 0 and not self.big:
            score = 0.0
        scores[member] = score
        self.order.add((score, member))

    def remove(self, member: bytes) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        self.order.remove((score, member))
        return True

    def delete_positions(self, start: int, stop: int) -> int:
        """Remove the members ranked ``start`` to ``stop - 1``; returns how many."""
        stop = min(stop, len(self.order))
        if start >= stop:
            return 0
        scores = self.scores
        order = self.order
        for _, member in order.islice(start, stop):
            del scores[member]
        del order[start:stop]
        return stop - start

    def pop(self, count: int, highest: bool) -> list[Entry]:
        """Remove and return up to ``count`` entries from the low (or high) end, in the order
        they are taken."""
        order = self.order
        count = min(count, len(order))
        if highest:
            taken = list(order.islice(len(order) - count, len(order), reverse=True))
            del order[len(order) - count :]
        else:
            taken = list(order.islice(0, count))
            del order[:count]
        for _, member in taken:
            del self.scores[member]
        return taken

    # -- queries -------------------------------------------------------------------------------

    def rank(self, member: bytes) -> int | None:
        score = self.scores.get(member)
        return None if score is None else self.order.index((score, member))

    def entries(self, start: int, stop: int) -> list[Entry]:
        """The entries ranked ``start`` to ``stop - 1``."""
        return list(self.order.islice(start, stop))

    def scan(self, cursor: int, count: int) -> tuple[int, list[Entry]]:
        """One ZSCAN step over the set in score order: the next cursor (0 at the end) and up
        to ``count`` entries.

        Redis's cursor is a place in its hash table, so a member present from the first call
        to the last is returned however others come and go. A rank alone would not do that (a
        removal before it shifts every rank), so a cursor here names the entry to go on from:
        its high bits are a mark kept in ``marks`` (the last ``MAX_MARKS`` of them) and
        looked up again by bisecting, its low 32 bits the rank to fall back on once the mark
        is gone."""
        marks = self.marks
        start = cursor & _RANK_MASK
        mark = marks.pop(cursor, None) if marks else None
        order = self.order
        if mark is not None:
            start = order.bisect_left(mark)
        stop = start + count
        entries = list(order.islice(start, stop))
        if stop >= len(order):
            return 0, entries
        if marks is None:
            marks = self.marks = OrderedDict()
        while True:
            ident = random.randrange(1, 1 << 31)
            next_cursor = (ident << _RANK_BITS) | min(stop, _RANK_MASK)
            if next_cursor not in marks:
                break
        marks[next_cursor] = order[stop]
        if len(marks) > MAX_MARKS:
            marks.popitem(last=False)
        return next_cursor, entries

    def score_positions(self, low: float, low_open: bool, high: float, high_open: bool) -> range:
        """The ranks of the members whose score is within the bounds."""
        order = self.order
        start = order.bisect_left((_after(low),) if low_open else (low,))
        stop = order.bisect_left((high,) if high_open else (_after(high),))
        if high == math.inf and not high_open:
            stop = len(order)
        if low == math.inf and low_open:
            start = len(order)
        return range(start, max(start, stop))

    def lex_positions(self, low: LexBound, high: LexBound) -> range:
        """The ranks of the members within lexical bounds, for a set whose members all have
        one score (Redis leaves the answer for mixed scores unspecified; this bisects as if
        every score were the first member's)."""
        order = self.order
        if not order:
            return range(0)
        score = order[0][0]
        start = _lex_position(order, score, low, is_low=True)
        stop = _lex_position(order, score, high, is_low=False)
        return range(start, max(start, stop))


# A lexical bound: (member, exclusive), or MIN ("-") or MAX ("+").
LexBound = tuple[bytes, bool] | str
LEX_MIN = "-"
LEX_MAX = "+"


def _lex_position(order: Any, score: float, bound: LexBound, is_low: bool) -> int:
    if bound == LEX_MIN:
        return 0
    if bound == LEX_MAX:
        return len(order)
    assert isinstance(bound, tuple)
    member, exclusive = bound
    # A low bound starts at the first member >= it (> if exclusive); a high bound stops
    # before the first member > it (>= if exclusive).
    if is_low != exclusive:
        return int(order.bisect_left((score, member)))
    return int(order.bisect_right((score, member)))


def _after(score: float) -> float:
    """The next double above ``score``: bisecting for it finds the first entry past every
    member with that score."""
    return math.nextafter(score, math.inf)
