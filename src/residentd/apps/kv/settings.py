"""kv's settings, under Redis's names (``proto-max-bulk-len`` is ``proto_max_bulk_len``).

``KvSettings`` are the number of databases, the protocol's limits (``proto_max_bulk_len``,
``client_query_buffer_limit``), the pub/sub output limits, ``requirepass``,
``notify_keyspace_events``, and ``maxmemory`` with its eviction policy's settings
(eviction.py); ``KvFileSettings`` are the persistence settings kv adds to residentd.state's
(whose ``dir``, ``appendfsync``, ``save`` and ``auto_aof_rewrite_*`` kv takes as they are):
Redis's ``appendonly`` is a ``yes``/``no`` word where residentd's on/off settings are flags,
so kv declares it itself. CONFIG GET and CONFIG SET read and change the values in
force by these names (commands/server.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from residentd.apps.kv.notifications import SETTING_ERROR, parse_flags
from residentd.codecs.resp import DEFAULT_MAX_BULK_LEN, DEFAULT_MAX_QUERY_BUFFER
from residentd.settings import setting

MiB = 1024 * 1024
DEFAULT_APPENDFILENAME = "appendonly.aof"
DEFAULT_DBFILENAME = "dump.rdb"


def _check_notify(value: str) -> str | None:
    return SETTING_ERROR if parse_flags(value) is None else None


# Redis's memtoull units: k/m/g are powers of 1000, kb/mb/gb of 1024; b and none are bytes.
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3}
_UNITS["gb"] = 1024**3
MEMORY_ERROR = "argument must be a memory value"
POLICIES = (
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "noeviction",
)


def parse_memory(value: str) -> int | None:
    """A memory value as Redis's ``memtoull`` reads it (``512mb``, ``1gb``, ``100``)."""
    digits = value.rstrip("bkmgBKMG")
    unit = _UNITS.get(value[len(digits) :].lower())
    if unit is None or not digits.isdigit():
        return None
    return int(digits) * unit


def check_memory(value: str) -> str | None:
    return MEMORY_ERROR if parse_memory(value) is None else None


def check_policy(value: str) -> str | None:
    if value.lower() in POLICIES:
        return None
    return f"argument(s) must be one of the following: {', '.join(POLICIES)}"


def _check_tenacity(value: int) -> str | None:
    return None if 0 <= value <= 100 else "argument must be between 0 and 100 inclusive"


@dataclass(frozen=True, slots=True)
class KvSettings:
    databases: int = setting(
        16,
        "number of databases SELECT, MOVE, COPY ... DB and SWAPDB may use (Redis's databases)",
        minimum=1,
    )
    proto_max_bulk_len: int = setting(
        DEFAULT_MAX_BULK_LEN,
        "longest bulk string a request may carry, in bytes (Redis's proto-max-bulk-len)",
        reload=True,
        minimum=1,
    )
    client_query_buffer_limit: int = setting(
        DEFAULT_MAX_QUERY_BUFFER,
        "bytes of a partial request a client may hold, the bulk being read included, before "
        "it is closed (Redis's client-query-buffer-limit); max_input_buffer bounds only what "
        "is held beyond that bulk",
        reload=True,
        minimum=1,
    )
    pubsub_output_hard_limit: int = setting(
        32 * MiB,
        "pub/sub client output, in bytes, past which it is dropped at once (0: no limit)",
        reload=True,
        minimum=0,
    )
    pubsub_output_soft_limit: int = setting(
        8 * MiB,
        "pub/sub client output, in bytes, it may stay above only for "
        "pubsub_output_soft_seconds (0: no limit)",
        reload=True,
        minimum=0,
    )
    pubsub_output_soft_seconds: int = setting(
        60,
        "seconds a pub/sub client may stay above pubsub_output_soft_limit",
        reload=True,
        minimum=0,
    )
    requirepass: str = setting(
        "",
        "password of the default user: clients must AUTH with it before any other command "
        "(empty: none; Redis's requirepass)",
        reload=True,
        secret=True,
    )
    notify_keyspace_events: str = setting(
        "",
        "keyspace notifications to publish, as Redis's class letters (AKE, Kx, ...; empty: "
        "none; Redis's notify-keyspace-events)",
        reload=True,
        check=_check_notify,
    )
    busy_reply_threshold: int = setting(
        5000,
        "milliseconds a Lua script may run before other clients are answered -BUSY and "
        "SCRIPT KILL may stop it (Redis's busy-reply-threshold, alias lua-time-limit; 0: never)",
        reload=True,
        minimum=0,
    )
    maxmemory: str = setting(
        "0",
        "used memory past which write commands evict keys by maxmemory_policy or are refused "
        "-OOM, in bytes or with Redis's units (100mb, 1gb; 0: no limit; Redis's maxmemory; "
        "docs/operations.md, Memory limit)",
        reload=True,
        check=check_memory,
    )
    maxmemory_policy: str = setting(
        "noeviction",
        "which keys go when maxmemory is reached (Redis's maxmemory-policy)",
        reload=True,
        check=check_policy,
    )
    maxmemory_samples: int = setting(
        5, "keys sampled per eviction (Redis's maxmemory-samples)", reload=True, minimum=1
    )
    maxmemory_eviction_tenacity: int = setting(
        10,
        "how long one eviction may run, 0-100 (Redis's maxmemory-eviction-tenacity)",
        reload=True,
        check=_check_tenacity,
    )
    lfu_log_factor: int = setting(
        10, "LFU counter's logarithm factor (Redis's lfu-log-factor)", reload=True, minimum=0
    )
    lfu_decay_time: int = setting(
        1,
        "minutes per decrement of an idle key's LFU counter (Redis's lfu-decay-time)",
        reload=True,
        minimum=0,
    )


@dataclass(frozen=True, slots=True)
class KvFileSettings:
    appendonly: str = setting(
        "no",
        "keep an append-only file of every write, replayed at start-up (Redis's appendonly)",
        reload=True,
        choices=("yes", "no"),
    )
    appendfilename: str = setting(
        DEFAULT_APPENDFILENAME, "base name of the append-only files in dir/appendonlydir"
    )
    dbfilename: str = setting(DEFAULT_DBFILENAME, "file name of the RDB snapshot in dir")
