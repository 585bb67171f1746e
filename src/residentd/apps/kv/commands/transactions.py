"""Transactions: MULTI, EXEC and DISCARD (no WATCH), as in Redis's ``multi.c``.

Inside MULTI the session queues each command and answers ``+QUEUED``; a command refused
before running (unknown, wrong arity, not allowed) dooms the transaction, and EXEC then
answers EXECABORT. EXEC runs the queue in one go, which in a single-threaded server is all
atomicity needs. redis-py's default pipeline wraps its commands this way.
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
