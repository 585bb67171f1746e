"""Expiry: a key past its time is gone for every command at once (lazy), and keys nobody
touches are reclaimed by the active cycle, so they leave DBSIZE and memory by themselves."""

from __future__ import annotations

import time

import redis

from residentd.apps.kv.store import Keyspace, now_ms
from support import wait_until

from .helpers import KvThread


def test_lazy_expiry_hides_a_key_from_every_command(r: redis.Redis, kv: KvThread) -> None:
    for key, make in {
        "s": lambda k: r.set(k, "v", px=100),
        "h": lambda k: r.hset(k, "f", "v") and r.pexpire(k, 100),
        "l": lambda k: r.rpush(k, "x") and r.pexpire(k, 100),
        "z": lambda k: r.sadd(k, "m") and r.pexpire(k, 100),
    }.items():
        make(key)
    time.sleep(0.15)
    assert r.get("s") is None
    assert r.hgetall("h") == {}
    assert r.lrange("l", 0, -1) == []
    assert r.smembers("z") == set()
    assert r.exists("s", "h", "l", "z") == 0
    assert r.ttl("s") == -2
    assert r.keys() == []
    assert r.incr("s") == 1  # a fresh key, without the old time to live
    assert r.ttl("s") == -1


def test_active_expiry_reclaims_untouched_keys(r: redis.Redis, kv: KvThread) -> None:
    with r.pipeline(transaction=False) as pipe:
        for i in range(5000):
            pipe.set(f"short:{i}", "v", px=1500)
        for i in range(100):
            pipe.set(f"long:{i}", "v", ex=1000)
        for i in range(100):
            pipe.set(f"forever:{i}", "v")
        pipe.execute()
    assert r.dbsize() == 5200
    wait_until(lambda: r.dbsize() == 200, 10, "the active cycle to delete the short keys")
    assert r.info("stats")["expired_keys"] >= 5000
    assert r.info("keyspace")["db0"]["expires"] == 100


def test_expire_cycle_samples_and_stops_when_few_are_stale() -> None:
    db = Keyspace()
    now = now_ms()
    for i in range(1000):
        key = b"k%d" % i
        db.data[key] = b"v"
        db.expires[key] = now - 1 if i % 100 == 0 else now + 100_000
    # 1% stale: one sample of 20 is under the 10% threshold, so a cycle stops early...
    assert db.expire_cycle() <= 1
    # ...and repeated cycles walk the whole table and find every stale key.
    for _ in range(60):
        db.expire_cycle()
    assert len(db) == 990
    assert db.expired_keys == 10


def test_expire_cycle_keeps_going_while_many_are_stale() -> None:
    db = Keyspace()
    past = now_ms() - 1
    for i in range(10_000):
        db.data[b"k%d" % i] = b"v"
        db.expires[b"k%d" % i] = past
    assert db.expire_cycle(budget=10.0) == 10_000
    assert len(db) == 0 and not db.expires
