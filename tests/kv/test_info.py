"""INFO as redis-server 7.0 writes it: the same sections in the same order for every way of
asking, each with at least Redis's fields, and the values redis-py's fixtures and common tools
read (``cluster_enabled``, ``role``, ``redis_version``, the keyspace line)."""

from __future__ import annotations

import re

import pytest
import redis

from .helpers import Raw, resp

# Sections whose fields name the commands and errors seen so far.
HISTORY = {"Commandstats", "Errorstats", "Latencystats"}
QUERIES: list[tuple[str, ...]] = [
    (), ("default",), ("all",), ("everything",), ("server", "clients"), ("CPU", "replication"),
    ("cluster",), ("keyspace",), ("nosuchsection",), ("default", "commandstats"),
    ("modules",), ("Server", "nosuch", "Keyspace"), ("everything", "server"),
]  # fmt: skip


def _sections(text: bytes) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.decode().split("\r\n"):
        if line.startswith("# "):
            current = sections.setdefault(line[2:], [])
        elif line:
            name, _, value = line.partition(":")
            current.append((name, value))
    return sections


def _info(port: int, *names: str) -> bytes:
    with Raw(port) as client:
        reply = client.call("INFO", *names)
    return reply[reply.index(b"\r\n") + 2 : -2]


@pytest.fixture
def both(kv_process: object, redis_port: int) -> dict[str, int]:
    ports = {"redis": redis_port, "kv": kv_process.port}  # type: ignore[attr-defined]
    for port in ports.values():
        with Raw(port) as client:
            client.send(resp("FLUSHALL") + resp("SET", "a", "1", "EX", "100") + resp("SET", "b", 2))
            assert client.replies(3) == [b"+OK\r\n"] * 3
    return ports


def test_sections_and_fields_match_redis(both: dict[str, int]) -> None:
    for query in QUERIES:
        theirs, ours = (_sections(_info(both[server], *query)) for server in ("redis", "kv"))
        assert list(ours) == list(theirs), query
    theirs, ours = (_sections(_info(both[server], "everything")) for server in ("redis", "kv"))
    for title, fields in theirs.items():
        if title in HISTORY:
            continue
        names = [name for name, _ in ours[title]]
        missing = [name for name, _ in fields if name not in names]
        assert not missing, f"# {title} lacks {missing}"
        common = [name for name in names if name in dict(fields)]
        assert common == [name for name, _ in fields], f"# {title} is in another order"
    values = {name: value for fields in ours.values() for name, value in fields}
    assert values["role"] == "master" and values["connected_slaves"] == "0"
    assert values["master_failover_state"] == "no-failover"
    assert re.fullmatch("[0-9a-f]{40}", values["master_replid"])
    assert re.fullmatch("[0-9a-f]{40}", values["run_id"])
    assert values["master_repl_offset"] == "0" and values["cluster_enabled"] == "0"
    assert values["redis_mode"] == "standalone"
    assert tuple(map(int, values["redis_version"].split("."))) >= (7, 0)
    match = re.fullmatch(r"keys=2,expires=1,avg_ttl=(\d+)", values["db0"])
    assert match is not None and 90_000 < int(match[1]) <= 100_000


def test_redis_py_reads_info(both: dict[str, int]) -> None:
    client = redis.Redis(port=both["kv"], protocol=2)
    info = client.info("everything")
    assert info["cluster_enabled"] == 0 and info["role"] == "master"
    assert info["db0"]["keys"] == 2 and info["db0"]["expires"] == 1
    assert client.info("cluster") == {"cluster_enabled": 0}
    assert float(client.info("cpu")["used_cpu_user"]) >= 0
    assert client.info("replication")["master_repl_offset"] == 0
    client.close()
