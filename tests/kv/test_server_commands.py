"""Server and connection commands with redis-py: PING, ECHO, SELECT, DBSIZE, FLUSHDB,
FLUSHALL, INFO, CONFIG GET, CLIENT, COMMAND and HELLO."""

from __future__ import annotations

import re
import shutil
from typing import Any

import hiredis
import pytest
import redis
from redis.exceptions import ResponseError

from residentd import speedups

from .helpers import KvThread, Raw


def test_ping_echo_select(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.execute_command("SELECT", 0) is True
    with pytest.raises(ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", 16)


def test_dbsize_and_flushes(r: redis.Redis) -> None:
    r.mset({"a": 1, "b": 2})
    r.rpush("l", 1)
    assert r.dbsize() == 3
    assert r.flushdb() is True
    assert r.dbsize() == 0
    r.set("a", 1)
    assert r.flushall(asynchronous=True) is True
    assert r.dbsize() == 0


def test_info_sections(r: redis.Redis, kv: KvThread) -> None:
    r.set("a", 1, ex=100)
    r.get("a")
    r.get("missing")
    info = r.info()
    assert info["redis_mode"] == "standalone"
    # redis-py reads a comma-separated value as a list: the C modules this process loaded,
    # kv's own at least (others, such as the HTTP head reader, once something imported them).
    if shutil.which("cc") and not speedups.DISABLED:
        assert info["residentd_c_speedups"] == sorted(speedups.loaded)
        assert {"connection_core", "fastpath", "lines", "resp_reader"} <= set(speedups.loaded)
    else:
        assert info["residentd_c_speedups"] == "none"
    assert info["tcp_port"] == kv.port
    assert info["connected_clients"] >= 1
    assert info["used_memory"] > 1_000_000
    assert info["keyspace_hits"] >= 1
    assert info["keyspace_misses"] >= 1
    assert info["total_commands_processed"] > 3
    db0 = info["db0"]
    assert db0["keys"] == 1 and db0["expires"] == 1 and 90_000 < db0["avg_ttl"] <= 100_000
    assert set(r.info("memory")) >= {"used_memory", "used_memory_human", "used_memory_rss"}
    assert "redis_version" not in r.info("stats")
    assert r.info("nosuchsection") == {}


def test_config_get(r: redis.Redis, kv: KvThread) -> None:
    assert r.config_get("save") == {"save": ""}
    assert r.config_get("appendonly") == {"appendonly": "no"}
    assert r.config_get("maxclients") == {"maxclients": str(kv.server.limits.max_connections)}
    assert r.config_get("proto-max-bulk-len") == {"proto-max-bulk-len": str(512 * 1024 * 1024)}
    assert set(r.config_get("max*")) == {
        "maxclients",
        "maxmemory",
        "maxmemory-policy",
        "maxmemory-samples",
        "maxmemory-eviction-tenacity",
        "maxmemory-clients",
    }
    assert r.config_get("nothing") == {}
    with pytest.raises(
        ResponseError,
        match=re.escape("Unknown option or number of arguments for CONFIG SET - 'nothing'"),
    ):
        r.config_set("nothing", "")


def test_client_commands(r: redis.Redis) -> None:
    assert r.client_getname() is None
    assert r.client_setname("worker-1") is True
    assert r.client_getname() == "worker-1"
    assert isinstance(r.client_id(), int)
    with pytest.raises(ResponseError, match="Client names cannot contain spaces"):
        r.client_setname("bad name")


def test_client_ids_are_distinct(kv: KvThread) -> None:
    with Raw(kv.port) as a, Raw(kv.port) as b:
        assert a.call("CLIENT", "ID") != b.call("CLIENT", "ID")


def test_command_introspection(kv: KvThread) -> None:
    with Raw(kv.port) as client:

        def call(*args: str) -> Any:
            reader = hiredis.Reader()
            reader.feed(client.call(*args))
            return reader.gets()

        count = call("COMMAND", "COUNT")
        names = call("COMMAND", "LIST")  # subcommands too (config|get), as in Redis
        assert count == len([name for name in names if b"|" not in name]) > 55
        assert b"config|get" in names
        info = call("COMMAND", "INFO", "get", "nosuch")
        assert info[0][:6] == [b"get", 2, [b"readonly", b"fast"], 1, 1, 1]
        assert info[1] is None
        docs = call("COMMAND", "DOCS", "set")
        assert docs[0] == b"set"
        fields = dict(zip(docs[1][::2], docs[1][1::2], strict=True))
        assert fields[b"group"] == b"string"
        assert b"key" in fields[b"summary"]
        assert len(call("COMMAND")) == count
        assert b"subcommands" in call("COMMAND", "DOCS", "config")[1]


def test_hello_speaks_resp2_and_resp3(kv: KvThread) -> None:
    with Raw(kv.port) as client:
        reply = client.call("HELLO", "2", "SETNAME", "me")
        assert reply.startswith(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n")
        assert client.call("CLIENT", "GETNAME") == b"$2\r\nme\r\n"
        assert client.call("HELLO", "3").startswith(b"%7\r\n$6\r\nserver\r\n")
        assert client.call("HELLO", "4") == b"-NOPROTO unsupported protocol version\r\n"
    assert redis.Redis(port=kv.port, protocol=3).ping() is True
