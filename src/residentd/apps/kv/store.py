"""The keyspace: keys to typed values, with expiry, as one Redis database holds them.

``data`` is a dict, or with the C speedups built a ``KeyTable`` (_keytable.h): a mapping that
behaves as a dict of bytes keys but keeps a short string value inside its entry, so a
small key costs about as much as in Redis. A string read back from it is equal to the one
stored, not the same object.

Values are plain Python objects, and the type of a key is the class of its value: ``bytes``
(string), ``dict`` (hash, field to value), ``deque`` (list), ``set`` (set), ``SortedSet``
(sorted set, zset.py) and ``Stream`` (stream.py). A hash, list, set or sorted set that
becomes empty is deleted with its key, as Redis does (a stream stays). Command handlers
read and write ``data`` directly on their hot paths and use the methods here for the rest.

Expiry times live in a second dict, ``expires`` (key to absolute Unix time in milliseconds),
and are enforced the two ways Redis enforces them (each deletion is reported to
``on_expired`` when it is set: the journal logs it as a DEL, as Redis propagates expiries):

* lazily: a key past its time is deleted when a command looks it up (``get``, ``get_write``
  and the checks in the fast handlers), so no command ever sees it;
* actively: ``expire_cycle``, run ten times a second by the app, samples keys that have a
  time (20 at a time) and deletes the expired ones, repeating while more than 10% of a sample
  was expired and its time budget (25 ms, Redis's 25% of a 100 ms tick) lasts. Keys nobody
  reads are reclaimed this way.

Redis 6 and later sample by walking the expires table with a cursor rather than at random,
so every key with a time is visited in turn. This does the same with the dict's own order: a
sampled key that has not expired yet moves to the end, so the next cycle starts where this
one stopped.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, MutableMapping
from itertools import islice
from typing import Any

from residentd.apps.kv.stream import Stream
from residentd.apps.kv.zset import SortedSet
from residentd.speedups import choose

Table = MutableMapping[bytes, Any]

# A new, empty keyspace table: kv's own (C) or a dict.
new_table: Callable[[], Table] = choose("residentd.apps.kv._fastpath", "KeyTable", dict)


def random_key(table: Table) -> bytes:
    """A key of ``table`` (not empty) picked at random: in constant time from a KeyTable; a
    dict has no random access, so from one the pick walks to a random position (at C speed,
    without copying the key list)."""
    if isinstance(table, dict):
        return next(islice(table, random.randrange(len(table)), None))
    return table.random_key()  # type: ignore[attr-defined]


def compacted(table: Table) -> Table:
    """``table`` copied without the holes its deleted keys left (either kind)."""
    return dict(table) if isinstance(table, dict) else table.copy()  # type: ignore[attr-defined]


EXPIRE_SAMPLE = 20  # ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP
ACCEPTABLE_STALE = 0.10  # ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE
CYCLE_BUDGET = 0.025  # seconds per cycle: 25% of a 100 ms tick

TYPE_NAMES: dict[type, bytes] = {
    bytes: b"string",
    dict: b"hash",
    deque: b"list",
    set: b"set",
    SortedSet: b"zset",
    Stream: b"stream",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Keyspace:
    __slots__ = (
        "access",
        "data",
        "expired_keys",
        "expires",
        "hits",
        "index",
        "misses",
        "on_expired",
        "on_miss",
        "stamp",
    )

    def __init__(self, index: int = 0) -> None:
        self.index = index  # the database number (SELECT's)
        self.data: Table = new_table()
        self.expires: dict[bytes, int] = {}
        self.hits = 0  # keyspace_hits: read lookups that found a key
        self.misses = 0  # keyspace_misses
        self.expired_keys = 0  # deleted because their time passed, lazily or actively
        # Called with each key deleted because its time passed (the journal logs a DEL).
        self.on_expired: Callable[[bytes], None] | None = None
        # Called with each key a read looked up and did not find (the ``keymiss`` event).
        self.on_miss: Callable[[bytes], None] | None = None
        # While an LRU or LFU eviction policy is in force (eviction.py): key to its access
        # stamp, in access order, and the function that makes a key's next stamp.
        self.access: OrderedDict[bytes, int] | None = None
        self.stamp: Callable[[int | None], int] | None = None

    def __len__(self) -> int:
        return len(self.data)

    # -- lookups -------------------------------------------------------------------------------

    def get(self, key: bytes) -> Any:
        """The value of ``key`` for a read, or ``None``; counts a hit or a miss."""
        value = self.data.get(key)
        if value is not None and self.expires and self.expire_if_due(key):
            value = None
        if value is None:
            self.misses += 1
            if self.on_miss is not None:
                self.on_miss(key)
        else:
            self.hits += 1
        return value

    def touch(self, key: bytes) -> None:
        """Record an access to ``key`` while an eviction policy tracks them: its stamp
        renewed, and the key moved to the end of ``access``."""
        access = self.access
        if access is not None and self.stamp is not None:
            access[key] = self.stamp(access.get(key))
            access.move_to_end(key)

    def get_write(self, key: bytes) -> Any:
        """The value of ``key`` for a command about to change it, or ``None``."""
        value = self.data.get(key)
        if value is not None and self.expires and self.expire_if_due(key):
            return None
        return value

    def exists(self, key: bytes) -> bool:
        return key in self.data and not (self.expires and self.expire_if_due(key))

    def expire_if_due(self, key: bytes) -> bool:
        """Delete ``key`` if its time has passed; returns whether it did."""
        when = self.expires.get(key)
        if when is None or when > now_ms():
            return False
        del self.expires[key]
        del self.data[key]
        self.expired_keys += 1
        if self.on_expired is not None:
            self.on_expired(key)
        return True

    # -- changes -------------------------------------------------------------------------------

    def set(self, key: bytes, value: Any, keep_ttl: bool = False) -> None:
        """Store ``value`` under ``key``, dropping its time to live unless ``keep_ttl``."""
        self.data[key] = value
        if not keep_ttl and self.expires:
            self.expires.pop(key, None)

    def delete(self, key: bytes) -> bool:
        if self.data.pop(key, None) is None:
            return False
        if self.expires:
            self.expires.pop(key, None)
        return True

    def delete_if_empty(self, key: bytes, value: Any) -> None:
        """Drop a hash, list or set key once its last element is gone."""
        if not value:
            del self.data[key]
            if self.expires:
                self.expires.pop(key, None)

    def rename(self, source: bytes, target: bytes) -> None:
        """Move ``source`` (which exists) to ``target``, with its time to live."""
        value = self.data.pop(source)
        when = self.expires.pop(source, None)
        self.data[target] = value
        if when is None:
            self.expires.pop(target, None)
        else:
            self.expires[target] = when

    def flush(self) -> None:
        self.data = new_table()
        self.expires = {}
        if self.access is not None:
            self.access = OrderedDict()

    def swap(self, other: Keyspace) -> None:
        """SWAPDB: exchange contents with ``other``; each keeps its number and counters, so
        the clients that selected either see the other's keys."""
        self.data, other.data = other.data, self.data
        self.expires, other.expires = other.expires, self.expires
        self.access, other.access = other.access, self.access

    # -- times to live -------------------------------------------------------------------------

    def expire_at(self, key: bytes, when: int) -> None:
        """Give ``key`` (which exists) an absolute expiry time in ms, even one already past,
        as SET's time options do in Redis 7.0: the key stays until a lookup or the active
        cycle finds it due, and then expires as any other (``on_expired``)."""
        self.expires[key] = when

    def set_expire(self, key: bytes, when: int) -> None:
        """Give ``key`` (which exists) an absolute expiry time in ms; one in the past deletes
        it at once, as Redis's ``expireGenericCommand`` and GETEX do."""
        if when <= now_ms():
            del self.data[key]
            self.expires.pop(key, None)
        else:
            self.expires[key] = when

    def expire_time(self, key: bytes) -> int | None:
        return self.expires.get(key) if self.expires else None

    def persist(self, key: bytes) -> bool:
        return self.expires.pop(key, None) is not None

    def expire_cycle(self, budget: float = CYCLE_BUDGET) -> int:
        """Delete expired keys by sampling, within ``budget`` seconds; returns how many."""
        expires = self.expires
        data = self.data
        deadline = time.perf_counter() + budget
        removed = 0
        while expires:
            now = now_ms()
            sample = list(islice(expires.items(), EXPIRE_SAMPLE))
            stale = 0
            for key, when in sample:
                del expires[key]
                if when <= now:
                    del data[key]
                    stale += 1
                    if self.on_expired is not None:
                        self.on_expired(key)
                else:
                    expires[key] = when  # to the end: the next sample starts after it
            removed += stale
            if stale <= len(sample) * ACCEPTABLE_STALE or time.perf_counter() > deadline:
                break
        self.expired_keys += removed
        return removed

    # -- iteration -----------------------------------------------------------------------------

    def keys(self) -> Iterator[bytes]:
        """Live keys, skipping (not deleting) those past their time."""
        if not self.expires:
            return iter(list(self.data))
        now = now_ms()
        expires = self.expires
        return (key for key in list(self.data) if expires.get(key, now + 1) > now)
