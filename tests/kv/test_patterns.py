"""kv's glob matcher against redis-server's: the same answers, and no pattern that stalls.

The random test loads one set of awkward keys into redis-server and asks its KEYS for
thousands of random patterns, comparing with both of kv's matchers (the Python reference and
the regex KEYS uses). The hostile test sends patterns that took the old backtracking matcher
exponential time to every command that takes a pattern, while another client PINGs and the
daemon is finally sent SIGTERM.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from residentd.apps.kv.patterns import compile_glob, stringmatch

from .helpers import KvProcess, Raw, resp

# Bytes that mean something to the matcher, a few plain ones and high bytes (signed chars).
ALPHABET = [b"a", b"b", b"A", b"z", b"*", b"?", b"[", b"]", b"^", b"-", b"\\", b"\x80", b"\xff"]
KEY_ALPHABET = [b"a", b"b", b"A", b"Z", b"]", b"^", b"-", b"\\", b"*", b"\x80", b"\xfe", b"\xff"]


def _keys() -> list[bytes]:
    rng = random.Random(18)
    keys = {b""}
    while len(keys) < 160:
        keys.add(b"".join(rng.choice(KEY_ALPHABET) for _ in range(rng.randint(1, 6))))
    return sorted(keys)


KEYS = _keys()


@pytest.fixture(scope="module")
def loaded_redis(redis_port: int) -> redis.Redis:
    client = redis.Redis(port=redis_port, protocol=2)
    client.flushall()
    client.mset({key: b"1" for key in KEYS})
    return client


def _both(pattern: bytes, nocase: bool = False) -> list[bytes]:
    matcher = compile_glob(pattern, nocase)
    found = [key for key in KEYS if matcher(key)]
    assert found == [key for key in KEYS if stringmatch(pattern, key, nocase)], pattern
    return found


def _redis_keys(client: redis.Redis, pattern: bytes) -> list[bytes]:
    found: list[bytes] = sorted(client.execute_command("KEYS", pattern))
    if pattern == b"*":  # KEYS lists every key for a lone star before it matches, so b"" too
        found.remove(b"")
    return found


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(ALPHABET), max_size=9).map(b"".join))
def test_random_patterns_match_as_redis_keys_does(
    loaded_redis: redis.Redis, pattern: bytes
) -> None:
    assert _both(pattern) == _redis_keys(loaded_redis, pattern)


EDGE_CASES = [
    b"", b"*", b"**", b"?", b"[", b"[^", b"[]", b"[^]", b"[]]", b"[^]]", b"\\", b"a\\",
    b"[\\", b"[\\]", b"[a-]", b"[a-]]", b"[-a]", b"[a-\\]]", b"[\xff-a]", b"[a-\xff]",
    b"[\x80-\xff]", b"[\xff-\x80]", b"[Z-a]", b"[^a-z]*", b"*[", b"*\\", b"a*a*a*b", b"\\*",
    b"[\\-]", b"[a\\-z]", b"*?*?*", b"A*", b"[[]", b"[^^]", b"?*\xff", b"*]*",
]  # fmt: skip


def test_edge_cases_match_as_redis_keys_does(loaded_redis: redis.Redis) -> None:
    for pattern in EDGE_CASES:
        assert _both(pattern) == _redis_keys(loaded_redis, pattern), pattern


def test_nesting_bound_and_nocase_as_redis(redis_port: int) -> None:
    client = redis.Redis(port=redis_port, protocol=2, db=1)  # db 0 holds the loaded KEYS
    client.flushdb()
    key = b"a" * 1200
    client.set(key, b"1")
    # Past 1000 nested stars Redis gives up, unless the 1001st run of stars ends the pattern.
    for pattern in (
        b"a*" * 1000,
        b"a*" * 1001,
        b"a*" * 1001 + b"a",
        b"*a" * 1001,
        b"*a" * 1000 + b"*",
        b"*a" * 1001 + b"*",
        b"a*" * 999 + b"*a*",
    ):
        assert (client.keys(pattern) == [key]) is stringmatch(pattern, key), len(pattern)
        assert compile_glob(pattern)(key) is stringmatch(pattern, key), len(pattern)

    # CONFIG GET matches without case, ranges lowered after they are put in order.
    def config_names(pattern: bytes) -> list[bytes]:
        return sorted(client.execute_command("CONFIG", "GET", pattern)[::2])

    names = config_names(b"*")
    for pattern in (b"MAXMEMORY*", b"[L-M]ax*", b"[Z-a]*", b"[\\M]*", b"*-Max-*", b"?ort"):
        expected = config_names(pattern)
        found = [n for n in names if compile_glob(pattern, nocase=True)(n)]
        assert found == expected, pattern
        assert found == [n for n in names if stringmatch(pattern, n, True)]


def test_command_list_filterby_matches_as_redis(kv_process: object, redis_port: int) -> None:
    port = kv_process.port  # type: ignore[attr-defined]
    with Raw(redis_port) as theirs, Raw(port) as ours:
        ours_all = set(_names(ours.call("COMMAND", "LIST")))
        assert ours_all <= set(_names(theirs.call("COMMAND", "LIST")))
        assert "config|get" in ours_all
        for filter_ in (
            ("PATTERN", "g?t"), ("pattern", "G*T"), ("PATTERN", "CONFIG*"),
            ("PATTERN", "config|get"), ("PATTERN", "[^a-k]*"), ("PATTERN", "*|*"),
            # ACLCAT follows kv's COMMAND INFO categories, which match Redis's for these.
            ("MODULE", "foo"), ("ACLCAT", "nosuch"), ("aclcat", "STRING"), ("ACLCAT", "hash"),
            ("ACLCAT", "pubsub"),
        ):  # fmt: skip
            expected = set(_names(theirs.call("COMMAND", "LIST", "FILTERBY", *filter_)))
            found = set(_names(ours.call("COMMAND", "LIST", "FILTERBY", *filter_)))
            assert found == expected & ours_all, filter_
        for bad in (("FOO",), ("FILTERBY",), ("FILTERBY", "PATTERN"), ("FILTERBY", "X", "y")):
            assert ours.call("COMMAND", "LIST", *bad) == theirs.call("COMMAND", "LIST", *bad)


def _names(reply: bytes) -> list[str]:
    return [line.decode() for line in reply.split(b"\r\n")[2::2]]


HOSTILE = b"a*" * 16 + b"b"
VICTIM = b"a" * 60


def _answers_ping(port: int) -> None:
    started = time.monotonic()
    with Raw(port, timeout=10) as other:
        assert other.call("PING") == b"+PONG\r\n"
    assert time.monotonic() - started < 2.0


def test_hostile_patterns_do_not_stall_the_server() -> None:
    with (
        KvProcess() as kv,
        Raw(kv.port, timeout=10) as attacker,
        Raw(kv.port, timeout=10) as publisher,
    ):
        attacker.send(b"".join(resp("SET", VICTIM + b"%d" % i, "v") for i in range(50)))
        attacker.replies(50)
        attacker.send(resp("SET", VICTIM, "v"))
        attacker.replies(1)
        for command in (
            resp("KEYS", HOSTILE),
            resp("SCAN", "0", "MATCH", HOSTILE, "COUNT", "1000"),
            resp("CONFIG", "GET", HOSTILE),
            resp("COMMAND", "LIST", "FILTERBY", "PATTERN", HOSTILE),
        ):
            attacker.send(command)
            _answers_ping(kv.port)
            reply = attacker.replies(1)[0]
            assert reply in (b"*0\r\n", b"*2\r\n$1\r\n0\r\n*0\r\n"), reply
        # PUBLISH matches the channel against every subscribed pattern.
        attacker.send(resp("PSUBSCRIBE", HOSTILE, b"a*"))
        attacker.replies(2)
        publisher.send(resp("PUBLISH", VICTIM, "hello"))
        _answers_ping(kv.port)
        assert publisher.replies(1) == [b":1\r\n"]
        assert attacker.replies(1) == [resp("pmessage", b"a*", VICTIM, "hello")]
        # A hostile KEYS in flight does not keep SIGTERM from being served.
        publisher.send(resp("KEYS", HOSTILE))
        assert kv.process is not None
        kv.process.send_signal(signal.SIGTERM)
        assert kv.process.wait(10) == 0
        with contextlib.suppress(OSError):
            publisher.read_until_closed()
