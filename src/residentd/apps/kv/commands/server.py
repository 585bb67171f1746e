"""Server commands: DBSIZE, FLUSHDB, FLUSHALL, INFO and CONFIG GET.

CONFIG GET answers from a table of Redis parameter names mapped to kv's real settings
(``maxclients`` is the core's ``max_connections``, ``proto-max-bulk-len`` kv's option, ...)
and to the fixed facts of an in-memory store without persistence (``save ""``,
``appendonly no``), which is what redis-benchmark and other tools ask at start. Patterns are
Redis globs, as in CONFIG GET ``max*``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.registry import command, container, help_subcommand, subcommand
from residentd.apps.kv.info import info_text
from residentd.apps.kv.patterns import compile_glob
from residentd.codecs.resp import OK, bulk, bulk_array, integer

if TYPE_CHECKING:
    from residentd.apps.kv.session import KvSession


@command(
    "dbsize",
    1,
    "readonly fast",
    "server",
    "Returns the number of keys in the database.",
    keys=(0, 0, 0),
)
def dbsize(s: KvSession, argv: list[bytes]) -> bytes:
    return integer(len(s.db))


def _flush(s: KvSession, argv: list[bytes]) -> bytes:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"SYNC", b"ASYNC")):
        return errors.SYNTAX
    s.state.flush()
    return OK


@command(
    "flushdb",
    -1,
    "write",
    "server",
    "Removes all keys from the current database.",
    keys=(0, 0, 0),
)
def flushdb(s: KvSession, argv: list[bytes]) -> bytes:
    return _flush(s, argv)


@command("flushall", -1, "write", "server", "Removes all keys from all databases.", keys=(0, 0, 0))
def flushall(s: KvSession, argv: list[bytes]) -> bytes:
    return _flush(s, argv)


@command(
    "info",
    -1,
    "loading stale sentinel",
    "server",
    "Returns information and statistics about the server.",
    keys=(0, 0, 0),
)
def info(s: KvSession, argv: list[bytes]) -> bytes:
    return bulk(info_text(s, [arg.decode("latin-1") for arg in argv[1:]]))


container("config", "", "server", "A container for server configuration commands.", since="2.0.0")


def _output_limits(s: KvSession) -> str:
    limits = s.conn.server.limits
    options = s.state.options
    return (
        f"normal {limits.max_output_buffer} {limits.max_output_buffer} 0 slave 0 0 0 "
        f"pubsub {options['pubsub_output_hard_limit']} {options['pubsub_output_soft_limit']} "
        f"{options['pubsub_output_soft_seconds']}"
    )


def _bind(s: KvSession) -> str:
    return " ".join(a.host for a in s.conn.server.addresses() if a.kind == "tcp")


def _port(s: KvSession) -> str:
    ports = [a.port for a in s.conn.server.addresses() if a.kind == "tcp"]
    return str(ports[0]) if ports else "0"


PARAMETERS: dict[str, Callable[[KvSession], object]] = {
    "save": lambda s: "",
    "appendonly": lambda s: "no",
    "appendfsync": lambda s: "no",
    "databases": lambda s: 1,
    "maxmemory": lambda s: 0,
    "maxmemory-policy": lambda s: "noeviction",
    "maxclients": lambda s: s.conn.server.limits.max_connections,
    "timeout": lambda s: int(s.conn.server.limits.idle_timeout),
    "tcp-backlog": lambda s: s.conn.server.limits.backlog,
    "proto-max-bulk-len": lambda s: s.state.max_bulk_len,
    "client-query-buffer-limit": lambda s: s.conn.server.limits.max_input_buffer,
    "client-output-buffer-limit": _output_limits,
    "hz": lambda s: 10,
    "bind": _bind,
    "port": _port,
}


@subcommand(
    "config",
    "get",
    -3,
    "admin noscript loading stale",
    "Returns the effective values of configuration parameters.",
    since="2.0.0",
)
def config_get(s: KvSession, argv: list[bytes]) -> bytes:
    found: dict[str, object] = {}
    for pattern in argv[2:]:
        match = compile_glob(pattern.lower())
        for name, value in PARAMETERS.items():
            if name not in found and match(name.encode()):
                found[name] = value(s)
    flat: list[bytes] = []
    for name, setting in found.items():
        flat += [name.encode(), str(setting).encode()]
    return bulk_array(flat)


_CONFIG_HELP = [
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "HELP",
    "    Prints this help.",
]


help_subcommand("config", _CONFIG_HELP)
