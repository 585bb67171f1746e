"""kv's sorted set value in process: what ZADD, ZRANK and ZRANGE pay as a set grows.

Redis's zskiplist makes an insert, a delete, a rank and a walk from a rank O(log n); kv's
``SortedSet`` (a dict beside its ``order``: _zorder.c's order-statistic tree, or
sortedcontainers' ``SortedList`` with ``RESIDENTD_PURE_PYTHON=1``) must do the same. This
builds one set of each size and times, per operation, a batch of:

* ``insert``: ZADD of a new member at a random score, then ZREM of it (the pair keeps the size);
* ``rank``: ZRANK of a random member present;
* ``range``: ZRANGE of 10 members from a random rank.

The sizes go up a hundredfold (10k to 1M by default): an O(log n) cost grows by a small
constant there, an O(n) one a hundredfold. Rounds alternate the sizes; medians are reported.

Usage: python bench/kv_zset.py [--sizes 10000,1000000] [--ops 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from residentd.apps.kv.zset import Order, SortedSet


def build(size: int, rng: random.Random) -> tuple[SortedSet, list[bytes]]:
    members = [b"member:%d" % i for i in range(size)]
    return SortedSet([(rng.random() * 1000, member) for member in members]), members


def timed(ops: int, run: Callable[[], None]) -> float:
    """Microseconds per operation of ``run``, which does ``ops`` of them."""
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / ops * 1e6


def measure(
    zset: SortedSet, members: list[bytes], ops: int, rng: random.Random
) -> dict[str, float]:
    picks = [rng.choice(members) for _ in range(ops)]
    scores = [rng.random() * 1000 for _ in range(ops)]
    starts = [rng.randrange(len(members) - 10) for _ in range(ops)]

    def insert() -> None:
        for i, score in enumerate(scores):
            member = b"new:%d" % i
            zset.add(member, score)
            zset.remove(member)

    def rank() -> None:
        for member in picks:
            zset.rank(member)

    def range_() -> None:
        for start in starts:
            zset.entries(start, start + 10)

    return {"insert": timed(ops, insert), "rank": timed(ops, rank), "range": timed(ops, range_)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(18)
    sizes = [int(size) for size in args.sizes.split(",")]
    sets = {size: build(size, rng) for size in sizes}
    results: dict[tuple[int, str], list[float]] = {}
    for _ in range(args.rounds):
        for size in sizes:
            for name, value in measure(*sets[size], args.ops, rng).items():
                results.setdefault((size, name), []).append(value)
    names = ("insert", "rank", "range")
    print(f"{Order.__name__}: µs per operation, median of {args.rounds} rounds of {args.ops}")
    print(f"{'members':>10} " + " ".join(f"{name:>8}" for name in names))
    for size in sizes:
        cells = " ".join(f"{statistics.median(results[size, name]):8.2f}" for name in names)
        print(f"{size:>10} {cells}")
    low, high = sizes[0], sizes[-1]
    ratios = " ".join(
        f"{statistics.median(results[high, n]) / statistics.median(results[low, n]):8.2f}"
        for n in names
    )
    print(f"{f'x{high // low}':>10} {ratios}   (cost ratio, largest / smallest)")


if __name__ == "__main__":
    main()
