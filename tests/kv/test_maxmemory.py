"""maxmemory and the eviction policies (eviction.py, memory.py): the replies, errors, CONFIG
and INFO fields compared with redis-server's; each policy evicting the right keys from a kv
daemon (a child process, so the memory measured is kv's alone); evictions journaled,
notified, counted and seen by WATCH; and a flood of writes from several clients that never
takes the process's RSS past a bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from residentd.apps.kv import session as session_module

from .helpers import KvProcess, KvThread, Raw, resp

BIG = 64 * 1024  # a value malloc serves: its bytes are counted at once
MiB = 1024 * 1024

OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
DEFAULTS = {
    "maxmemory": "0",
    "maxmemory-policy": "noeviction",
    "maxmemory-samples": "5",
    "lfu-log-factor": "10",
    "notify-keyspace-events": "",
}


@pytest.fixture(scope="module")
def daemon() -> Iterator[KvProcess]:
    with KvProcess() as process:
        yield process


@pytest.fixture
def k(daemon: KvProcess) -> Iterator[redis.Redis]:
    """A client of the module's kv daemon, empty and without a limit."""
    client = redis.Redis(port=daemon.port, socket_timeout=10, protocol=2)
    client.config_set("maxmemory", 0)
    client.flushall()
    client.config_resetstat()
    yield client
    client.config_set("maxmemory", 0)
    for name, value in DEFAULTS.items():
        client.config_set(name, value)
    client.close()


@pytest.fixture
def both(daemon: KvProcess, redis_port: int) -> Iterator[list[int]]:
    """The kv daemon's port and redis-server's, both restored to no limit after."""
    yield [daemon.port, redis_port]
    for port in (daemon.port, redis_port):
        with Raw(port) as client:
            for name, value in DEFAULTS.items():
                client.call("CONFIG", "SET", name, value)
            client.call("FLUSHALL")


def limit_above_now(client: redis.Redis, room: int) -> int:
    """Set maxmemory to the used memory now plus ``room`` bytes; the limit."""
    limit = int(client.info("memory")["used_memory"]) + room
    client.config_set("maxmemory", limit)
    return limit


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def big(tag: str) -> bytes:
    return tag.encode() * (BIG // len(tag))


# -- replies compared with redis-server's ----------------------------------------------------------

SCRIPT_SET = "return redis.call('set', KEYS[1], 'v')"
SCRIPT_PCALL = "return redis.pcall('set', KEYS[1], 'v')"
SCRIPT_GET = "return redis.call('get', KEYS[1])"

UNDER_OOM = [
    ("SET", "k", "v"),
    ("GET", "a"),
    ("LPUSH", "l", "x"),
    ("DEL", "a"),
    ("SET", "a", "1"),
    ("INCR", "a"),
    ("MULTI",),
    ("GET", "a"),
    ("SET", "x", "y"),
    ("EXEC",),
    ("MULTI",),
    ("EXEC",),
    ("MULTI",),
    ("DISCARD",),
    ("EVAL", SCRIPT_SET, "1", "s"),
    ("EVAL", SCRIPT_PCALL, "1", "s"),
    ("EVAL", SCRIPT_GET, "1", "a"),
    ("OBJECT", "FREQ", "a"),
    ("CONFIG", "SET", "maxmemory", "0"),
    ("SET", "k", "v"),
]


def test_refusals_under_noeviction_are_redis_s(both: list[int]) -> None:
    """Over the limit with noeviction: denyoom commands (and inside MULTI, any queued one)
    refused with Redis's exact -OOM, EXEC aborted, scripts' writes refused, reads served."""
    outcome = []
    for port in both:
        with Raw(port) as client:
            client.call("FLUSHALL")
            client.call("SET", "a", "7")
            assert client.call("CONFIG", "SET", "maxmemory", "1") == b"+OK\r\n"
            client.send(b"".join(resp(*command) for command in UNDER_OOM))
            outcome.append(client.replies(len(UNDER_OOM)))
    assert outcome[0] == outcome[1]
    assert outcome[0][0] == OOM


def test_config_is_redis_s(both: list[int]) -> None:
    commands = [
        ("CONFIG", "GET", "maxmemory*"),
        ("CONFIG", "GET", "lfu*"),
        ("CONFIG", "SET", "maxmemory", "100mb"),
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "1gb"),
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "3k"),
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "maxmemory", "-1"),
        ("CONFIG", "SET", "maxmemory", "1x"),
        ("CONFIG", "SET", "maxmemory-policy", "bogus"),
        ("CONFIG", "SET", "maxmemory-policy", "ALLKEYS-LRU"),
        ("CONFIG", "GET", "maxmemory-policy"),
        ("CONFIG", "SET", "maxmemory-samples", "0"),
        ("CONFIG", "SET", "maxmemory-samples", "x"),
        ("CONFIG", "SET", "maxmemory-samples", "10"),
        ("CONFIG", "SET", "maxmemory-eviction-tenacity", "101"),
        ("CONFIG", "SET", "maxmemory-eviction-tenacity", "100"),
        ("CONFIG", "SET", "lfu-log-factor", "-1"),
        ("CONFIG", "SET", "lfu-decay-time", "5"),
        ("CONFIG", "GET", "maxmemory*"),
        ("CONFIG", "GET", "lfu*"),
        ("CONFIG", "SET", "maxmemory-eviction-tenacity", "10", "lfu-decay-time", "1"),
        ("CONFIG", "SET", "maxmemory", "0"),
    ]
    outcome = []
    for port in both:
        client = redis.Redis(port=port, protocol=2)
        replies: list[object] = []
        for command in commands:
            try:
                reply = client.execute_command(*command)
                if command[1] == "GET":  # as a dict: Redis answers in its table's order
                    reply = dict(zip(reply[::2], reply[1::2], strict=True))
                replies.append(reply)
            except redis.exceptions.ResponseError as exc:
                replies.append(str(exc))
        outcome.append(replies)
        client.close()
    assert outcome[0] == outcome[1]


def test_info_fields_are_redis_s(both: list[int]) -> None:
    infos = []
    for port in both:
        client = redis.Redis(port=port, protocol=2)
        client.config_set("maxmemory", "100mb")
        client.config_set("maxmemory-policy", "volatile-ttl")
        infos.append(client.info())
        client.close()
    kv, real = infos
    for field in ("maxmemory", "maxmemory_human", "maxmemory_policy"):
        assert kv[field] == real[field], field
    for field in ("evicted_keys", "used_memory", "used_memory_peak", "mem_fragmentation_ratio"):
        assert field in kv and field in real
    assert kv["used_memory_peak"] >= kv["used_memory"] > 1_000_000
    assert kv["used_memory_rss"] / kv["used_memory"] == pytest.approx(
        kv["mem_fragmentation_ratio"], abs=0.01
    )


def test_object_freq_and_idletime_are_redis_s(both: list[int]) -> None:
    """LFU counters as Redis counts them (lfu-log-factor 0: every access counts; EXISTS and
    OBJECT do not touch, TOUCH does), and the errors of the other kind's subcommand."""
    commands = [
        ("OBJECT", "FREQ", "k"),
        ("DEL", "k"),
        ("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"),
        ("CONFIG", "SET", "maxmemory", "1gb"),
        ("CONFIG", "SET", "lfu-log-factor", "0"),
        ("SET", "k", "v"),
        ("OBJECT", "FREQ", "k"),
        *[("GET", "k")] * 10,
        ("EXISTS", "k"),
        ("OBJECT", "FREQ", "k"),
        ("TOUCH", "k"),
        ("OBJECT", "FREQ", "k"),
        ("APPEND", "k", "w"),
        ("OBJECT", "FREQ", "k"),
        ("OBJECT", "IDLETIME", "k"),
        ("OBJECT", "FREQ", "nokey"),
        ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"),
        ("OBJECT", "FREQ", "k"),
    ]
    outcome = []
    for port in both:
        with Raw(port) as client:
            client.call("SET", "k", "v")
            outcome.append([client.call(*command) for command in commands])
    assert outcome[0] == outcome[1]
    assert outcome[0][6] == b":5\r\n" and outcome[0][-5] == b":17\r\n"


def test_idletime_is_the_time_since_the_last_access(k: redis.Redis) -> None:
    k.config_set("maxmemory-policy", "allkeys-lru")
    k.config_set("maxmemory", "1gb")
    k.set("old", "v")
    k.set("new", "v")
    time.sleep(1.6)
    k.get("new")
    assert k.object("idletime", "old") >= 1
    assert k.object("idletime", "new") == 0


def test_access_data_is_kept_only_under_a_limit_and_an_lru_or_lfu_policy(
    kv: KvThread, r: redis.Redis
) -> None:
    r.set("k", "v")
    r.config_set("maxmemory-policy", "allkeys-lru")
    assert kv.state.db.access is None  # no limit: nothing kept, nothing paid
    r.config_set("maxmemory", "1gb")
    access = kv.state.db.access
    assert access is not None and list(access) == [b"k"]
    r.set("new", "v")
    r.get("k")
    assert list(access) == [b"new", b"k"]  # in access order
    r.config_set("maxmemory-policy", "allkeys-random")
    assert kv.state.db.access is None
    r.config_set("maxmemory", 0)
    r.config_set("maxmemory-policy", "noeviction")


# -- the policies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["volatile-lru", "volatile-lfu", "volatile-random"])
def test_volatile_policies_spare_keys_without_ttl(k: redis.Redis, policy: str) -> None:
    k.config_set("maxmemory-policy", policy)
    limit_above_now(k, 3 * MiB)
    for i in range(20):
        k.set(f"p:{i}", big("p"))
    written = []
    for i in range(80):  # 5 MiB of volatile keys into 2 MiB of room
        k.set(f"v:{i}", big("v"), ex=1000)
        written.append(f"v:{i}")
    assert k.info("stats")["evicted_keys"] > 10
    assert all(k.exists(f"p:{i}") for i in range(20))
    # Once no key has a time to live, writes are refused.
    refused = None
    for i in range(200):
        try:
            k.set(f"q:{i}", big("q"))
        except redis.exceptions.OutOfMemoryError:
            refused = i
            break
    assert refused is not None
    assert not any(k.exists(key) for key in written[:-1])
    assert all(k.exists(f"q:{i}") for i in range(refused))
    assert all(k.exists(f"p:{i}") for i in range(20))


def test_volatile_ttl_evicts_the_nearest_expiry_first(k: redis.Redis) -> None:
    k.config_set("maxmemory-policy", "volatile-ttl")
    for i in range(30):
        k.set(f"near:{i}", big("n"), ex=1000 + i)
        k.set(f"far:{i}", big("f"), ex=100_000 + i)
    limit_above_now(k, -(20 * BIG))
    k.set("trigger", "x")
    evicted = k.info("stats")["evicted_keys"]
    assert evicted >= 15
    assert all(k.exists(f"far:{i}") for i in range(30))
    assert sum(k.exists(f"near:{i}") for i in range(30)) == 30 - evicted


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu"])
def test_a_hot_set_read_repeatedly_survives_a_flood(k: redis.Redis, policy: str) -> None:
    k.config_set("maxmemory-policy", policy)
    value = b"h" * 16384
    for i in range(50):
        k.set(f"hot:{i}", value)
    limit_above_now(k, 3 * MiB)
    pipe = k.pipeline(transaction=False)
    for j in range(400):  # 6 MiB of cold keys written once
        pipe.set(f"cold:{j}", value)
        if j % 4 == 0:
            for i in range(50):
                pipe.get(f"hot:{i}")
            pipe.execute()
    pipe.execute()
    assert k.info("stats")["evicted_keys"] > 150
    assert sum(k.exists(f"hot:{i}") for i in range(50)) >= 45


def test_large_values_over_many_small_keys_stay_under_the_limit(k: redis.Redis) -> None:
    """Each 1 MiB write needs thousands of small keys evicted: more than the eviction's time
    limit (tenacity 10: 500 us) lets Python do, so it goes on until close to the limit."""
    k.config_set("maxmemory-policy", "allkeys-lru")
    pipe = k.pipeline(transaction=False)
    for i in range(30_000):
        pipe.set(f"s:{i}", "x" * 50)
    pipe.execute()
    limit = limit_above_now(k, 0)
    for i in range(16):
        k.set(f"big:{i}", b"b" * MiB)
    assert k.info("memory")["used_memory"] <= limit + MiB + 512 * 1024
    assert k.info("stats")["evicted_keys"] > 20_000


def test_allkeys_random_evicts_any_key(k: redis.Redis) -> None:
    k.config_set("maxmemory-policy", "allkeys-random")
    limit = limit_above_now(k, 2 * MiB)
    for i in range(100):
        k.set(f"r:{i}", big("r"), ex=1000 if i % 2 else None)
    evicted = k.info("stats")["evicted_keys"]
    assert evicted >= 60
    assert k.dbsize() == 100 - evicted
    assert k.info("memory")["used_memory"] < limit + 2 * BIG


def test_flushall_makes_room_again(k: redis.Redis) -> None:
    limit_above_now(k, MiB)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(100):
            k.set(f"f:{i}", big("f"))
    k.flushall()
    assert k.set("after", big("a"))


# -- what an eviction does -------------------------------------------------------------------------


def test_an_evicted_watched_key_fails_exec(k: redis.Redis, daemon: KvProcess) -> None:
    k.config_set("maxmemory-policy", "volatile-ttl")
    k.set("watched", big("w"), ex=100)
    watcher = redis.Redis(port=daemon.port, protocol=2)
    pipe = watcher.pipeline()
    pipe.watch("watched")
    limit_above_now(k, 4 * BIG)
    for i in range(10):
        k.set(f"p:{i}", big("p"))
        if not k.exists("watched"):
            break
    assert not k.exists("watched")
    k.config_set("maxmemory", 0)
    pipe.multi()
    pipe.set("x", "1")
    with pytest.raises(redis.exceptions.WatchError):
        pipe.execute()
    watcher.close()


def test_evictions_are_counted_notified_and_journaled(tmp_path: Path) -> None:
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes") as kv:
        client = redis.Redis(port=kv.port, protocol=2)
        client.config_set("notify-keyspace-events", "Ee")
        listener = client.pubsub()
        listener.subscribe("__keyevent@0__:evicted")
        assert listener.get_message(timeout=2)["type"] == "subscribe"
        client.config_set("maxmemory-policy", "allkeys-random")
        limit_above_now(client, 2 * MiB)
        written = [f"e:{i}" for i in range(60)]
        for key in written:
            client.set(key, big(key))
        client.config_set("maxmemory", 0)
        kept = {text(key) for key in client.keys("*")}
        evicted = set()
        while message := listener.get_message(timeout=1):
            evicted.add(text(message["data"]))
        assert client.info("stats")["evicted_keys"] == len(evicted) > 20
        assert evicted == set(written) - kept
        values = {key: client.get(key) for key in kept}
        listener.close()
        client.close()
    with KvProcess("--dir", str(tmp_path), "--appendonly", "yes") as again:
        client = redis.Redis(port=again.port, protocol=2)
        assert {text(key): client.get(key) for key in client.keys("*")} == values
        client.close()


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-random"])
def test_a_flood_from_several_clients_stays_under_the_limit(policy: str) -> None:
    """Four clients write 160 MB with 48 MiB of room under the limit: the process's RSS never
    passes its RSS at start plus that room plus 24 MiB (the slack pymalloc and malloc keep,
    the clients' buffers, and what one measure interval lets through). Under allkeys-random
    the C fast path runs the writes while the memory is far from the limit."""
    room = 48 * MiB
    with KvProcess("--maxmemory", "1gb", "--maxmemory-policy", policy) as kv:
        client = redis.Redis(port=kv.port, protocol=2)
        assert client.config_get("maxmemory") == {"maxmemory": "1073741824"}
        started = client.info("memory")
        client.config_set("maxmemory", started["used_memory"] + room)
        process = psutil.Process(kv.process.pid if kv.process else 0)
        rss_start = process.memory_info().rss
        peak = rss_start
        value = b"v" * 2048

        def write(tag: int) -> None:
            writer = redis.Redis(port=kv.port, protocol=2)
            pipe = writer.pipeline(transaction=False)
            for i in range(20_000):
                pipe.set(f"{tag}:{i}", value)
                if i % 100 == 99:
                    pipe.execute()
            writer.close()

        writers = [threading.Thread(target=write, args=(tag,)) for tag in range(4)]
        for writer in writers:
            writer.start()
        while any(writer.is_alive() for writer in writers):
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)
        info = client.info()
        client.close()
    assert info["evicted_keys"] > 40_000
    assert peak <= rss_start + room + 24 * MiB, (peak - rss_start) / MiB


@pytest.mark.skipif(session_module.execute_fast is None, reason="the C fast path is not loaded")
def test_the_fast_path_runs_only_far_from_the_limit_and_without_access_stamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast = session_module.execute_fast
    assert fast is not None
    calls: list[int] = []

    def counting(commands: list[list[bytes]], start: int, *rest: Any) -> int:
        calls.append(len(commands) - start)
        return fast(commands, start, *rest)

    monkeypatch.setattr(session_module, "execute_fast", counting)
    # serve_chunk runs the C execute itself (it declines every chunk while maxmemory is set):
    # without it each pipeline goes through on_messages and the counted execute_fast.
    monkeypatch.setattr(session_module.KvSession, "serve_chunk", None)
    with KvThread() as kv, Raw(kv.port) as client:

        def ran_in_c(*command: str) -> bool:
            calls.clear()
            client.call(*command)
            return calls == [1]

        client.call("CONFIG", "SET", "maxmemory-policy", "allkeys-random")
        info = client.call("INFO", "memory")
        used = int(info.split(b"used_memory:")[1].split(b"\r\n")[0])
        client.call("CONFIG", "SET", "maxmemory", str(used + 64 * MiB))
        assert ran_in_c("SET", "a", "1")
        assert ran_in_c("GET", "a")
        client.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")  # stamps each access
        assert not ran_in_c("GET", "a")
        client.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
        client.call("CONFIG", "SET", "maxmemory", str(used + 64 * 1024))  # near: Python decides
        assert not ran_in_c("SET", "b", "2")
        client.call("CONFIG", "SET", "maxmemory", "0")
        assert ran_in_c("SET", "c", "3")
