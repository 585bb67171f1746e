"""The persistence commands and settings as a Redis client sees them: SAVE, BGSAVE, LASTSAVE,
BGREWRITEAOF, INFO persistence, CONFIG GET and CONFIG SET, with Redis 7.0's replies."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from residentd.apps.kv.persistence import rdb
from support import wait_until

from .helpers import KvProcess, Raw, resp
from .persistence_peers import redis_on


def test_save_bgsave_lastsave_and_info(tmp_path: Path) -> None:
    with KvProcess("--dir", str(tmp_path), "--dbfilename", "snap.rdb") as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        info = r.info("persistence")
        assert info["aof_enabled"] == 0 and info["rdb_bgsave_in_progress"] == 0
        assert info["aof_last_write_status"] == "ok"
        r.set("a", "1")
        first = r.lastsave()
        time.sleep(1.1)
        assert r.save() is True
        assert r.lastsave() > first
        assert rdb.load((tmp_path / "snap.rdb").read_bytes())[0] == {b"a": b"1"}
        r.rpush("l", "x", "y")
        with Raw(daemon.port) as raw:
            assert raw.call("BGSAVE") == b"+Background saving started\r\n"
        wait_until(lambda: r.info("persistence")["rdb_bgsave_in_progress"] == 0, 10.0)
        assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
        assert set(rdb.load((tmp_path / "snap.rdb").read_bytes())[0]) == {b"a", b"l"}
        with pytest.raises(redis.ResponseError, match="appendonly is no"):
            r.bgrewriteaof()
        r.close()


def test_config_get_and_set(tmp_path: Path) -> None:
    with KvProcess("--dir", str(tmp_path)) as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        assert r.config_get("appendonly") == {"appendonly": "no"}
        assert r.config_get("dir") == {"dir": str(tmp_path.resolve())}
        assert r.config_get("appendfilename")["appendfilename"] == "appendonly.aof"
        assert r.config_get("dbfilename")["dbfilename"] == "dump.rdb"
        r.set("before", "1")
        assert r.config_set("appendonly", "yes") is True
        assert r.info("persistence")["aof_enabled"] == 1
        assert (tmp_path / "appendonlydir" / "appendonly.aof.manifest").exists()
        assert r.config_set("appendfsync", "always") is True
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
        assert r.config_set("save", "900 1 300 10") is True
        assert r.config_get("save") == {"save": "900 1 300 10"}
        r.incr("after")
        for name, value, reason in [
            ("appendfsync", "sometimes", "argument(s) must be one of the following: "),
            ("save", "1 2 3", "Invalid save parameters"),
            ("dir", "/elsewhere", "can't set protected config"),
            ("appendfilename", "x.aof", "can't set immutable config"),
        ]:
            with pytest.raises(redis.ResponseError) as refused:
                r.config_set(name, value)
            assert str(refused.value).startswith(
                f"CONFIG SET failed (possibly related to argument '{name}') - {reason}"
            )
        assert r.config_get("appendfsync") == {"appendfsync": "always"}
        r.close()
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes") as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        assert r.get("before") == b"1" and r.get("after") == b"1"
        r.close()


@pytest.mark.parametrize("fsync", ["always", "everysec"])
def test_appendonly_turned_on_inside_a_pipeline_journals_each_write_once(
    tmp_path: Path, fsync: str
) -> None:
    """With save points on, the writes are journaled into a buffer before there is a journal
    file. CONFIG SET appendonly yes in the same pipeline writes a base that holds them already:
    they must not also reach the new journal, or a restart applies them twice."""
    options = ["--dir", str(tmp_path), "--save", "900 1", "--appendfsync", fsync]
    with KvProcess(*options) as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        pipe = r.pipeline(transaction=False)  # one write: the commands arrive in one read
        pipe.incr("n").rpush("l", "a").config_set("appendonly", "yes").incr("n")
        assert pipe.execute() == [1, 1, True, 2]
        r.close()
        daemon.process.kill()  # type: ignore[union-attr]
        daemon.process.wait(10)  # type: ignore[union-attr]
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes") as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        assert r.get("n") == b"2" and r.lrange("l", 0, -1) == [b"a"]
        r.close()


# Commands that each make one change in Redis too (LPUSH of one element, HSET of one field).
CHANGES: list[tuple[str, ...]] = [
    *[("SET", f"k{i % 5}", "v") for i in range(16)], ("INCR", "n"), ("INCRBY", "n", "5"),
    ("SET", "k0", "x", "NX"), ("GET", "k0"), ("DEL", "missing"), ("EXPIRE", "k1", "100"),
    ("LPUSH", "l", "a"), ("HSET", "h", "f", "v"), ("SADD", "s", "a"), ("SADD", "s", "a"),
    ("DEL", "k2"), ("SELECT", "1"), ("SET", "in-1", "v"), ("SELECT", "0"),
]  # fmt: skip


@pytest.mark.parametrize(
    "options",
    [("--save", "3600 100000"), ("--appendonly", "yes"), ("--appendfsync", "always")],
    ids=["save points", "everysec", "always"],
)
def test_a_pipeline_counts_each_write_as_redis_does(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    """rdb_changes_since_last_save, which the save points read, counts every command that
    changed something, not every pipeline."""
    if options[0] == "--appendfsync":
        options = ("--appendonly", "yes", *options)
    pipeline = b"".join(resp(*command) for command in CHANGES)
    counted = []
    (tmp_path / "redis").mkdir()
    with redis_on(str(tmp_path / "redis"), *options) as peer:
        counted.append(_changes(peer, peer.connection_pool.connection_kwargs["port"], pipeline))
    with KvProcess("--dir", str(tmp_path), *options) as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
        counted.append(_changes(r, daemon.port, pipeline))
        r.close()
    assert counted[1] == counted[0] == (24, 25)


def _changes(client: redis.Redis, port: int, pipeline: bytes) -> tuple[int, int]:
    """The changes counted after ``pipeline``, then after a SET of a key that the active
    expiry cycle deletes soon after: that deletion is not a change."""
    with Raw(port) as raw:
        raw.send(pipeline)
        raw.replies(len(CHANGES))
    after_pipeline = client.info("persistence")["rdb_changes_since_last_save"]
    client.set("soon", "v", px=1)
    wait_until(lambda: client.info("stats")["expired_keys"] > 0, 5.0, "the expiry cycle")
    return after_pipeline, client.info("persistence")["rdb_changes_since_last_save"]


@pytest.mark.parametrize("fsync", ["everysec", "always"])
def test_pipelines_read_in_one_iteration_each_count_and_journal_their_writes(
    tmp_path: Path, fsync: str
) -> None:
    """Twenty connections send a pipeline of 16 SETs while a slow SORT holds the loop, so
    their pipelines are served in one iteration: the first schedules the commit, and with
    ``everysec`` the C fast path counts the others itself instead of calling ``wrote``. Every
    write is counted for the save points and journaled exactly once, and with ``always``
    every pipeline's replies still wait for the fsync (they arrive, all of them)."""
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes", "--appendfsync", fsync) as daemon:
        r = redis.Redis(port=daemon.port, socket_timeout=30, protocol=2)
        for start in range(0, 200_000, 10_000):
            r.rpush("big", *range(start, start + 10_000))
        before = r.info("persistence")["rdb_changes_since_last_save"]
        slow, clients = Raw(daemon.port), [Raw(daemon.port) for _ in range(20)]
        try:
            slow.send(resp("SORT", "big", "LIMIT", "0", "1"))
            time.sleep(0.02)  # the SORT has the loop: what follows waits in the sockets
            for n, client in enumerate(clients):
                client.send(b"".join(resp("SET", f"p{n}-{i}", str(i)) for i in range(16)))
            assert slow.replies(1) == [b"*1\r\n$1\r\n0\r\n"]
            for client in clients:
                assert client.replies(16) == [b"+OK\r\n"] * 16
        finally:
            for raw in [slow, *clients]:
                raw.sock.close()
        assert r.info("persistence")["rdb_changes_since_last_save"] == before + 320
        assert r.dbsize() == 321
        r.close()
    journaled = b"".join(path.read_bytes() for path in tmp_path.glob("appendonlydir/*.incr.aof"))
    for n in range(20):
        for i in range(16):
            assert journaled.count(resp("SET", f"p{n}-{i}", str(i))) == 1
