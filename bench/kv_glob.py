"""kv's glob matchers on 100,000 keys, in process: what KEYS and SCAN MATCH pay per key.

Three matchers over the same keys and patterns, in alternated rounds, medians reported:

* ``regex``: kv's ``compile_glob``, a regex whose pieces between stars are atomic groups;
* ``reference``: kv's ``stringmatch``, the plain-Python two-pointer walk;
* ``backtracking``: the translation kv used before (``*`` to ``.*``, no atomic groups), which
  is as fast on friendly patterns and exponential on hostile ones; the hostile pattern is
  left out of its rounds.

Usage: python bench/kv_glob.py [--keys 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections.abc import Callable

from residentd.apps.kv.patterns import compile_glob, stringmatch

PATTERNS = [b"user:*", b"*:1?3", b"user:[0-4]*:name", b"*session*", b"a*a*a*a*a*a*a*a*a*b"]
HOSTILE = PATTERNS[-1]


def backtracking(pattern: bytes) -> Callable[[bytes], bool]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == 91:  # a [set] goes through as a regex class (the patterns here are plain ones)
            end = pattern.index(b"]", i)
            out.append(pattern[i : end + 1])
            i = end
        else:
            out.append(b".*" if c == 42 else b"." if c == 63 else re.escape(bytes([c])))
        i += 1
    fullmatch = re.compile(b"".join(out), re.DOTALL).fullmatch
    return lambda key: fullmatch(key) is not None


def make_keys(count: int) -> list[bytes]:
    rng = random.Random(1)
    kinds = (b"user:%d:name", b"session:%d", b"cache:%d", b"aaaaaaaaaaaaaaaaaaaa%d")
    return [rng.choice(kinds) % rng.randrange(10**6) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keys = make_keys(args.keys)
    matchers: dict[str, Callable[[bytes], Callable[[bytes], bool]]] = {
        "regex": compile_glob,
        "reference": lambda p: lambda key: stringmatch(p, key),
        "backtracking": backtracking,
    }
    times: dict[tuple[str, bytes], list[float]] = {}
    for _ in range(args.rounds):
        for pattern in PATTERNS:
            for name, make in matchers.items():
                if name == "backtracking" and pattern == HOSTILE:
                    continue
                match = make(pattern)
                started = time.perf_counter()
                found = sum(1 for key in keys if match(key))
                times.setdefault((name, pattern), []).append(time.perf_counter() - started)
                assert found == sum(1 for key in keys if stringmatch(pattern, key))
    print(f"{args.keys} keys, median of {args.rounds} rounds, ms per KEYS-style scan")
    print(f"{'pattern':24} " + " ".join(f"{name:>13}" for name in matchers))
    for pattern in PATTERNS:
        cells = []
        for name in matchers:
            sample = times.get((name, pattern))
            cells.append(f"{statistics.median(sample) * 1000:13.1f}" if sample else f"{'-':>13}")
        print(f"{pattern.decode():24} " + " ".join(cells))


if __name__ == "__main__":
    main()
