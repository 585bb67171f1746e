"""kv's journal is a Redis AOF: redis-check-aof accepts kv's files, and a real redis-server
started on kv's folder loads the same dataset as kv restarted on it, key by key (type,
value, time to live). What is logged follows Redis's propagation: absolute expiry times,
nothing for commands that changed nothing, DEL for keys whose time passed."""

from __future__ import annotations

import math
import resource
import subprocess
import time
from pathlib import Path

import pytest
import redis

from residentd.apps.kv.persistence.aof import encode, propagate
from residentd.apps.kv.store import Keyspace
from residentd.speedups import native
from support import wait_until

from .helpers import KvProcess
from .persistence_peers import dataset, need, redis_on, same_dataset

ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")


def kv_on(folder: Path, *args: str) -> KvProcess:
    return KvProcess("--dir", str(folder), *args)


def client(daemon: KvProcess) -> redis.Redis:
    return redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)


def incr_file(folder: Path) -> Path:
    (found,) = sorted((folder / "appendonlydir").glob("appendonly.aof.*.incr.aof"))[-1:]
    return found


def workload(r: redis.Redis) -> None:
    """Every write command kv has, with options, no-ops, expiry and a transaction."""
    r.set("plain", "v")
    r.set("ex", "v", ex=100)
    r.set("px", "v", px=200_000)
    r.set("keepttl", "old", ex=300)
    r.set("keepttl", "new", keepttl=True)
    r.set("nx", "first", nx=True)
    r.set("nx", "second", nx=True)  # refused: not logged
    r.set("xx", "v", xx=True)  # refused
    r.set("gone-at-once", "v")
    r.set("gone-at-once", "v", pxat=int(time.time() * 1000) - 1000)
    r.setnx("setnx", "1")
    r.getset("getset", "new")
    r.mset({"m1": "a", "m2": "b"})
    r.append("append", "abc")
    r.append("append", "def")
    for name in ("incr", "incr", "decr"):
        getattr(r, name)("counter")
    r.incrby("counter", 10)
    r.decrby("counter", 3)
    r.lpush("list", "a", "b", "c")
    r.rpush("list", "d")
    r.lpop("list")
    r.rpop("list")
    r.lpop("no-list")  # nothing: not logged
    r.hset("hash", mapping={"f1": "1", "f2": "2", "f3": "3"})
    r.hdel("hash", "f2")
    r.hincrby("hash", "f1", 41)
    r.sadd("set", "a", "b", "c")
    r.sadd("set", "a")  # nothing
    r.srem("set", "b")
    r.zadd("zset", {"a": 1, "b": 2.5, "c": float("inf"), "d": -0.1})
    r.zadd("zset", {"a": 5, "e": 1}, xx=True, ch=True)
    r.zincrby("zset", 0.1, "b")
    r.zrem("zset", "c", "nothing")
    r.zrem("zset", "nothing")  # nothing
    r.zadd("zset2", {"x": 1, "y": 2, "z": 3, "w": 4})
    r.zpopmin("zset2")
    r.zpopmin("no-zset")  # nothing
    r.zmpop(1, ["zset2"], max=True)
    r.zunionstore("zunion", ["zset", "zset2"], aggregate="MAX")
    r.zremrangebyscore("zunion", "-inf", "(2")
    r.set("ttl", "v")
    r.expire("ttl", 500)
    r.set("pttl", "v")
    r.pexpire("pttl", 400_000)
    r.set("persist", "v", ex=100)
    r.persist("persist")
    r.set("expireat", "v")
    r.expireat("expireat", int(time.time()) + 600)
    r.set("deleted", "v")
    r.delete("deleted", "never-there")
    r.set("from", "moved")
    r.rename("from", "to")
    r.set("lazy", "v", px=50)
    pipe = r.pipeline(transaction=True)
    pipe.set("tx1", "1").incr("tx-counter").lpush("tx-list", "x").execute()
    time.sleep(0.2)
    assert r.get("lazy") is None  # deleted on lookup: logged as DEL


def test_redis_check_aof_and_redis_server_accept_kvs_aof(tmp_path: Path) -> None:
    check = need("redis-check-aof")
    with kv_on(tmp_path, *ALWAYS) as daemon:
        r = client(daemon)
        workload(r)
        assert r.bgrewriteaof() is not None  # an RDB base of the first half
        wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, 10.0)
        r.lpush("after-rewrite", "1", "2")
        r.hset("hash", "f9", "9")
        live, read_at = dataset(r), time.monotonic()
        r.close()
        assert daemon.process is not None
        daemon.process.kill()  # kill -9: nothing flushed at exit
        daemon.process.wait()
    manifest = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    checked = subprocess.run([check, str(manifest)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All AOF files and manifest are valid" in checked.stdout
    with redis_on(str(tmp_path), "--appendonly", "yes") as peer:
        matches(peer, live, read_at)
        with kv_on(tmp_path, *ALWAYS) as again:
            same_dataset(peer, client(again))


def matches(
    peer: redis.Redis, live: dict[bytes, tuple[bytes, object, int]], read_at: float
) -> None:
    """``peer`` holds ``live``, read at ``read_at`` (monotonic): its TTLs less the time since."""
    found = dataset(peer)
    slack = 1 + math.ceil(time.monotonic() - read_at)
    assert found.keys() == live.keys()
    for key, (kind, value, ttl) in live.items():
        assert found[key][:2] == (kind, value), key
        assert (ttl == -1 and found[key][2] == -1) or -1 <= ttl - found[key][2] <= slack, key


def test_what_is_logged(tmp_path: Path) -> None:
    with kv_on(tmp_path, *ALWAYS) as daemon:
        r = client(daemon)
        r.set("k", "v", ex=100)
        r.expire("k", 50)
        r.sadd("s", "a")
        before = incr_file(tmp_path).read_bytes()
        r.sadd("s", "a")
        r.set("k", "other", nx=True)
        r.delete("missing")
        r.srem("s", "zzz")
        r.zrem("s-missing", "a")
        r.zpopmin("s-missing")
        r.zadd("s-missing", {"a": 1}, xx=True, incr=True)
        r.get("k")
        assert incr_file(tmp_path).read_bytes() == before  # no change, nothing logged
        r.close()
    logged = before.split(b"\r\n")
    # SET ... EX and EXPIRE are logged with absolute times: SET ... PXAT and PEXPIREAT
    assert b"PXAT" in logged and b"PEXPIREAT" in logged
    assert not {b"EX", b"ex", b"EXPIRE", b"expire"} & set(logged)


def test_keys_that_expire_while_down_are_gone(tmp_path: Path) -> None:
    for args in (ALWAYS, ("--appendonly", "no")):
        with kv_on(tmp_path, *args) as daemon:
            r = client(daemon)
            r.flushall()
            r.set("short", "v", px=300)
            r.set("long", "v", ex=100)
            if args == ("--appendonly", "no"):
                r.save()
            r.close()
        time.sleep(0.5)
        with kv_on(tmp_path, *args) as daemon:
            r = client(daemon)
            assert r.get("short") is None
            assert r.exists("short") == 0
            assert r.get("long") == b"v" and r.ttl("long") > 90
            r.close()


def test_kv_starts_on_a_dump_written_by_redis_server(tmp_path: Path) -> None:
    with redis_on(str(tmp_path)) as peer:
        peer.rpush("list", *range(300))
        peer.sadd("ints", 1, 2, 3)
        peer.hset("hash", mapping={"a": "1"})
        peer.set("text", "x" * 100, ex=1000)
        peer.save()
        with kv_on(tmp_path) as daemon:
            same_dataset(peer, client(daemon))


def test_torn_tail_loads_up_to_the_last_whole_command(tmp_path: Path) -> None:
    with kv_on(tmp_path, *ALWAYS) as daemon:
        r = client(daemon)
        for i in range(20):
            r.rpush("list", i)
        r.close()
    path = incr_file(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-7])  # inside the last RPUSH
    with kv_on(tmp_path, *ALWAYS) as daemon:
        r = client(daemon)
        assert r.lrange("list", 0, -1) == [b"%d" % i for i in range(19)]
        r.rpush("list", "after")
        r.close()
    check = need("redis-check-aof")
    manifest = tmp_path / "appendonlydir" / "appendonly.aof.manifest"
    assert subprocess.run([check, str(manifest)], capture_output=True).returncode == 0


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))


def test_disk_errors_refuse_writes_with_misconf_and_recover(tmp_path: Path) -> None:
    """Past RLIMIT_FSIZE the journal write fails (EFBIG): writes get Redis's -MISCONF text,
    reads are served, and writes resume once the limit is raised (prlimit from here)."""
    daemon = kv_on(tmp_path, *ALWAYS)
    port = daemon.port
    daemon.process = subprocess.Popen(
        daemon.command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_limit_file_size,
    )
    try:
        wait_until(daemon._ready, 15.0, "kv")
        writer = redis.Redis(port=port, socket_timeout=1, protocol=2)
        writer.set("kept", "1")
        acknowledged = 0
        # The write whose journal write fails is not acknowledged (its reply waits for the
        # disk), and the ones after it are refused.
        with pytest.raises((redis.TimeoutError, redis.ResponseError)):
            for acknowledged in range(10_000):
                writer.set(f"key:{acknowledged}", "x" * 100)
        writer.close()
        r = redis.Redis(port=port, socket_timeout=10, protocol=2)
        with pytest.raises(redis.ResponseError) as refused:
            r.incr("counter")
        assert str(refused.value) == "MISCONF Errors writing to the AOF file: File too large"
        assert r.get("kept") == b"1"  # reads still served
        assert r.info("persistence")["aof_last_write_status"] == "err"
        resource.prlimit(
            daemon.process.pid,
            resource.RLIMIT_FSIZE,
            (resource.RLIM_INFINITY, resource.RLIM_INFINITY),
        )
        wait_until(lambda: r.info("persistence")["aof_last_write_status"] == "ok", 10.0)
        assert r.incr("counter") == 1
        r.close()
    finally:
        daemon.process.kill()
        daemon.process.wait()
        daemon.process.communicate()
    with kv_on(tmp_path, *ALWAYS) as again:
        r = client(again)
        assert r.get("counter") == b"1"
        assert all(r.exists(f"key:{n}") for n in range(acknowledged))
        r.close()


def test_the_fast_path_journals_what_python_does() -> None:
    """The C fast path appends each write it runs as its request in RESP, byte for byte
    what aof.encode gives; reads append nothing."""
    execute = native("residentd.apps.kv._fastpath", "execute")
    if execute is None:
        pytest.skip("the C fast path is not loaded")
    db = Keyspace()
    pipeline = [
        [b"SET", b"k", b"v" * 300],
        [b"GET", b"k"],
        [b"INCR", b"n"],
        [b"incrby", b"n", b"10"],
        [b"LPUSH", b"l", b"a", b"", b"c"],
        [b"MSET", b"a", b"1", b"b", b"2"],
        [b"MGET", b"a", b"b"],
        [b"PING"],
    ]
    journal = bytearray()
    assert execute(pipeline, 0, db, [], journal) == len(pipeline)
    writes = [argv for argv in pipeline if argv[0].upper() not in (b"GET", b"MGET", b"PING")]
    assert bytes(journal) == b"".join(encode(argv) for argv in writes)


def test_the_fast_path_journals_every_size_and_appends_to_what_is_there() -> None:
    """Sizes of one to five digits, arrays of more than nine items, a command larger than the
    fast path's in-place buffer, and pipelines appended one after another to a journal that
    already holds records (also after its head was cut, as a partly written journal is)."""
    execute = native("residentd.apps.kv._fastpath", "execute")
    if execute is None:
        pytest.skip("the C fast path is not loaded")
    db = Keyspace()
    pipelines = [
        [[b"SET", b"k%d" % size, b"v" * size]]
        for size in (0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 20000)
    ]
    pipelines.append([[b"MSET", *[b"m%d" % n for n in range(24)]]])
    pipelines.append([[b"RPUSH", b"l", *[b"x" * n for n in range(12)]], [b"INCR", b"n"]])
    pipelines += [[[b"SET", b"key:%d" % n, b"value"]] * 3 for n in range(200)]
    journal = bytearray(b"*1\r\n$4\r\nPING\r\n")
    del journal[:5]  # a head already written: the bytearray starts inside its allocation
    expected = bytes(journal)
    for pipeline in pipelines:
        assert execute(pipeline, 0, db, [], journal) == len(pipeline)
        expected += b"".join(encode(argv) for argv in pipeline)
        assert bytes(journal) == expected
    assert db.data[b"k20000"] == b"v" * 20000 and db.data[b"n"] == b"1"


def test_propagation_rules() -> None:
    db = Keyspace()
    db.data[b"k"] = value = b"v"
    db.expires[b"k"] = 1_900_000_000_000
    set_ex = [b"SET", b"k", value, b"EX", b"100"]
    assert propagate(db, set_ex, b"+OK\r\n", False) == [
        [b"SET", b"k", b"v", b"PXAT", b"1900000000000"]
    ]
    assert propagate(db, [b"SET", b"k", b"other", b"NX"], b"$-1\r\n", True) == []
    # A SET with options is journaled when it stored its value, which its reply tells (the
    # keyspace cannot: a short string read back from it is a new object, equal or not).
    assert propagate(db, [b"SET", b"k", b"v", b"NX"], b"$-1\r\n", True) == []  # equal: refused
    assert propagate(db, [b"SET", b"k", b"v", b"NX", b"GET"], b"$1\r\nv\r\n", True) == []
    assert propagate(db, [b"SET", b"k", b"v", b"XX", b"GET"], b"$1\r\nv\r\n", True) == [
        [b"SET", b"k", b"v", b"PXAT", b"1900000000000"]
    ]
    assert propagate(db, [b"SET", b"k", b"v", b"get"], b"$-1\r\n", False) == [
        [b"SET", b"k", b"v", b"PXAT", b"1900000000000"]
    ]
    db.data[b"new"] = b"n"
    assert propagate(db, [b"SET", b"new", b"n", b"NX", b"GET"], b"$-1\r\n", False) == [
        [b"SET", b"new", b"n"]
    ]
    assert propagate(db, [b"SET", b"gone", b"n", b"XX", b"GET"], b"$-1\r\n", False) == []
    # A time already past is stored as any other (Redis 7.0): the DEL comes when it expires.
    db.data[b"gone"] = b"n"
    db.expires[b"gone"] = 1
    assert propagate(db, [b"SET", b"gone", b"n", b"PXAT", b"1"], b"+OK\r\n", True) == [
        [b"SET", b"gone", b"n", b"PXAT", b"1"]
    ]
    db.delete(b"gone")
    assert propagate(db, [b"EXPIRE", b"k", b"5"], b":1\r\n", True) == [
        [b"PEXPIREAT", b"k", b"1900000000000"]
    ]
    assert propagate(db, [b"EXPIRE", b"gone", b"-1"], b":1\r\n", True) == [[b"DEL", b"gone"]]
    assert propagate(db, [b"SADD", b"s", b"a"], b":0\r\n", True) == []
    assert propagate(db, [b"LPOP", b"l", b"0"], b"*0\r\n", True) == []  # Redis's fast exit
    assert propagate(db, [b"RPOP", b"l", b"2"], b"*-1\r\n", False) == []
    assert propagate(db, [b"INCR", b"k"], b"-ERR value is not an integer\r\n", True) == []
    assert propagate(db, [b"GETSET", b"k", b"x"], b"$1\r\nv\r\n", True) == [[b"SET", b"k", b"x"]]
