"""COMMAND: what kv can do, in the forms Redis clients ask for it.

``COMMAND`` and ``COMMAND INFO`` give Redis 7's ten-field command records (name, arity,
flags, key positions, ACL categories, tips, key specs, subcommands); ``COMMAND DOCS`` gives
the summary, version and group redis-cli shows in its help and hints; ``COMMAND COUNT`` and
``COMMAND LIST`` count and name them. All come from the command table (registry.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.registry import (
    COMMANDS,
    Command,
    container,
    help_subcommand,
    subcommand,
)
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.patterns import compile_glob
from residentd.codecs.resp import NIL, array, bulk, bulk_array, integer, simple

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


# Redis 7.0 files PUBSUB HELP under no group's category (unlike CLIENT HELP or OBJECT HELP).
_NO_GROUP_CATEGORY = frozenset({"pubsub|help"})


def _categories(cmd: Command) -> list[str]:
    if cmd.subcommands:  # a container: Redis gives its categories to the subcommands
        return ["@slow"]
    categories = []
    if cmd.group not in ("server", "transactions") and cmd.name not in _NO_GROUP_CATEGORY:
        categories.append(f"@{cmd.group}")
    if "write" in cmd.flags:
        categories.append("@write")
    elif "readonly" in cmd.flags:
        categories.append("@read")
    if "fast" in cmd.flags:
        categories.append("@fast")
    else:
        categories.append("@slow")
    if cmd.group == "server" or "admin" in cmd.flags:
        categories.append("@admin")
    if cmd.group == "transactions":
        categories.append("@transaction")
    return categories


def _info(cmd: Command) -> bytes:
    first, last, step = cmd.keys
    return array(
        [
            bulk(cmd.name.encode()),
            integer(cmd.arity),
            array([simple(flag) for flag in cmd.flags]),
            integer(first),
            integer(last),
            integer(step),
            array([simple(category) for category in _categories(cmd)]),
            array([]),
            array([]),
            array([_info(sub) for sub in cmd.subcommands.values()]),
        ]
    )


def _docs(cmd: Command) -> bytes:
    fields = [
        bulk(b"summary"),
        bulk(cmd.summary.encode()),
        bulk(b"since"),
        bulk(cmd.since.encode()),
        bulk(b"group"),
        bulk(cmd.group.encode()),
    ]
    if cmd.subcommands:
        subs: list[bytes] = []
        for sub in cmd.subcommands.values():
            subs += [bulk(sub.name.encode()), _docs(sub)]
        fields += [bulk(b"subcommands"), array(subs)]
    return array(fields)


def command_all(s: Client, argv: list[bytes]) -> bytes:
    """``COMMAND`` with no subcommand: every command's record."""
    return array([_info(cmd) for cmd in COMMANDS.values()])


container(
    "command",
    "loading stale",
    "server",
    "Returns detailed information about all commands.",
    since="2.8.13",
    bare=command_all,
)


@subcommand("command", "count", 2, "loading stale", "Returns a count of commands.", since="2.8.13")
def command_count(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(COMMANDS))


@subcommand(
    "command", "list", -2, "loading stale", "Returns a list of command names.", since="7.0.0"
)
def command_list(s: Client, argv: list[bytes]) -> bytes:
    """COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: the names of
    the commands and their subcommands (``config|get``); a pattern matches without case, as
    in Redis, and kv has no modules."""
    commands = [cmd for top in COMMANDS.values() for cmd in (top, *top.subcommands.values())]
    if len(argv) == 2:
        return bulk_array(cmd.name.encode() for cmd in commands)
    if len(argv) != 5 or argv[2].upper() != b"FILTERBY":
        raise KvError(errors.SYNTAX)
    kind, value = argv[3].upper(), argv[4]
    if kind == b"MODULE":
        commands = []
    elif kind == b"ACLCAT":
        category = "@" + value.decode("latin-1").lower()
        commands = [cmd for cmd in commands if category in _categories(cmd)]
    elif kind == b"PATTERN":
        match = compile_glob(value, nocase=True)
        commands = [cmd for cmd in commands if match(cmd.name.encode())]
    else:
        raise KvError(errors.SYNTAX)
    return bulk_array(cmd.name.encode() for cmd in commands)


@subcommand(
    "command",
    "info",
    -2,
    "loading stale",
    "Returns information about one, multiple or all commands.",
    since="2.8.13",
)
def command_info(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 2:
        return array([_info(cmd) for cmd in COMMANDS.values()])
    found = (COMMANDS.get(name.lower().decode("latin-1")) for name in argv[2:])
    return array([NIL if cmd is None else _info(cmd) for cmd in found])


@subcommand(
    "command",
    "docs",
    -2,
    "loading stale",
    "Returns documentary information about one, multiple or all commands.",
    since="7.0.0",
)
def command_docs(s: Client, argv: list[bytes]) -> bytes:
    names = [name.lower().decode("latin-1") for name in argv[2:]] or list(COMMANDS)
    flat: list[bytes] = []
    for name in names:
        cmd = COMMANDS.get(name)
        if cmd is not None:
            flat += [bulk(name.encode()), _docs(cmd)]
    return array(flat)


_COMMAND_HELP = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "HELP",
    "    Print this help.",
]


help_subcommand("command", _COMMAND_HELP)
