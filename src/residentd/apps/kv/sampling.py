"""Random picks from a hash or a set, with Redis's count rules (SRANDMEMBER, SPOP, HRANDFIELD).

A positive count asks for that many distinct elements (all of them if the collection is no
larger); a negative one for that many picks with repeats allowed. Python's dicts and sets
have no random access, so a single pick walks the collection to a random position (C speed,
no copy, but about 50 ns an element), and a pick of several copies it once.

SPOP removes what it picks, so a client may drain a set with it: a walk per pop would make
that quadratic. ``pop`` therefore picks at random only where that is cheap (a set of at most
``RANDOM_POP_LIMIT`` members, or a count that takes a fifth of the set or more, where the copy
costs about what the reply does); from a larger set it takes what ``set.pop`` gives, constant
time each, in the order of the set's hash table: arbitrary (string hashes are keyed afresh by
each process) but not uniformly random.
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

RANDOM_POP_LIMIT = 1024


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


def pop(members: set[T], count: int) -> list[T]:
    """Remove ``count`` members (fewer than there are) from ``members`` and return them."""
    if len(members) <= RANDOM_POP_LIMIT or count * 5 > len(members):
        popped = [one(members)] if count == 1 else random.sample(tuple(members), count)
        members.difference_update(popped)
        return popped
    return [members.pop() for _ in range(count)]
