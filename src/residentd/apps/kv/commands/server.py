"""Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, INFO, CONFIG GET, SET and
RESETSTAT.

CONFIG GET answers from a table of Redis parameter names mapped to kv's real settings
(``maxclients`` is the core's ``max_connections``, ``proto-max-bulk-len`` kv's option,
``appendonly`` and ``save`` the persistence options, ...) and to the fixed facts of kv
(``aof-use-rdb-preamble yes``, ``rdbcompression no``), which is what redis-benchmark and
other tools ask at start. Patterns are Redis globs, as in CONFIG GET ``max*``. CONFIG SET
changes the persistence settings Redis lets one change while running (``appendonly``,
``appendfsync``, ``save``, the rewrite thresholds), all or none, and those kv holds only
while it runs (``LIVE``): ``notify-keyspace-events`` (notifications.py), ``requirepass`` and
the memory limit's (``EVICTION``: ``maxmemory``, ``maxmemory-policy``, ... eviction.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.registry import command, container, help_subcommand, subcommand
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.info import info_text
from residentd.apps.kv.notifications import SETTING_ERROR, flags_text, parse_flags
from residentd.apps.kv.patterns import compile_glob
from residentd.apps.kv.settings import check_memory, check_policy, parse_memory
from residentd.codecs.resp import OK, bulk, bulk_array, integer, parse_int
from residentd.state.settings import parse_save

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


@command(
    "dbsize",
    1,
    "readonly fast",
    "server",
    "Returns the number of keys in the database.",
    keys=(0, 0, 0),
)
def dbsize(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(s.db))


def _check_flush(argv: list[bytes]) -> None:
    """FLUSHDB's and FLUSHALL's one option: SYNC or ASYNC (kv frees at once either way)."""
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"SYNC", b"ASYNC")):
        raise KvError(errors.SYNTAX)


@command(
    "flushdb",
    -1,
    "write",
    "server",
    "Removes all keys from the current database.",
    keys=(0, 0, 0),
)
def flushdb(s: Client, argv: list[bytes]) -> bytes:
    _check_flush(argv)
    s.state.flush_db(s.db)
    return OK


def _swap_index(text: bytes, which: bytes) -> int:
    index = parse_int(text)
    if index is None or not -(2**31) <= index < 2**31:
        raise KvError(b"-ERR invalid %b DB index\r\n" % which)
    return index


@command(
    "swapdb",
    3,
    "write fast",
    "server",
    "Swaps two Redis databases.",
    since="4.0.0",
    keys=(0, 0, 0),
)
def swapdb(s: Client, argv: list[bytes]) -> bytes:
    first = _swap_index(argv[1], b"first")
    second = _swap_index(argv[2], b"second")
    state = s.state
    count = state.databases
    if not (0 <= first < count and 0 <= second < count):
        raise KvError(errors.DB_INDEX_OUT_OF_RANGE)
    if first != second:
        state.swap_dbs(state.keyspace(first), state.keyspace(second))
    return OK


@command(
    "time",
    1,
    "loading stale fast",
    "server",
    "Returns the server time.",
    since="2.6.0",
    keys=(0, 0, 0),
)
def time_(s: Client, argv: list[bytes]) -> bytes:
    seconds, micros = divmod(time.time_ns() // 1000, 1_000_000)
    return bulk_array([b"%d" % seconds, b"%d" % micros])


@command("flushall", -1, "write", "server", "Removes all keys from all databases.", keys=(0, 0, 0))
def flushall(s: Client, argv: list[bytes]) -> bytes:
    _check_flush(argv)
    s.state.flush()
    return OK


@command(
    "info",
    -1,
    "loading stale sentinel",
    "server",
    "Returns information and statistics about the server.",
    keys=(0, 0, 0),
)
def info(s: Client, argv: list[bytes]) -> bytes:
    return bulk(info_text(s, [arg.decode("latin-1") for arg in argv[1:]]))


container("config", "", "server", "A container for server configuration commands.", since="2.0.0")


def _output_limits(s: Client) -> str:
    limits = s.state.limits
    options = s.state.options
    return (
        f"normal {limits.max_output_buffer} {limits.max_output_buffer} 0 slave 0 0 0 "
        f"pubsub {options['pubsub_output_hard_limit']} {options['pubsub_output_soft_limit']} "
        f"{options['pubsub_output_soft_seconds']}"
    )


def _bind(s: Client) -> str:
    return " ".join(host for host, _ in s.state.tcp_addresses())


def _port(s: Client) -> str:
    ports = [port for _, port in s.state.tcp_addresses()]
    return str(ports[0]) if ports else "0"


def _option(name: str) -> Callable[[Client], object]:
    return lambda s: s.state.options[name]


PARAMETERS: dict[str, Callable[[Client], object]] = {
    "save": _option("save"),
    "appendonly": _option("appendonly"),
    "appendfsync": _option("appendfsync"),
    "dir": lambda s: os.path.abspath(s.state.options["dir"]),
    "appendfilename": _option("appendfilename"),
    "appenddirname": lambda s: "appendonlydir",
    "dbfilename": _option("dbfilename"),
    "auto-aof-rewrite-percentage": _option("auto_aof_rewrite_percentage"),
    "auto-aof-rewrite-min-size": _option("auto_aof_rewrite_min_size"),
    "aof-use-rdb-preamble": lambda s: "yes",
    "aof-load-truncated": lambda s: "yes",
    "rdbcompression": lambda s: "no",
    "rdbchecksum": lambda s: "yes",
    "stop-writes-on-bgsave-error": lambda s: "yes",
    "databases": lambda s: s.state.databases,
    "maxmemory": lambda s: parse_memory(s.state.options["maxmemory"]),
    "maxmemory-policy": _option("maxmemory_policy"),
    "maxmemory-samples": _option("maxmemory_samples"),
    "maxmemory-eviction-tenacity": _option("maxmemory_eviction_tenacity"),
    "maxmemory-clients": lambda s: 0,
    "lfu-log-factor": _option("lfu_log_factor"),
    "lfu-decay-time": _option("lfu_decay_time"),
    "maxclients": lambda s: s.state.limits.max_connections,
    "timeout": lambda s: int(s.state.limits.idle_timeout),
    "tcp-backlog": lambda s: s.state.limits.backlog,
    "proto-max-bulk-len": _option("proto_max_bulk_len"),
    "client-query-buffer-limit": _option("client_query_buffer_limit"),
    "client-output-buffer-limit": _output_limits,
    "hz": lambda s: 10,
    "busy-reply-threshold": _option("busy_reply_threshold"),
    "lua-time-limit": _option("busy_reply_threshold"),
    "bind": _bind,
    "port": _port,
    "notify-keyspace-events": lambda s: (
        flags_text(s.state.notifier.flags) if s.state.notifier is not None else ""
    ),
    "requirepass": lambda s: (s.state.requirepass or b"").decode("latin-1"),
}


@subcommand(
    "config",
    "get",
    -3,
    "admin noscript loading stale",
    "Returns the effective values of configuration parameters.",
    since="2.0.0",
)
def config_get(s: Client, argv: list[bytes]) -> bytes:
    found: dict[str, object] = {}
    for pattern in argv[2:]:
        match = compile_glob(pattern, nocase=True)
        for name, value in PARAMETERS.items():
            if name not in found and match(name.encode()):
                found[name] = value(s)
    flat: list[bytes] = []
    for name, setting in found.items():
        flat += [name.encode(), str(setting).encode("latin-1")]
    return bulk_array(flat)


def _check_save(value: str) -> str | None:
    try:
        parse_save(value)
    except ValueError:
        return "Invalid save parameters"
    return None


def _check_choice(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value.lower() in choices:
            return None
        return f"argument(s) must be one of the following: {', '.join(choices)}"

    return check


def _check_integer(value: str) -> str | None:
    return None if value.isdigit() else "argument couldn't be parsed into an integer"


def _check_memory(value: str) -> str | None:
    return None if value.isdigit() else "argument must be a memory value"


_MIN_PROTOCOL_LIMIT = 1024 * 1024  # Redis's lower bound of both protocol limits


def _check_protocol_limit(value: str) -> str | None:
    size = parse_memory(value)
    if size is None:
        return "argument must be a memory value"
    if not _MIN_PROTOCOL_LIMIT <= size <= 2**63 - 1:
        return f"argument must be between {_MIN_PROTOCOL_LIMIT} and {2**63 - 1} inclusive"
    return None


# CONFIG SET's parameters: Redis name -> (kv option, check of the value).
SETTABLE: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "appendonly": ("appendonly", _check_choice("yes", "no")),
    "appendfsync": ("appendfsync", _check_choice("everysec", "always", "no")),
    "save": ("save", _check_save),
    "auto-aof-rewrite-percentage": ("auto_aof_rewrite_percentage", _check_integer),
    "auto-aof-rewrite-min-size": ("auto_aof_rewrite_min_size", _check_memory),
    "proto-max-bulk-len": ("proto_max_bulk_len", _check_protocol_limit),
    "client-query-buffer-limit": ("client_query_buffer_limit", _check_protocol_limit),
    "busy-reply-threshold": ("busy_reply_threshold", _check_integer),
    "lua-time-limit": ("busy_reply_threshold", _check_integer),
}


def _set_notifications(s: Client, value: str) -> None:
    s.state.options["notify_keyspace_events"] = value
    s.state.configure_notifications()


def _set_requirepass(s: Client, value: str) -> None:
    s.state.options["requirepass"] = value


# The settings CONFIG SET changes beyond the options: name -> apply the (checked) value.
LIVE: dict[str, Callable[[Client, str], None]] = {
    "notify-keyspace-events": _set_notifications,
    "requirepass": _set_requirepass,
}


def _check_range(low: int, high: int = 2**31 - 1) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        number = parse_int(value.encode("latin-1"))
        if number is None:
            return "argument couldn't be parsed into an integer"
        if not low <= number <= high:
            return f"argument must be between {low} and {high} inclusive"
        return None

    return check


# The memory limit's settings (eviction.py): name -> (kv option, check, the value to keep).
EVICTION: dict[str, tuple[str, Callable[[str], str | None], Callable[[str], object]]] = {
    "maxmemory": ("maxmemory", check_memory, lambda value: str(parse_memory(value))),
    "maxmemory-policy": ("maxmemory_policy", check_policy, str.lower),
    "maxmemory-samples": ("maxmemory_samples", _check_range(1), int),
    "maxmemory-eviction-tenacity": ("maxmemory_eviction_tenacity", _check_range(0, 100), int),
    "lfu-log-factor": ("lfu_log_factor", _check_range(0), int),
    "lfu-decay-time": ("lfu_decay_time", _check_range(0), int),
}


def _set_eviction(option: str, value: object) -> Callable[[Client, str], None]:
    def apply(s: Client, _: str) -> None:
        s.state.options[option] = value
        s.state.configure_eviction()

    return apply


# Redis 7.0 refuses these unless enable-protected-configs is set (it is not, by default).
PROTECTED = frozenset({"dir", "dbfilename"})


@subcommand(
    "config",
    "set",
    -4,
    "admin noscript loading stale",
    "Sets configuration parameters in-flight.",
    since="2.0.0",
)
def config_set(s: Client, argv: list[bytes]) -> bytes:
    """CONFIG SET name value [name value ...]: all or nothing, as in Redis 7."""
    if len(argv) % 2:
        raise KvError(errors.config_set_unknown(argv[-1][:128]))
    changes: dict[str, object] = {}
    live: list[tuple[Callable[[Client, str], None], str]] = []
    for i in range(2, len(argv), 2):
        name = argv[i].decode("latin-1").lower()
        value = argv[i + 1].decode("latin-1")
        if name in LIVE:
            if name == "notify-keyspace-events" and parse_flags(value) is None:
                raise KvError(errors.config_set_failed(name, SETTING_ERROR))
            live.append((LIVE[name], value))
            continue
        if name in EVICTION:
            option, check, keep = EVICTION[name]
            reason = check(value)
            if reason is not None:
                raise KvError(errors.config_set_failed(name, reason))
            live.append((_set_eviction(option, keep(value)), value))
            continue
        if name not in SETTABLE:
            if name in PROTECTED:
                raise KvError(errors.config_set_failed(name, "can't set protected config"))
            if name in PARAMETERS:
                raise KvError(errors.config_set_failed(name, "can't set immutable config"))
            raise KvError(errors.config_set_unknown(name.encode()))
        option, check = SETTABLE[name]
        reason = check(value)
        if reason is not None:
            raise KvError(errors.config_set_failed(name, reason))
        if option.startswith("auto_aof") or option == "busy_reply_threshold":
            changes[option] = int(value)
        elif check is _check_protocol_limit:
            changes[option] = parse_memory(value)
        else:
            changes[option] = value.lower() if option in ("appendonly", "appendfsync") else value
    options = s.state.options
    old = {name: options[name] for name in changes}
    options.update(changes)
    persistence = s.state.persistence
    if persistence is not None:
        try:
            persistence.reconfigure(options)
        except OSError as exc:
            options.update(old)
            persistence.reconfigure(options)
            reason = exc.strerror or str(exc)
            raise KvError(errors.config_set_failed(next(iter(changes)), reason)) from None
    for apply, value in live:
        apply(s, value)
    return OK


@subcommand(
    "config",
    "resetstat",
    2,
    "admin noscript loading stale",
    "Resets the server's statistics.",
    since="2.0.0",
)
def config_resetstat(s: Client, argv: list[bytes]) -> bytes:
    s.state.reset_stats()
    return OK


_CONFIG_HELP = [
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "HELP",
    "    Prints this help.",
]


help_subcommand("config", _CONFIG_HELP)
