"""The string, bit and key commands are journaled so that kv restarted on its AOF, and a real
redis-server loading the same folder, both find what kv held: values and times to live.
Relative times are logged as absolute ones (SETEX, PSETEX and GETEX as ``PXAT`` and
``PEXPIREAT``), INCRBYFLOAT as the ``SET ... KEEPTTL`` of its result, GETDEL as ``DEL``."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from .persistence_peers import dataset, redis_on, same_dataset
from .test_persistence_aof import ALWAYS, client, incr_file, kv_on, matches


def workload(r: redis.Redis) -> None:
    r.setex("k:setex", 100, "v")
    r.psetex("k:psetex", 200_000, "v")
    r.set("k:getex", "v")
    r.getex("k:getex", ex=300)
    r.set("k:getex-persist", "v", ex=300)
    r.getex("k:getex-persist", persist=True)
    r.set("k:getex-past", "v")
    r.getex("k:getex-past", exat=1)
    r.set("k:getdel", "v")
    r.getdel("k:getdel")
    r.set("k:float", "1.5", ex=400)
    r.incrbyfloat("k:float", "0.1")
    r.incrbyfloat("k:float2", "1e-5")
    r.set("range", "Hello World", ex=500)
    r.setrange("range", 6, "Redis")
    r.setrange("range", 20, "")  # nothing changed: not logged
    r.msetnx({"nx1": "a", "nx2": "b"})
    r.msetnx({"nx1": "c", "nx3": "d"})  # refused
    r.setbit("bits", 13, 1)
    r.bitfield("field").set("u8", "#1", 200).incrby("i5", 3, 7).execute()
    r.set("op1", "\x0f")
    r.bitop("XOR", "op", "op1", "bits")
    r.set("copy-src", "v", ex=600)
    r.copy("copy-src", "copy-dst")
    r.set("rn", "v")
    r.renamenx("rn", "rn2")
    r.set("unlink", "v")
    r.unlink("unlink", "never")
    r.set("gt", "v", ex=100)
    r.expire("gt", 700, gt=True)
    r.expire("gt", 10, lt=True)
    r.pexpireat("gt", int(time.time() * 1000) + 800_000, gt=True)
    r.rpush("list", "3", "1", "2")
    r.set("w_1", "30")
    r.set("w_2", "20")
    r.set("w_3", "10")
    r.sort("list", by="w_*", store="sorted")
    r.sort("list")  # nothing stored: not logged


def test_restart_and_redis_load_the_same_data(tmp_path: Path) -> None:
    with kv_on(tmp_path, *ALWAYS) as daemon:
        r = client(daemon)
        workload(r)
        live, read_at = dataset(r), time.monotonic()
        assert live[b"sorted"][1] == [b"3", b"2", b"1"]
        assert live[b"k:float"][1] == b"1.6" and live[b"k:float"][2] > 390
        assert b"k:getex-past" not in live and b"k:getdel" not in live
        assert live[b"k:getex-persist"][2] == -1 and live[b"k:getex"][2] > 290
        r.close()
    logged = incr_file(tmp_path).read_bytes().split(b"\r\n")
    assert not {b"SETEX", b"PSETEX", b"GETEX", b"GETDEL", b"INCRBYFLOAT"} & {
        word.upper() for word in logged
    }
    with kv_on(tmp_path, *ALWAYS) as again:
        restarted = client(again)
        matches(restarted, live, read_at)
        with redis_on(str(tmp_path), "--appendonly", "yes") as peer:
            same_dataset(peer, restarted)
        restarted.close()
