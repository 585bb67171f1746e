"""kv's settings, under Redis's names (``proto-max-bulk-len`` is ``proto_max_bulk_len``).

``KvSettings`` are the number of databases, the protocol's limits (``proto_max_bulk_len``,
``client_query_buffer_limit``), the pub/sub output limits, ``requirepass`` and
``notify_keyspace_events``; ``KvFileSettings`` are the persistence settings kv adds to
residentd.state's (whose ``dir``, ``appendfsync``, ``save`` and ``auto_aof_rewrite_*`` kv takes
as they are): Redis's ``appendonly`` is a ``yes``/``no`` word where residentd's on/off settings
are flags, so kv declares it itself. CONFIG GET and CONFIG SET read and change the values in
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
