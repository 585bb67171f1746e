"""SORT and SORT_RO: sort the elements of a list or set, as Redis 7.0's ``sort.c`` does.

Elements sort as numbers (read by C's ``strtod``; ties broken by the bytes) unless ALPHA asks
for the bytes themselves. ``BY pattern`` sorts by the string (or ``pattern->field`` hash
field) found at the key made by putting each element in place of the pattern's first ``*``;
a pattern without ``*`` means "do not sort". ``GET pattern`` answers such looked-up values
(``#`` the element itself) instead of the elements. STORE writes the result as a list. A set
sorted for STORE without sorting is sorted ALPHA anyway, as Redis does so that the stored
list does not depend on a hash table's order.
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.zset import SortedSet
from residentd.codecs.resp import bulk_array, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client
    from residentd.apps.kv.store import Keyspace

_NOT_DOUBLES = b"-ERR One or more scores can't be converted into double\r\n"
_STRTOD = re.compile(
    rb"[ \t\n\v\f\r]*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?))\Z",
    re.IGNORECASE,
)


def strtod(text: bytes) -> float | None:
    """``text`` as a double the way ``sortCommandGeneric`` reads one with ``strtod``: the
    whole text must be read, and out-of-range and NaN values are refused (``None``)."""
    text = text.split(b"\0", 1)[0]  # C reads the string up to its first NUL
    match = _STRTOD.match(text)
    if match is None:
        return None if text else 0.0  # strtod reads nothing of "", which ends at once: 0
    number = match.group(1)
    value = float(number)
    if math.isinf(value) and b"n" not in number.lower():
        return None  # overflow: ERANGE
    if value == 0 and any(digit in b"123456789" for digit in number.split(b"e")[0].split(b"E")[0]):
        return None  # underflow: ERANGE
    return value


def lookup(db: Keyspace, pattern: bytes, element: bytes) -> bytes | None:
    """Redis's ``lookupKeyByPattern``: the value ``pattern`` points at for ``element``."""
    if pattern == b"#":
        return element
    star = pattern.find(b"*")
    if star < 0:
        return None
    arrow = pattern.find(b"->", star + 1)
    field = None
    if arrow >= 0 and arrow + 2 < len(pattern):
        field = pattern[arrow + 2 :]
        pattern = pattern[:arrow]
    value = db.get(pattern[:star] + element + pattern[star + 1 :])
    if field is None:
        return value if value.__class__ is bytes else None
    return value.get(field) if value.__class__ is dict else None


def _sort(s: Client, argv: list[bytes], readonly: bool) -> bytes:
    desc = alpha = dont_sort = False
    limit_start, limit_count = 0, -1
    by: bytes | None = None
    store: bytes | None = None
    gets: list[bytes] = []
    i = 2
    while i < len(argv):
        option = argv[i].upper()
        left = len(argv) - i - 1
        if option == b"ASC":
            desc = False
        elif option == b"DESC":
            desc = True
        elif option == b"ALPHA":
            alpha = True
        elif option == b"LIMIT" and left >= 2:
            limit_start, limit_count = int_arg(argv[i + 1]), int_arg(argv[i + 2])
            i += 2
        elif option == b"STORE" and left >= 1 and not readonly:
            store = argv[i + 1]
            i += 1
        elif option == b"BY" and left >= 1:
            by = argv[i + 1]
            dont_sort = b"*" not in by
            i += 1
        elif option == b"GET" and left >= 1:
            gets.append(argv[i + 1])
            i += 1
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    db = s.db
    value = db.get(argv[1])
    if value is None:
        value = deque()
    elif value.__class__ not in (deque, set, SortedSet):
        raise KvError(errors.WRONGTYPE)
    if dont_sort and value.__class__ is set and store is not None:
        dont_sort, alpha, by = False, True, None
    if value.__class__ is SortedSet:
        value.big = True  # Redis converts a sorted set it sorts to a skiplist, for good
    # A sorted set's members in score order: what BY nosort gives.
    elements = [m for _, m in value] if value.__class__ is SortedSet else list(value)
    size = len(elements)
    start = max(limit_start, 0)
    end = size - 1 if limit_count < 0 else start + limit_count - 1
    if start >= size:
        start, end = size - 1, size - 2
    end = min(end, size - 1)
    if dont_sort:
        if value.__class__ is not set and desc:
            elements.reverse()
    else:
        failed = False
        if alpha:
            # strcoll (C locale) reads up to a NUL; STORE compares the whole bytes.
            def text(e: bytes) -> bytes:
                return e if store is not None else e.split(b"\0", 1)[0]

            if by is None:
                elements.sort(key=text, reverse=desc)
            else:
                # Elements whose BY value is missing sort first (before the rest).
                keys = {e: lookup(db, by, e) for e in elements}
                elements.sort(
                    key=lambda e: (keys[e] is not None, text(keys[e] or b"")), reverse=desc
                )
        else:
            scores: dict[bytes, float] = {}
            for element in elements:
                source = element if by is None else lookup(db, by, element)
                score = 0.0 if source is None else strtod(source)
                if score is None:
                    failed = True
                    score = 0.0
                scores[element] = score
            elements.sort(key=lambda e: (scores[e], e), reverse=desc)
        if failed:
            raise KvError(_NOT_DOUBLES)
    chosen = elements[start : end + 1] if end >= start else []
    results = [lookup(db, pattern, e) for e in chosen for pattern in gets] if gets else chosen
    if store is None:
        return bulk_array(results)
    if results:
        s.state.blocking.overwrote(db, store)
        db.set(store, deque(b"" if r is None else r for r in results))
    else:
        db.delete(store)
    return integer(len(results))


@command(
    "sort",
    -2,
    "write denyoom",
    "keyspace",
    "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
    keys=(1, 1, 1),
)
def sort(s: Client, argv: list[bytes]) -> bytes:
    return _sort(s, argv, readonly=False)


@command(
    "sort_ro",
    -2,
    "readonly",
    "keyspace",
    "Returns the sorted elements of a list, a set, or a sorted set.",
    since="7.0.0",
)
def sort_ro(s: Client, argv: list[bytes]) -> bytes:
    return _sort(s, argv, readonly=True)
