"""Transactions: MULTI, EXEC and DISCARD (no WATCH), as in Redis's ``multi.c``.

Inside MULTI the session queues each command and answers ``+QUEUED``; a command refused
before running (unknown, wrong arity, not allowed) dooms the transaction, and EXEC then
answers EXECABORT. EXEC runs the queue in one go, which in a single-threaded server is all
atomicity needs. redis-py's default pipeline wraps its commands this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.registry import command
from residentd.codecs.resp import OK

if TYPE_CHECKING:
    from residentd.apps.kv.session import KvSession


@command(
    "multi",
    1,
    "noscript loading stale fast allow_busy",
    "transactions",
    "Starts a transaction.",
    since="1.2.0",
    keys=(0, 0, 0),
    queued=False,
)
def multi(s: KvSession, argv: list[bytes]) -> bytes:
    if s.multi is not None:
        return errors.NESTED_MULTI
    s.begin()
    return OK


@command(
    "exec",
    1,
    "noscript loading stale skip_slowlog",
    "transactions",
    "Executes all commands in a transaction.",
    since="1.2.0",
    keys=(0, 0, 0),
    queued=False,
)
def exec_(s: KvSession, argv: list[bytes]) -> bytes:
    if s.multi is None:
        return errors.EXEC_WITHOUT_MULTI
    return s.execute()


@command(
    "discard",
    1,
    "noscript loading stale fast allow_busy",
    "transactions",
    "Discards a transaction.",
    since="2.0.0",
    keys=(0, 0, 0),
    queued=False,
)
def discard(s: KvSession, argv: list[bytes]) -> bytes:
    if s.multi is None:
        return errors.DISCARD_WITHOUT_MULTI
    s.discard()
    return OK
