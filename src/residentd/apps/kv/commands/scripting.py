"""Scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT LOAD/EXISTS/FLUSH/KILL, as in
Redis 7.0's ``eval.c``; the engine that runs the scripts is scripting/engine.py.

``numkeys`` splits the arguments after the script into KEYS and ARGV. EVALSHA takes the SHA1
in either case; a script not in the cache is NOSCRIPT, which redis-py's ``Script`` answers
with SCRIPT LOAD or EVAL. The _RO variants refuse a script's write commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg
from residentd.apps.kv.commands.registry import command, container, help_subcommand, subcommand
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import OK, array, bulk, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client
    from residentd.apps.kv.scripting.engine import Scripts

_EVAL_FLAGS = "noscript skip_monitor may_replicate no_mandatory_keys stale"


def _scripts(s: Client) -> Scripts:
    scripts: Scripts = s.state.scripts
    return scripts


def _run(s: Client, argv: list[bytes], sha: bytes, readonly: bool) -> bytes:
    numkeys = int_arg(argv[2])
    if numkeys < 0:
        raise KvError(errors.NUMKEYS_NEGATIVE)
    if numkeys > len(argv) - 3:
        raise KvError(errors.NUMKEYS_TOO_MANY)
    keys = argv[3 : 3 + numkeys]
    return _scripts(s).run(s, sha, keys, argv[3 + numkeys :], readonly)


def _eval(s: Client, argv: list[bytes], readonly: bool) -> bytes:
    int_arg(argv[2])  # a bad numkeys is refused before the script is compiled
    return _run(s, argv, _scripts(s).load(argv[1]), readonly)


def _evalsha(s: Client, argv: list[bytes], readonly: bool) -> bytes:
    sha = argv[1].lower()
    if sha not in _scripts(s).cache:
        raise KvError(errors.NOSCRIPT)
    return _run(s, argv, sha, readonly)


def _variant(name: str, summary: str, since: str, by_sha: bool, readonly: bool) -> None:
    """Register one of EVAL, EVALSHA and their _RO forms."""
    run = _evalsha if by_sha else _eval

    def handler(s: Client, argv: list[bytes]) -> bytes:
        return run(s, argv, readonly)

    flags = _EVAL_FLAGS + (" readonly" if readonly else "")
    command(name, -3, flags, "scripting", summary, since=since, keys=(0, 0, 0))(handler)


_variant("eval", "Executes a server-side Lua script.", "2.6.0", False, False)
_variant("eval_ro", "Executes a read-only server-side Lua script.", "7.0.0", False, True)
_variant("evalsha", "Executes a server-side Lua script by SHA1 digest.", "2.6.0", True, False)
_variant(
    "evalsha_ro",
    "Executes a read-only server-side Lua script by SHA1 digest.",
    "7.0.0",
    True,
    True,
)


container(
    "script", "", "scripting", "A container for Lua scripts management commands.", since="2.6.0"
)


@subcommand(
    "script",
    "load",
    3,
    "noscript stale",
    "Loads a server-side Lua script to the script cache.",
    since="2.6.0",
)
def script_load(s: Client, argv: list[bytes]) -> bytes:
    return bulk(_scripts(s).load(argv[2]))


@subcommand(
    "script",
    "exists",
    -3,
    "noscript",
    "Determines whether server-side Lua scripts exist in the script cache.",
    since="2.6.0",
)
def script_exists(s: Client, argv: list[bytes]) -> bytes:
    cache = _scripts(s).cache
    return array([integer(int(sha.lower() in cache)) for sha in argv[2:]])


@subcommand(
    "script",
    "flush",
    -2,
    "noscript",
    "Removes all server-side Lua scripts from the script cache.",
    since="2.6.0",
)
def script_flush(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].upper() not in (b"SYNC", b"ASYNC")):
        raise KvError(errors.SCRIPT_FLUSH_OPTION)
    _scripts(s).flush()
    return OK


@subcommand(
    "script",
    "kill",
    2,
    "noscript allow_busy",
    "Terminates a server-side Lua script during execution.",
    since="2.6.0",
)
def script_kill(s: Client, argv: list[bytes]) -> bytes:
    return _scripts(s).kill()


help_subcommand(
    "script",
    [
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help.",
    ],
)
