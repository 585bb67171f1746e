"""kv's HyperLogLogs are Redis 7.0's, byte for byte: the same PFADD, PFCOUNT and PFMERGE
sequences sent to kv and to a real redis-server give the same replies and leave the same
string (GET) behind, sparse, after the promotion to dense, and with the count cached; an HLL
taken from one server with GET and SET into the other counts the same there. The estimator's
end points and the promotion are also checked in process, and the C version of the
register updates against the Python one."""

from __future__ import annotations

import random

import pytest

from residentd.apps.kv import hyperloglog as hll
from residentd.speedups import native

from .helpers import Raw

Command = tuple[str | bytes, ...]


def _compare(port: int, redis_port: int, commands: list[Command]) -> None:
    with Raw(redis_port) as theirs, Raw(port) as ours:
        theirs.call("FLUSHALL")
        ours.call("FLUSHALL")
        for command in commands:
            expected, got = theirs.call(*command), ours.call(*command)
            assert got == expected, f"{command[:3]!r}: redis {expected[:80]!r}, kv {got[:80]!r}"


def _sequence(rng: random.Random) -> list[Command]:
    commands: list[Command] = [("pfadd", "h"), ("get", "h"), ("pfadd", "h", "a", "b", "c")]
    commands += [("get", "h"), ("pfcount", "h"), ("get", "h"), ("pfadd", "h", "a")]
    for round_ in range(30):
        elements = [str(rng.random()) for _ in range(rng.randint(1, 30))]
        commands.append(("pfadd", "h", *elements))
        commands.append(("pfadd", "small", *elements[:2]))
        if round_ % 5 == 0:
            commands += [("get", "h"), ("pfcount", "h")]
    for _ in range(150):  # few registers, many repeats: splits and merges of VAL opcodes
        commands.append(("pfadd", "x", *[str(rng.randint(0, 3000)) for _ in range(3)]))
    commands += [("get", "x"), ("pfcount", "x"), ("get", "small")]
    for batch in range(11):  # promoted to dense on the way
        commands.append(("pfadd", "big", *[f"e{batch}-{i}" for i in range(1000)]))
        commands += [("pfcount", "big"), ("get", "big")]
    commands += [
        ("pfcount", "h", "small", "missing"),
        ("pfcount", "h", "big"),
        ("pfmerge", "m", "h", "small"),
        ("get", "m"),
        ("pfcount", "m"),
        ("pfmerge", "small", "x"),  # into an existing sparse one
        ("get", "small"),
        ("pfmerge", "small", "big", "h"),  # a dense source makes the target dense
        ("get", "small"),
        ("pfcount", "small"),
        ("pfmerge", "empty"),
        ("get", "empty"),
        ("pfcount", "empty", "nothing"),
    ]
    return commands


def test_replies_and_bytes_match_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    _compare(port, redis_port, _sequence(random.Random(7)))


ERRORS: list[Command] = [
    ("pfadd",),
    ("pfcount",),
    ("pfmerge",),
    ("set", "s", "not an hll"),
    ("pfadd", "s", "a"),
    ("pfcount", "s"),
    ("pfcount", "missing", "s"),
    ("pfmerge", "s", "missing"),
    ("pfmerge", "d", "s"),
    ("set", "n", "12345"),
    ("pfadd", "n", "a"),
    ("lpush", "l", "a"),
    ("pfadd", "l", "a"),
    ("pfcount", "l"),
    ("pfmerge", "d", "l"),
    ("exists", "d"),
    # a sparse HLL whose opcodes cover too few registers: corrupted
    ("set", "bad", b"HYLL\x01" + bytes(11) + b"\x7f\xfe"),
    ("pfadd", "bad", "a"),
    ("pfcount", "bad"),
    ("pfcount", "bad", "s"),
    ("pfcount", "missing", "bad"),
    ("pfmerge", "d", "bad"),
    # a dense one of the wrong size is no HLL at all
    ("set", "short", b"HYLL\x00" + bytes(11) + b"\x80"),
    ("pfcount", "short"),
    ("set", "odd", b"HYLL\x02" + bytes(11)),
    ("pfadd", "odd", "a"),
    # a header that claims a cached count is believed
    ("set", "cached", b"HYLL\x01\x00\x00\x00\x2a" + bytes(7) + b"\x7f\xff"),
    ("pfcount", "cached"),
    ("pfadd", "cached", "x"),
    ("pfcount", "cached"),
    ("get", "cached"),
]


def test_errors_match_redis(kv_process: object, redis_port: int) -> None:
    _compare(kv_process.port, redis_port, ERRORS)  # type: ignore[attr-defined]


def test_an_hll_moves_between_servers(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(redis_port) as theirs, Raw(port) as ours:
        for source, target in ((theirs, ours), (ours, theirs)):
            source.call("DEL", "moved")
            source.call("PFADD", "moved", *[f"m{i}" for i in range(3000)])
            data = source.call("GET", "moved")
            blob = data[data.index(b"\r\n") + 2 : -2]
            target.call("SET", "moved", blob)
            assert target.call("PFCOUNT", "moved") == source.call("PFCOUNT", "moved")
            for element in ("one-more", "and-another", "and-a-third"):
                assert target.call("PFADD", "moved", element) == source.call(
                    "PFADD", "moved", element
                )
            assert target.call("GET", "moved") == source.call("GET", "moved")


def test_ttl_survives_an_update(kv_process: object) -> None:
    with Raw(kv_process.port) as client:  # type: ignore[attr-defined]
        client.call("DEL", "t")
        client.call("PFADD", "t", "a")
        client.call("EXPIRE", "t", "100")
        client.call("PFADD", "t", "b", "c")
        client.call("PFCOUNT", "t")
        assert client.call("TTL", "t") == b":100\r\n"


def test_estimates_and_promotion() -> None:
    assert hll.estimate([0] * hll.REGISTERS) == 0
    values = [0] * hll.REGISTERS
    values[5] = 1
    assert hll.estimate(values) == 1
    everything = bytearray(hll.EMPTY)
    assert hll.add_all(everything, [b"%d" % i for i in range(20000)])
    assert everything[4] == hll.DENSE
    assert abs(hll.count(everything) - 20000) < 20000 * 0.02
    with pytest.raises(hll.HllError):
        hll.sparse_registers(b"HYLL\x01" + bytes(11) + b"\x7f\xfe")


C_ADD_ALL = native("residentd.apps.kv._hyperloglog", "add_all")
C_REGISTERS = native("residentd.apps.kv._hyperloglog", "registers")


@pytest.mark.skipif(C_ADD_ALL is None, reason="the C speedups are not built or are off")
def test_c_version_matches_python() -> None:
    rng = random.Random(11)
    ours, reference = bytearray(hll.EMPTY), bytearray(hll.EMPTY)
    for batch in range(42):  # sparse, splits and merges, then promoted, then dense
        size = 3000 if batch == 40 else rng.randint(1, 60)
        elements = [b"%d" % rng.randint(0, 3000 * (batch + 1)) for _ in range(size)]
        assert C_ADD_ALL(ours, elements) == hll.add_all_python(reference, elements)
        assert ours == reference, batch
        assert C_REGISTERS(ours) == bytes(hll.registers_python(reference))
    assert ours[4] == hll.DENSE
    with pytest.raises(ValueError):
        C_ADD_ALL(bytearray(b"HYLL\x01" + bytes(11)), [b"a"])  # no opcodes at all
    with pytest.raises(ValueError):
        C_REGISTERS(b"HYLL\x01" + bytes(11) + b"\x7f\xfe")  # one register short
