"""Integer arguments at the edges of int64, answered as redis-server answers them.

Redis parses with C's ``long long`` and divides with C's truncation, where Python floors and
never overflows; each case sends the same commands to kv and to redis-server and compares
every reply byte for byte, then the keys left (a wrongly accepted expiry deletes its key).
"""

from __future__ import annotations

import pytest

from .helpers import replies_after_flush

MAX = 2**63 - 1
MIN = -(2**63)
# Redis's LLONG_MIN / 1000 and LLONG_MAX / 1000, and one past each.
SECONDS = [MIN // 1000, MIN // 1000 + 1, MAX // 1000, MAX // 1000 + 1]

Command = tuple[str | int, ...]


def _expiry_cases() -> list[Command]:
    commands: list[Command] = []
    for name in ("EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"):
        for value in [*SECONDS, MIN, MAX, MIN + 1, MAX - 1, 2**63, -(2**63) - 1, -1, 0]:
            commands += [("SET", "k", "v"), (name, "k", value), ("EXISTS", "k")]
    for option in ("EX", "PX", "EXAT", "PXAT"):
        for value in [*SECONDS, MIN, MAX, MAX - 1, 0, -1, 2**63]:
            commands += [("SET", "s", "v", option, value), ("EXISTS", "s")]
    return commands


def _counter_cases() -> list[Command]:
    commands: list[Command] = []
    for start in (MAX, MIN, MAX - 1, MIN + 1, 0):
        for name, by in (
            ("INCRBY", 1), ("INCRBY", -1), ("DECRBY", 1), ("DECRBY", -1), ("INCRBY", MAX),
            ("INCRBY", MIN), ("DECRBY", MIN), ("DECRBY", MAX), ("INCRBY", 2**63),
            ("DECRBY", -(2**63) - 1), ("INCR", None), ("DECR", None),
        ):  # fmt: skip
            command: Command = (name, "n") if by is None else (name, "n", by)
            commands += [("SET", "n", start), command, ("GET", "n")]
    return commands


def _index_cases() -> list[Command]:
    commands: list[Command] = [("RPUSH", "l", "a", "b", "c"), ("HSET", "h", "f", MAX)]
    for start, stop in ((MIN, MAX), (MAX, MIN), (-(2**63) - 1, 1), (0, 2**63), (-4, -1)):
        commands.append(("LRANGE", "l", start, stop))
    for count in (0, 1, MAX, -1, MIN, 2**63):
        commands += [("LPOP", "missing", count), ("RPOP", "l", count), ("RPUSH", "l", "x")]
    for by in (1, -1, MIN, MAX, 2**63):
        commands += [("HINCRBY", "h", "f", by), ("HGET", "h", "f")]
    for cursor in (MAX, 2**63, 2**64 - 1, 2**64, -1, MIN, -(2**64)):
        commands.append(("SCAN", cursor, "COUNT", 1, "MATCH", "nothing"))
    for count in (0, -1, MAX, MIN, 2**63):
        commands.append(("SCAN", 0, "COUNT", count, "MATCH", "nothing"))
    return commands


CASES = {"expiry": _expiry_cases(), "counters": _counter_cases(), "indexes": _index_cases()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_integer_bounds_match_redis(name: str, kv_process: object, redis_port: int) -> None:
    commands = CASES[name]
    port = kv_process.port  # type: ignore[attr-defined]
    # The keys left last (sorted: KEYS's order is each server's own).
    commands = [*commands, ("KEYS", "*")]
    theirs_all, ours_all = (
        replies_after_flush(where, commands, len(commands)) for where in (redis_port, port)
    )
    theirs_all[-1], ours_all[-1] = (
        b"".join(sorted(keys.split(b"\r\n"))) for keys in (theirs_all[-1], ours_all[-1])
    )
    for command, theirs, ours in zip(commands, theirs_all, ours_all, strict=True):
        if command[0] == "SCAN" and command[1] != 0 and theirs.startswith(b"*2\r\n"):
            # A cursor is opaque: Redis's walks its hash table, kv's a snapshot. The cursor
            # must be read (not refused) as Redis reads it; where it leads is kv's own.
            theirs, ours = theirs[:4], ours[:4]
        assert ours == theirs, f"{command!r}: redis {theirs!r}, kv {ours!r}"
