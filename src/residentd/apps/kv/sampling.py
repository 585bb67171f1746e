"""Random picks from a hash or a set, with Redis's count rules (SRANDMEMBER, SPOP, HRANDFIELD).

A positive count asks for that many distinct elements (all of them if the collection is no
larger); a negative one for that many picks with repeats allowed. Python's dicts and sets
have no random access, so a single pick walks the collection to a random position (C speed,
no copy), and a pick of several copies it once.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from itertools import islice
from typing import TypeVar

from residentd.apps.kv import errors
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import INT64_MAX, parse_int

T = TypeVar("T")


def parse_count(text: bytes) -> int:
    """A count of SRANDMEMBER or HRANDFIELD: a 64-bit integer other than the smallest."""
    count = parse_int(text)
    if count is None:
        raise KvError(errors.NOT_AN_INTEGER)
    if count < -INT64_MAX:
        raise KvError(errors.COUNT_OUT_OF_RANGE)
    return count


def one(items: Collection[T]) -> T:
    """A random element of ``items`` (which is not empty)."""
    return next(islice(iter(items), random.randrange(len(items)), None))


def pick(items: Collection[T], count: int) -> list[T]:
    """``count`` random elements of ``items`` by Redis's rules (``count`` is not 0)."""
    if count < 0:
        return random.choices(tuple(items), k=-count)
    if count >= len(items):
        return list(items)
    if count == 1:
        return [one(items)]
    return random.sample(tuple(items), count)
