"""maxmemory and the eviction policies of Redis 7.0's ``evict.c``.

While ``maxmemory`` is set, a command flagged ``denyoom`` (a write that may grow the dataset)
first has keys evicted by the policy until the used memory (memory.py) is back under the
limit; when nothing can be evicted (``noeviction``, or a ``volatile-*`` policy and no key with
a time to live) it is refused with Redis's -OOM error. Each evicted key is journaled as a DEL,
touches its watchers and sends an ``evicted`` event (state.py's ``evicted``).

Measuring is cheap (memory.py) but not free, so it is not done per command: each denyoom
command adds an estimate of what it may add (its arguments, plus ``ARG_OVERHEAD`` per
argument for the objects and table slots around them), and the real measure replaces the
estimate once ``MEASURE_STEP`` bytes were estimated, or when the estimate says the limit is
passed, at most once per ``interval`` (1 ms, or twenty times what the last measure took).
Between measures, an eviction subtracts its own estimate of the bytes it freed. So a flood
overshoots the limit by at most what it writes in ``MEASURE_STEP`` of estimate or one
interval, whichever comes first. The eviction's time limit (``maxmemory-eviction-tenacity``)
holds only once less than ``MEASURE_STEP`` is left to free; the cron frees the rest
(state.py's ``eviction_cycle``).

Choosing the victim, as Redis does:

* ``allkeys-random`` / ``volatile-random``: a key at a random place among the first
  ``RANDOM_WINDOW`` of the database's keys (or of those with a time to live). A Python dict
  has no random access, and a walk to a random place of the whole table costs 50 ns a key.
* ``*-lru``, ``*-lfu``, ``volatile-ttl``: ``maxmemory-samples`` keys of each database go
  into an eviction pool of the ``POOL_SIZE`` best candidates seen (the longest idle, the
  least frequently used, the nearest expiry), and the best still valid is evicted.

For LRU and LFU, each database keeps ``access`` (store.py): key to its access stamp, Redis's
24 bits of ``robj.lru``: the LRU clock in seconds, or for LFU the minutes of the last decay
(16 bits) and the logarithmic counter (8 bits), incremented and decayed with Redis's
``lfu-log-factor`` and ``lfu-decay-time``. The session stamps the keys every command named
after it ran (those of EXEC's commands and a script's calls too), but for the commands Redis
looks their keys up in without touching them (EXISTS, TYPE, TTL, OBJECT, ...); the
table is an ``OrderedDict`` kept in access order (an access moves the key to the end, in
O(1)), so the keys sampled from its front are the least recently used ones, which makes the
LRU approximation at least as good as Redis's. It exists only while an LRU or LFU policy is
set and ``maxmemory`` is not 0, so the default pays nothing for it.
"""

from __future__ import annotations

import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING, Any

from residentd.apps.kv.memory import UsedMemory
from residentd.apps.kv.settings import parse_memory
from residentd.apps.kv.store import Table, compacted

if TYPE_CHECKING:
    from residentd.apps.kv.store import Keyspace

POOL_SIZE = 16  # EVPOOL_SIZE
RANDOM_WINDOW = 64
CHURN_SLACK = 1024
MEASURE_STEP = 256 * 1024  # bytes of estimate after which the memory is measured again
MIN_INTERVAL = 0.001  # seconds between two measures, at least
ARG_OVERHEAD = 64  # bytes estimated per argument beyond its own length
# Bytes estimated per command of a pipeline the fast path runs, beyond the bytes it read (a
# key and a value's objects and table slot: three arguments' overhead).
PIPELINE_OVERHEAD = 3 * ARG_OVERHEAD
KEY_OVERHEAD = 120  # bytes a key costs beyond its name's and value's objects (table slots)
LFU_INIT_VAL = 5
# The commands Redis looks their keys up in without touching them (LOOKUP_NOTOUCH).
NO_TOUCH = frozenset(("exists", "type", "ttl", "pttl", "expiretime", "pexpiretime"))
OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"


def lru_clock() -> int:
    """Redis's LRU clock: seconds, in 24 bits."""
    return int(time.monotonic()) & 0xFFFFFF


def lfu_minutes() -> int:
    return (int(time.monotonic()) // 60) & 0xFFFF


class Eviction:
    """The limit in force, its policy's settings, and the eviction pool."""

    def __init__(
        self,
        memory: UsedMemory,
        dbs: list[Keyspace],
        evict: Callable[[Keyspace, bytes], None],
        options: dict[str, Any],
    ) -> None:
        self.memory = memory
        self.dbs = dbs
        self._evict_hook = evict  # journals, touches watchers, notifies (state.py)
        self.maxmemory = parse_memory(options["maxmemory"]) or 0
        self.policy: str = options["maxmemory_policy"]
        self.samples = int(options["maxmemory_samples"])
        self.tenacity = int(options["maxmemory_eviction_tenacity"])
        self.log_factor = int(options["lfu_log_factor"])
        self.decay_time = int(options["lfu_decay_time"])
        self.lru = self.policy.endswith("lru")
        self.lfu = self.policy.endswith("lfu")
        self.volatile = self.policy.startswith("volatile")
        self.estimate = 0  # bytes estimated since the last measure
        self._measured_at = 0.0
        self.pool: list[tuple[int, int, int, bytes]] = []  # (score, stamp, db, key), best last
        self._churn: dict[int, int] = {}  # database -> deletions near its tables' fronts

    @property
    def tracks(self) -> bool:
        """Whether the keys' accesses are recorded (an LRU or LFU policy)."""
        return self.lru or self.lfu

    # -- access stamps ---------------------------------------------------------------------------

    def stamp(self, previous: int | None) -> int:
        """The access stamp of a key accessed now that had ``previous``."""
        if self.lru:
            return lru_clock()
        if previous is None:  # a new key: Redis's createObject
            return lfu_minutes() << 8 | LFU_INIT_VAL
        counter = self.frequency(previous)
        if counter < 255:
            base = max(counter - LFU_INIT_VAL, 0)
            if random.random() < 1.0 / (base * self.log_factor + 1):
                counter += 1
        return lfu_minutes() << 8 | counter

    def frequency(self, stamp: int) -> int:
        """The LFU counter of ``stamp``, decayed by the minutes since (``LFUDecrAndReturn``)."""
        counter = stamp & 0xFF
        elapsed = (lfu_minutes() - (stamp >> 8)) & 0xFFFF
        periods = elapsed // self.decay_time if self.decay_time else 0
        return max(counter - periods, 0)

    def idle_seconds(self, stamp: int) -> int:
        return (lru_clock() - stamp) & 0xFFFFFF

    def start_tracking(self, db: Keyspace) -> None:
        """Give ``db`` its access stamps (every key accessed now), or drop them."""
        if not self.tracks:
            db.access = None
            db.stamp = None
            return
        if db.access is None:
            db.access = OrderedDict.fromkeys(db.data, self.stamp(None))
        db.stamp = self.stamp

    def touch_keys(
        self, db: Keyspace, name: str, spec: tuple[int, int, int], argv: list[bytes]
    ) -> None:
        """Stamp the keys the command ``name`` named (``spec``: its first key, last key and
        step), as Redis's lookups do."""
        first, last, step = spec
        if not first or name in NO_TOUCH:
            return
        data = db.data
        if last == first:  # one key: most commands
            if argv[first] in data:
                db.touch(argv[first])
            return
        last = len(argv) + last if last < 0 else min(last, len(argv) - 1)
        for key in argv[first : last + 1 : step]:
            if key in data:
                db.touch(key)

    # -- the limit --------------------------------------------------------------------------------

    def charge(self, argv: list[bytes]) -> None:
        """Count what a denyoom command may add, until the next measure."""
        self.estimate += sum(map(len, argv)) + ARG_OVERHEAD * len(argv)

    def room_for(self, incoming: int, commands: int) -> bool:
        """Whether a pipeline that read ``incoming`` bytes (``commands`` commands) may run on
        the C fast path, which cannot evict nor stamp: not under an LRU or LFU policy, and
        only while the used memory, with what the pipeline may add charged to the estimate,
        stays ``MEASURE_STEP`` under the limit. Closer to it every command runs here, as
        Redis's would, evicting or refused first."""
        if self.tracks:
            return False
        charge = incoming + PIPELINE_OVERHEAD * commands
        if self.used() + charge + MEASURE_STEP > self.maxmemory:
            return False  # the commands charge themselves on the Python path
        self.estimate += charge
        return True

    def used(self, fresh: bool = False) -> int:
        """The used memory: measured, or estimated since the last measure (see above);
        ``fresh``: measured now whatever the interval."""
        memory = self.memory
        estimated = memory.last + self.estimate
        if fresh or self.estimate >= MEASURE_STEP or estimated > self.maxmemory:
            now = time.perf_counter()
            if fresh or now - self._measured_at >= max(MIN_INTERVAL, 20 * memory.cost):
                self._measured_at = now
                self.estimate = 0
                return memory.measure()
        return estimated

    def freed(self) -> None:
        """A command may have freed memory (DEL, FLUSHALL, ...): the estimate no longer holds,
        and the next check over it measures."""
        self._measured_at = 0.0

    def perform(self) -> bool:
        """Evict until under the limit (Redis's ``performEvictions``); False when over it
        and nothing can be evicted: the command is refused with -OOM. An eviction that runs
        out of its time (``maxmemory-eviction-tenacity``) stops, letting the command run, once
        less than ``MEASURE_STEP`` is left to free (Python evicts some 50 times slower than
        Redis: stopping sooner would let a flood of large values outrun it); the app's cron
        goes on with the rest, as Redis's ``evictionTimeProc`` does."""
        used = self.used()
        if used > self.maxmemory and self.estimate:  # never refuse, nor evict, on a guess alone
            used = self.used(fresh=self.policy == "noeviction" or self._victim_missing())
        if used <= self.maxmemory:
            return True
        if self.policy == "noeviction":
            return False
        to_free = used - self.maxmemory
        freed = 0
        limit = self._time_limit()
        started = time.perf_counter()
        while freed < to_free:
            victim = self._victim()
            if victim is None:
                break
            freed += self._evict(*victim)
            if to_free - freed <= MEASURE_STEP and time.perf_counter() - started > limit:
                self.estimate -= freed
                return True
        self.estimate -= freed
        if freed >= to_free:
            return True
        return self.used(fresh=True) <= self.maxmemory  # out of victims: sure it is over?

    def _victim_missing(self) -> bool:
        """Whether the policy has no key to evict at all (a refusal would follow)."""
        tables = (db.expires if self.volatile else db.data for db in self.dbs)
        return not any(tables)

    def _time_limit(self) -> float:
        """Seconds an eviction may take (``evictionTimeLimitUs``): 50 us a step of tenacity
        up to 10, then 15% more a step; unbounded at 100."""
        tenacity = self.tenacity
        if tenacity <= 10:
            return 50e-6 * tenacity
        if tenacity < 100:
            return 500e-6 * 1.15 ** (tenacity - 10)
        return float("inf")

    def _evict(self, db: Keyspace, key: bytes) -> int:
        """Delete ``key``; an estimate of the bytes that frees."""
        value = db.data.pop(key)
        db.expires.pop(key, None)
        if db.access is not None:
            db.access.pop(key, None)
        self._evict_hook(db, key)
        return size_of(key, value)

    # -- the victim -------------------------------------------------------------------------------

    def _victim(self) -> tuple[Keyspace, bytes] | None:
        if self.policy.endswith("random"):
            return self._random_victim()
        for db in self.dbs:
            self._populate(db)
        pool = self.pool
        while pool:
            _, stamp, index, key = pool.pop()
            if self._still(self.dbs[index], key, stamp):
                return self.dbs[index], key
        return None

    def _random_victim(self) -> tuple[Keyspace, bytes] | None:
        for db in random.sample(self.dbs, len(self.dbs)):
            keys: Table = db.expires if self.volatile else db.data
            if keys:
                place = random.randrange(min(len(keys), RANDOM_WINDOW))
                self._churned(db, 1)
                return db, next(islice(keys, place, None))
        return None

    def _churned(self, db: Keyspace, count: int) -> None:
        """Count deletions near the front of ``db``'s tables. A dict leaves a hole where a key
        was deleted and a walk from its start steps over every hole, so once they may be
        many the tables are copied (without holes): O(1) a deletion, amortized."""
        churn = self._churn.get(db.index, 0) + count
        if churn > len(db.data) // 4 + CHURN_SLACK:
            db.data = compacted(db.data)
            db.expires = dict(db.expires)
            churn = 0
        self._churn[db.index] = churn

    def _still(self, db: Keyspace, key: bytes, stamp: int) -> bool:
        """Whether a pool entry still stands: the key is there as it was when sampled."""
        if key not in db.data:
            return False
        if self.policy == "volatile-ttl":
            return db.expires.get(key) == stamp
        if self.volatile and key not in db.expires:
            return False
        return db.access is None or db.access.get(key, 0) == stamp

    def _populate(self, db: Keyspace) -> None:
        """Sample ``maxmemory-samples`` keys of ``db`` into the pool (``evictionPoolPopulate``)."""
        clock = lru_clock()
        for stamp, key in self._sample(db):
            score = self._score(stamp, clock)
            entry = (score, stamp, db.index, key)
            if entry in self.pool:
                continue
            pool = self.pool
            if len(pool) < POOL_SIZE:
                pool.append(entry)
            elif score > pool[0][0]:
                pool[0] = entry
            else:
                continue
            pool.sort()

    def _score(self, stamp: int, clock: int) -> int:
        """Higher is a better victim: idle time, 255 - frequency, or nearness of expiry."""
        if self.lru:
            return (clock - stamp) & 0xFFFFFF
        if self.lfu:
            return 255 - self.frequency(stamp)
        return -stamp  # volatile-ttl: the stamp is the expiry time

    def _sample(self, db: Keyspace) -> Iterable[tuple[int, bytes]]:
        """(stamp, key) of up to ``samples`` keys of ``db``, from the front of the table the
        policy samples (``access`` or ``expires``), stale entries dropped on the way."""
        access = db.access
        if self.volatile:
            expires = db.expires
            taken = list(islice(expires.items(), self.samples))
            for key, when in taken:  # to the end: the next sample starts after them
                del expires[key]
                expires[key] = when
            self._churned(db, len(taken))
            if self.policy == "volatile-ttl":
                return [(when, key) for key, when in taken]
            return [(access.get(key, 0) if access is not None else 0, key) for key, _ in taken]
        if access is None:
            return []
        data = db.data
        if len(access) > 2 * len(data) + 1024:  # deleted keys' stamps: drop them
            db.access = access = OrderedDict((k, v) for k, v in access.items() if k in data)
        sample: list[tuple[int, bytes]] = []
        stale: list[bytes] = []  # keys deleted since their last access: each dropped once
        for key, stamp in access.items():
            if key not in data:
                stale.append(key)
            else:
                sample.append((stamp, key))
                if len(sample) == self.samples:
                    break
        for key in stale:
            del access[key]
        if self.lfu:  # the order says nothing of frequency: walk on next time
            for _, key in sample:
                access.move_to_end(key)
        if not sample and data:  # keys no command stamped yet: the oldest guess
            sample = [(0, key) for key in islice(data, self.samples)]
            for _, key in sample:
                access[key] = 0
        return sample


def size_of(key: bytes, value: Any) -> int:
    """An estimate of the bytes a key and its value hold (one element measured per 16)."""
    size = sys.getsizeof(key) + sys.getsizeof(value) + KEY_OVERHEAD
    if value.__class__ is bytes:
        return size
    try:
        items = list(islice(iter(value), 16))
    except TypeError:
        return size
    if not items:
        return size
    if value.__class__ is dict:
        each = sum(sys.getsizeof(k) + sys.getsizeof(value[k]) for k in items) / len(items)
    else:
        each = sum(sys.getsizeof(item) for item in items) / len(items)
    return size + int(each * len(value))
