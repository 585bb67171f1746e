"""Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH, as in Redis's ``multi.c``.

Inside MULTI the session queues each command but MULTI, EXEC, DISCARD and WATCH (and QUIT and
RESET) and answers ``+QUEUED``; a command refused before running (unknown, an unknown
subcommand, wrong arity, not allowed) dooms the transaction, and EXEC then
answers EXECABORT. EXEC runs the queue in one go, which in a single-threaded server is all
atomicity needs. redis-py's default pipeline wraps its commands this way. A watched key
changed before EXEC (watch.py has the rules) makes EXEC answer a null array and run nothing;
EXEC, DISCARD and UNWATCH forget the watched keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.client import Handler
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import OK

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


def _control(name: str, flags: str, summary: str, since: str) -> Callable[[Handler], Handler]:
    """Register a transaction command: no keys, run at once even inside MULTI."""
    return command(
        name, 1, flags, "transactions", summary, since=since, keys=(0, 0, 0), queued=False
    )


@_control("multi", "noscript loading stale fast allow_busy", "Starts a transaction.", "1.2.0")
def multi(s: Client, argv: list[bytes]) -> bytes:
    if s.in_transaction:
        raise KvError(errors.NESTED_MULTI)
    s.begin()
    return OK


@_control(
    "exec",
    "noscript loading stale skip_slowlog",
    "Executes all commands in a transaction.",
    "1.2.0",
)
def exec_(s: Client, argv: list[bytes]) -> bytes:
    if not s.in_transaction:
        raise KvError(errors.EXEC_WITHOUT_MULTI)
    return s.execute()


@_control("discard", "noscript loading stale fast allow_busy", "Discards a transaction.", "2.0.0")
def discard(s: Client, argv: list[bytes]) -> bytes:
    if not s.in_transaction:
        raise KvError(errors.DISCARD_WITHOUT_MULTI)
    s.discard()
    return OK


@command(
    "watch",
    -2,
    "noscript loading stale fast allow_busy",
    "transactions",
    "Monitors changes to keys to determine the execution of a transaction.",
    since="2.2.0",
    keys=(1, -1, 1),
    queued=False,
)
def watch(s: Client, argv: list[bytes]) -> bytes:
    if s.in_transaction:
        raise KvError(errors.WATCH_IN_MULTI)
    for key in argv[1:]:
        s.watch(key)
    return OK


@command(
    "unwatch",
    1,
    "noscript loading stale fast allow_busy",
    "transactions",
    "Forgets about watched keys of a transaction.",
    since="2.2.0",
    keys=(0, 0, 0),
)  # queued inside MULTI, as in Redis: EXEC has forgotten the keys by the time it runs
def unwatch(s: Client, argv: list[bytes]) -> bytes:
    s.unwatch()
    return OK
