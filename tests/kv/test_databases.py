"""kv's 16 databases as Redis 7.0 has them: SELECT, MOVE, COPY ... DB, SWAPDB, FLUSHDB and
FLUSHALL, DBSIZE, KEYS, SCAN and RANDOMKEY per database, INFO's keyspace lines, compared with
a real redis-server's replies to the same two clients' steps; and the databases kept by the
AOF (``SELECT n`` before the records of another database) and by the RDB snapshot (one
SELECTDB section each), which a real redis-server loads as kv wrote them."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from residentd.apps.kv.persistence import rdb
from support import wait_until

from .helpers import KvProcess, KvThread, Raw, resp
from .persistence_peers import dataset, redis_on
from .scripts import compare

A, B = 0, 1

CASES: dict[str, list[object]] = {
    "select": [
        (A, "SET", "k", "zero"),
        (A, "SELECT", "1"),
        (A, "GET", "k"),
        (A, "SET", "k", "one"),
        (A, "DBSIZE"),
        (B, "GET", "k"),
        (A, "SELECT", "15"),
        (A, "SELECT", "16"),
        (A, "SELECT", "-1"),
        (A, "SELECT", "abc"),
        (A, "SELECT", "99999999999"),
        (A, "GET", "k"),  # still database 15
        (A, "SELECT", "1"),
        (A, "GET", "k"),
        (A, "KEYS", "*"),
        (A, "SCAN", "0"),
        (A, "RANDOMKEY"),
        (A, "SELECT", "2"),
        (A, "RANDOMKEY"),
        (A, "KEYS", "*"),
        (A, "EXISTS", "k"),
        (A, "CONFIG", "GET", "databases"),
    ],
    "move": [
        (A, "SET", "k", "v", "EX", "100"),
        (A, "RPUSH", "l", "a", "b"),
        (A, "MOVE", "k", "3"),
        (A, "EXISTS", "k"),
        (A, "MOVE", "k", "3"),  # gone from here
        (A, "MOVE", "l", "0"),
        (A, "MOVE", "l", "16"),
        (A, "MOVE", "l", "-1"),
        (A, "MOVE", "l", "x"),
        (A, "MOVE", "l", "99999999999"),
        (A, "SELECT", "3"),
        (A, "GET", "k"),
        (A, "TTL", "k"),
        (A, "SET", "l", "here"),
        (A, "SELECT", "0"),
        (A, "MOVE", "l", "3"),  # exists there
        (A, "LRANGE", "l", "0", "-1"),
        (A, "MOVE", "missing", "3"),
        (A, "MOVE", "k"),
    ],
    "copy-db": [
        (A, "SET", "k", "v", "EX", "100"),
        (A, "SADD", "s", "a"),
        (A, "COPY", "k", "k", "DB", "0"),
        (A, "COPY", "k", "k", "DB", "1"),
        (A, "COPY", "k", "k", "DB", "1"),
        (A, "COPY", "s", "k", "DB", "1", "REPLACE"),
        (A, "COPY", "k", "k", "DB", "16"),
        (A, "COPY", "k", "k", "DB", "x"),
        (A, "COPY", "k", "k", "DB"),
        (A, "COPY", "missing", "k2", "DB", "1"),
        (B, "SELECT", "1"),
        (B, "TYPE", "k"),
        (B, "SMEMBERS", "k"),
        (B, "TTL", "k"),
        (B, "COPY", "k", "k", "DB", "1"),
        (B, "COPY", "k", "k", "DB", "0", "REPLACE"),
        (A, "TYPE", "k"),
    ],
    "swapdb": [
        (A, "SET", "a", "in-zero"),
        (B, "SELECT", "1"),
        (B, "SET", "b", "in-one"),
        (B, "SET", "t", "v", "EX", "50"),
        (A, "SWAPDB", "0", "1"),
        (A, "GET", "a"),
        (A, "GET", "b"),
        (A, "TTL", "t"),
        (B, "GET", "a"),
        (B, "DBSIZE"),
        (A, "SWAPDB", "1", "1"),
        (A, "SWAPDB", "0", "16"),
        (A, "SWAPDB", "-1", "0"),
        (A, "SWAPDB", "x", "0"),
        (A, "SWAPDB", "0", "y"),
        (A, "SWAPDB", "99999999999", "0"),
        (A, "SWAPDB", "0", "99999999999"),
        (A, "SWAPDB", "0"),
        (A, "SWAPDB", "5", "0"),
        (A, "DBSIZE"),
        (B, "DBSIZE"),
    ],
    "flushes": [
        (A, "SET", "a", "1"),
        (B, "SELECT", "1"),
        (B, "SET", "b", "1"),
        (B, "FLUSHDB", "ASYNC"),
        (B, "DBSIZE"),
        (A, "DBSIZE"),
        (B, "SET", "b", "1"),
        (A, "FLUSHDB", "SYNC"),
        (A, "DBSIZE"),
        (B, "DBSIZE"),
        (A, "FLUSHDB", "NOW"),
        (A, "SET", "a", "1"),
        (A, "FLUSHALL", "ASYNC"),
        (A, "DBSIZE"),
        (B, "DBSIZE"),
    ],
    "info-keyspace": [
        (A, "MSET", "a", "1", "b", "2"),
        (A, "SELECT", "3"),
        (A, "SET", "c", "1"),
        (A, "SELECT", "12"),
        (A, "RPUSH", "l", "x"),
        (A, "INFO", "keyspace"),
        (A, "FLUSHDB"),
        (A, "INFO", "keyspace"),
    ],
    "transaction-across-dbs": [
        (A, "MULTI"),
        (A, "SET", "k", "0"),
        (A, "SELECT", "7"),
        (A, "SET", "k", "7"),
        (A, "EXEC"),
        (A, "GET", "k"),
        (B, "GET", "k"),
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_databases_match_redis(name: str, kv: KvThread, redis_port: int) -> None:
    compare(kv.port, redis_port, CASES[name])


def test_the_databases_setting_bounds_the_numbers() -> None:
    with KvThread(options={"databases": 2}) as small, Raw(small.port) as client:
        assert client.call("CONFIG", "GET", "databases") == resp("databases", "2")
        assert client.call("SELECT", "1") == b"+OK\r\n"
        assert client.call("SELECT", "2") == b"-ERR DB index is out of range\r\n"
        assert client.call("SWAPDB", "0", "2") == b"-ERR DB index is out of range\r\n"
        assert client.call("MOVE", "k", "2") == b"-ERR DB index is out of range\r\n"


def test_expiry_cycles_over_every_database(kv: KvThread) -> None:
    r = redis.Redis(port=kv.port, db=9, socket_timeout=5)
    r.set("short", "v", px=20)
    wait_until(lambda: kv.call(lambda: not kv.state.keyspace(9).data), 3.0, "active expiry")
    r.close()


# -- persistence ------------------------------------------------------------------------------


def fill(port: int) -> None:
    """Keys in databases 0, 3 and 5 (one with a time), moved and swapped between them, and a
    transaction that writes in two databases."""
    zero, three = (
        redis.Redis(port=port, db=n, socket_timeout=10, single_connection_client=True)
        for n in (0, 3)
    )
    zero.set("a", "0")
    zero.rpush("list", "x", "y")
    three.set("b", "3", ex=1000)
    three.hset("h", "f", "v")
    zero.move("list", 5)
    three.swapdb(3, 4)  # b and h now in 4
    three.sadd("s", "m")
    three.execute_command("COPY", "s", "s", "DB", "0")
    for command in (("MULTI",), ("SET", "t", "0"), ("SELECT", "6"), ("SET", "u", "6"), ("EXEC",)):
        zero.execute_command(*command)
    zero.close()
    three.close()


def datasets(port: int) -> dict[int, dict[bytes, tuple[bytes, object, int]]]:
    found = {}
    for n in range(16):
        client = redis.Redis(port=port, db=n, socket_timeout=10)
        if client.dbsize():
            found[n] = dataset(client)
        client.close()
    return found


def same(
    left: dict[int, dict[bytes, tuple[bytes, object, int]]],
    right: dict[int, dict[bytes, tuple[bytes, object, int]]],
) -> None:
    """The same keys and values in the same databases, times to live within the test's time."""
    assert {n: {k: v[:2] for k, v in keys.items()} for n, keys in left.items()} == {
        n: {k: v[:2] for k, v in keys.items()} for n, keys in right.items()
    }
    for n, keys in left.items():
        for key, (_, _, ttl) in keys.items():
            assert abs(ttl - right[n][key][2]) <= 10, (n, key)  # seconds pass meanwhile


EXPECTED = {0: {b"a", b"s", b"t"}, 3: {b"s"}, 4: {b"b", b"h"}, 5: {b"list"}, 6: {b"u"}}


def test_aof_and_rdb_keep_every_database_for_redis_server(tmp_path: Path) -> None:
    aof, snapshot = tmp_path / "aof", tmp_path / "rdb"
    aof.mkdir()
    snapshot.mkdir()
    args = ("--appendonly", "yes", "--appendfsync", "always")
    with KvProcess("--dir", str(aof), *args) as daemon:
        fill(daemon.port)
        r = redis.Redis(port=daemon.port, db=5, socket_timeout=10)
        assert r.bgrewriteaof()  # an RDB base of every database, then a new file
        wait_until(lambda: r.info("persistence")["aof_rewrite_in_progress"] == 0, 10.0)
        r.rpush("list", "z")  # database 5, first record of the new file
        live = datasets(daemon.port)
        r.save()
        r.close()
        (snapshot / "dump.rdb").write_bytes((aof / "dump.rdb").read_bytes())
    assert {n: set(keys) for n, keys in live.items()} == {**EXPECTED}
    saved = rdb.load_databases((snapshot / "dump.rdb").read_bytes())
    assert [db for db, _, _ in saved] == [0, 3, 4, 5, 6]
    for folder, options in ((aof, ("--appendonly", "yes")), (snapshot, ())):
        with redis_on(str(folder), *options) as peer:
            same(datasets(peer.connection_pool.connection_kwargs["port"]), live)
    with KvProcess("--dir", str(aof), *args) as again:
        same(datasets(again.port), live)
    with KvProcess("--dir", str(snapshot)) as again:
        same(datasets(again.port), live)


def test_kv_loads_redis_servers_databases(tmp_path: Path) -> None:
    with redis_on(str(tmp_path)) as peer:
        port = peer.connection_pool.connection_kwargs["port"]
        fill(port)
        theirs = datasets(port)
        peer.save()
    with KvProcess("--dir", str(tmp_path)) as daemon:
        same(datasets(daemon.port), theirs)


def blocked_across_databases(port: int) -> list[bytes]:
    """A BLPOP in database 3 is not served by a push in database 0, then is by one in 3; a
    SWAPDB that brings it a list serves the next one."""
    with Raw(port) as waiter, Raw(port) as pusher:
        pusher.call("FLUSHALL")
        got = [waiter.call("SELECT", "3")]
        waiter.send(resp("BLPOP", "k", "0"))
        got += [pusher.call("LPUSH", "k", "in-zero"), pusher.call("SELECT", "3")]
        got += [pusher.call("LPUSH", "k", "in-three"), *waiter.replies(1)]
        waiter.send(resp("BLPOP", "k", "0"))
        got += [pusher.call("SWAPDB", "0", "3"), *waiter.replies(1)]
        got += [pusher.call("DBSIZE"), pusher.call("SELECT", "0"), pusher.call("DBSIZE")]
        return got


def test_blocked_clients_wait_in_their_database(kv: KvThread, redis_port: int) -> None:
    assert blocked_across_databases(kv.port) == blocked_across_databases(redis_port)
