"""kv's geo commands answer as Redis 7.0's: the same GEOADD scores (so ZSCORE and ZRANGE agree
to the bit), GEOPOS positions, GEODIST distances and GEOHASH strings, and the same members in
the same order from GEOSEARCH, GEOSEARCHSTORE and GEORADIUS* over a few hundred points, with
every option, unit and error, near the poles and across the antimeridian too, in RESP2
and in RESP3; checked against a real redis-server."""

from __future__ import annotations

import random

from .helpers import Raw

Command = tuple[str, ...]

FIXED: list[Command] = [
    ("geoadd", "Sicily", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
    ("zrange", "Sicily", "0", "-1", "withscores"),
    ("geodist", "Sicily", "Palermo", "Catania"),
    ("geodist", "Sicily", "Palermo", "Catania", "km"),
    ("geodist", "Sicily", "Palermo", "Catania", "MI"),
    ("geodist", "Sicily", "Palermo", "Catania", "ft"),
    ("geodist", "Sicily", "Palermo", "missing"),
    ("geodist", "missing", "a", "b"),
    ("geodist", "Sicily", "Palermo", "Catania", "yd"),
    ("geodist", "Sicily", "a", "b", "km", "extra"),
    ("georadius", "Sicily", "15", "37", "200", "km", "WITHDIST", "WITHCOORD", "WITHHASH"),
    ("geopos", "Sicily", "Palermo", "Catania", "missing"),
    ("geopos", "missing", "a"),
    ("geohash", "Sicily", "Palermo", "Catania", "missing"),
    ("geohash", "missing", "a"),
    ("geoadd", "Sicily", "200", "100", "bad"),
    ("geoadd", "Sicily", "-180.1", "0", "bad"),
    ("geoadd", "Sicily", "0", "85.06", "bad"),
    ("geoadd", "Sicily", "x", "0", "bad"),
    ("geoadd", "Sicily", "1", "nan", "bad"),
    ("geoadd", "Sicily", "inf", "1", "bad"),
    ("geoadd", "Sicily", "nx", "xx", "1", "2", "a"),
    ("geoadd", "Sicily", "1", "2"),
    ("geoadd", "Sicily", "nx", "1", "2"),
    ("geoadd", "Sicily", "gt", "1", "1", "x"),
    ("geoadd", "Sicily", "ch", "13.4", "38.1", "Palermo"),
    ("geoadd", "Sicily", "xx", "ch", "13.5", "38.1", "Palermo", "1", "1", "new"),
    ("geoadd", "Sicily", "nx", "ch", "13.6", "38.1", "Palermo", "1", "1", "new"),
    ("zrange", "Sicily", "0", "-1", "withscores"),
    ("set", "str", "v"),
    ("geoadd", "str", "1", "1", "a"),
    ("geoadd", "str", "1", "100", "a"),
    ("geopos", "str", "a"),
    ("geodist", "str", "a", "b"),
    ("geohash", "str", "a"),
    ("geosearch", "str", "frommember", "a", "byradius", "1", "m"),
    ("georadius", "str", "1", "1", "1", "m"),
    # the same longitude, the edges of the map, the origin
    ("geoadd", "edges", "13.361389", "38.115556", "a", "13.361389", "37.0", "b"),
    (
        "geoadd",
        "edges",
        "-73.9",
        "40.7",
        "c",
        "180",
        "85.05112878",
        "ne",
        "-180",
        "-85.05112878",
        "sw",
    ),
    ("geoadd", "edges", "0", "0", "zero"),
    ("zrange", "edges", "0", "-1", "withscores"),
    ("geodist", "edges", "a", "b"),
    ("geodist", "edges", "a", "c", "km"),
    ("geodist", "edges", "ne", "sw"),
    ("geopos", "edges", "a", "b", "c", "ne", "sw", "zero"),
    ("geohash", "edges", "a", "b", "c", "ne", "sw", "zero"),
    ("geosearch", "edges", "fromlonlat", "0", "0", "byradius", "0", "km"),
    ("geosearch", "edges", "fromlonlat", "179", "84", "bybox", "500", "500", "km", "withcoord"),
    # A sorted set's own scores, no geohash: Redis reads each as (uint64_t)score, which on
    # x86-64 wraps a negative one and takes 2**64 and up, and the infinities, to 0 or 2**63.
    ("zadd", "odd", "inf", "inf", "-inf", "-inf", "1e20", "big", "-1e20", "low", "-1", "minus",
     "9223372036854775808", "top", "18446744073709551616", "past", "4503599627370496", "over",
     "-0.5", "half"),
    ("geopos", "odd", "inf", "-inf", "big", "low", "minus", "top", "past", "over", "half"),
    ("geohash", "odd", "inf", "-inf", "big", "low", "minus", "top", "past", "over", "half"),
    ("geodist", "odd", "inf", "low"),
    ("geodist", "odd", "big", "top", "km"),
    ("geodist", "odd", "minus", "over"),
]  # fmt: skip


def _points(rng: random.Random) -> list[Command]:
    points: list[str] = []
    for i in range(300):
        points += [f"{rng.uniform(-20, 40):.6f}", f"{rng.uniform(20, 70):.6f}", f"p{i}"]
    return [("geoadd", "eu", *points), ("zrange", "eu", "0", "-1", "withscores")]


def _searches(rng: random.Random, rounds: int) -> list[Command]:
    commands: list[Command] = []
    for _ in range(rounds):
        lon, lat = f"{rng.uniform(-20, 40):.5f}", f"{rng.uniform(20, 70):.5f}"
        radius = rng.choice([1, 10, 100, 500, 1000, 3000, 6000])
        unit = rng.choice(["km", "mi", "m", "ft"])
        if unit in ("m", "ft"):
            radius *= 1000
        r = str(radius)
        options = rng.sample(
            ["WITHDIST", "WITHCOORD", "WITHHASH", "ASC", "DESC"], rng.randint(0, 3)
        )
        if "ASC" in options and "DESC" in options:
            options.remove("DESC")
        if rng.random() < 0.3:
            options += ["COUNT", str(rng.randint(1, 10))] + (["ANY"] if rng.random() < 0.3 else [])
        member = f"p{rng.randint(0, 299)}"
        plain = [o for o in options if not o.startswith("WITH")]
        storedist = ["STOREDIST"] if rng.random() < 0.5 else []
        commands += [
            ("georadius", "eu", lon, lat, r, unit, *options),
            ("georadius_ro", "eu", lon, lat, r, unit, *options),
            ("geosearch", "eu", "fromlonlat", lon, lat, "byradius", r, unit, *options),
            (
                "geosearch",
                "eu",
                "fromlonlat",
                lon,
                lat,
                "bybox",
                r,
                str(radius / 2),
                unit,
                *options,
            ),
            ("georadiusbymember", "eu", member, r, unit, *options),
            ("georadiusbymember_ro", "eu", member, r, unit, *options),
            ("geosearch", "eu", "frommember", member, "bybox", r, r, unit, *options),
            (
                "geosearchstore",
                "dst",
                "eu",
                "frommember",
                member,
                "bybox",
                r,
                r,
                unit,
                *plain,
                *storedist,
            ),
            ("zrange", "dst", "0", "-1", "withscores"),
        ]
    return commands


def _world(rng: random.Random, rounds: int) -> list[Command]:
    """Points anywhere, searched near the poles and across the antimeridian, with radii up to
    a third of the globe (where the search cells repeat)."""
    points: list[str] = []
    for i in range(200):
        points += [f"{rng.uniform(-180, 180):.6f}", f"{rng.uniform(-85.05, 85.05):.6f}", f"w{i}"]
    commands: list[Command] = [("geoadd", "w", *points), ("zrange", "w", "0", "-1", "withscores")]
    for _ in range(rounds):
        lon = rng.choice([rng.uniform(-180, 180), rng.uniform(170, 180), rng.uniform(-180, -170)])
        lat = rng.choice([rng.uniform(-85, 85), rng.uniform(70, 85), rng.uniform(-85, -70), 0.0])
        at = (f"{lon:.4f}", f"{lat:.4f}")
        radius = rng.choice([0.5, 50, 300, 1000, 2500, 5000, 8000, 15000])
        options = rng.choice(
            [[], ["ASC"], ["DESC", "WITHDIST"], ["COUNT", "7"], ["COUNT", "3", "ANY"]]
        )
        commands += [
            ("geosearch", "w", "fromlonlat", *at, "byradius", str(radius), "km", *options),
            ("geosearch", "w", "fromlonlat", *at, "bybox", str(radius), str(radius * 1.7), "km"),
            ("geodist", "w", f"w{rng.randint(0, 199)}", f"w{rng.randint(0, 199)}", "mi"),
        ]
    return commands


STORES_AND_ERRORS: list[Command] = [
    ("georadius", "eu", "10", "50", "500", "km", "store", "st1", "count", "5"),
    ("zrange", "st1", "0", "-1", "withscores"),
    ("georadius", "eu", "10", "50", "500", "km", "storedist", "st2", "desc"),
    ("zrange", "st2", "0", "-1", "withscores"),
    ("georadius", "eu", "-10", "-50", "1", "km", "storedist", "st2"),  # nothing found: deleted
    ("exists", "st2"),
    ("georadius", "eu", "10", "50", "500", "km", "store", "st1", "withdist"),
    ("georadius_ro", "eu", "10", "50", "500", "km", "store", "st1"),
    ("georadiusbymember", "eu", "nope", "500", "km"),
    ("georadiusbymember", "missing", "nope", "x", "km"),
    ("georadiusbymember", "missing", "nope", "1", "km", "store", "st1"),
    ("exists", "st1"),
    ("georadius", "missing", "1", "1", "1", "km"),
    ("georadius", "eu", "1", "1", "x", "km"),
    ("georadius", "eu", "1", "1", "-1", "km"),
    ("georadius", "eu", "1", "1", "1", "yd"),
    ("georadius", "eu", "1", "100", "1", "km"),
    ("georadius", "eu", "10", "50", "500", "km", "count", "0"),
    ("georadius", "eu", "10", "50", "500", "km", "count", "x"),
    ("georadius", "eu", "10", "50", "500", "km", "any"),
    ("georadius", "eu", "10", "50", "500", "km", "foo"),
    ("georadius", "eu", "10", "50", "500", "km", "count"),
    ("geosearch", "eu", "byradius", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "1", "1"),
    ("GeoSearch", "eu", "fromlonlat", "1", "1", "frommember", "p1", "byradius", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "1", "1", "byradius", "1", "km", "bybox", "1", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "1", "1", "bybox", "-1", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "1", "1", "bybox", "x", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "1", "1", "bybox", "1", "y", "km"),
    ("geosearch", "eu", "frommember", "zz", "bybox", "1", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "1", "1", "byradius", "1", "km", "store", "x"),
    ("geosearch", "eu", "fromlonlat", "1", "1", "byradius", "1", "km", "storedist"),
    ("geosearchstore", "d", "eu", "fromlonlat", "1", "1", "byradius", "1", "km", "withdist"),
    ("geosearchstore", "d", "missing", "fromlonlat", "1", "1", "byradius", "1", "km"),
    ("geosearch", "missing", "frommember", "zz", "bybox", "1", "1", "km"),
    ("geosearch", "eu", "fromlonlat", "10", "50", "byradius", "20000", "km", "count", "3"),
    ("geosearch", "eu", "fromlonlat", "10", "50", "byradius", "20000", "km"),
    ("geosearch", "eu", "fromlonlat", "10", "85", "bybox", "20000", "20000", "km"),
    ("geosearch", "eu", "fromlonlat", "0", "0", "byradius", "0", "km"),
]


def _compare(port: int, redis_port: int, commands: list[Command], protocol: int) -> None:
    with Raw(redis_port) as theirs, Raw(port) as ours:
        for client in (theirs, ours):
            client.call("FLUSHALL")
            client.call("HELLO", str(protocol))
        for command in commands:
            expected, got = theirs.call(*command), ours.call(*command)
            assert got == expected, f"{command!r}: redis {expected[:200]!r}, kv {got[:200]!r}"


def test_fixed_cases_match_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    _compare(port, redis_port, FIXED, 2)


def test_searches_match_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    rng = random.Random(5)
    commands = _points(rng) + _searches(rng, 60) + _world(rng, 40) + STORES_AND_ERRORS
    _compare(port, redis_port, commands, 2)


def test_resp3_replies_match_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    rng = random.Random(6)
    _compare(port, redis_port, FIXED + _points(rng) + _searches(rng, 10), 3)
