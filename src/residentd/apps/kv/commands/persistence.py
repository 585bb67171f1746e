"""Persistence commands: SAVE, BGSAVE, BGREWRITEAOF and LASTSAVE, with Redis 7.0's replies.

They drive the framework's Persistence (residentd.state): SAVE writes the RDB file in this
process, BGSAVE in a forked child while kv keeps serving, BGREWRITEAOF compacts the AOF into
a new RDB base (scheduled when a BGSAVE is running, as Redis does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv.commands.registry import command
from residentd.codecs.resp import OK, error, integer, simple

if TYPE_CHECKING:
    from residentd.apps.kv.persistence.wiring import KvPersistence
    from residentd.apps.kv.session import KvSession

BGSAVE_RUNNING = b"-ERR Background save already in progress\r\n"
REWRITE_RUNNING = b"-ERR Background append only file rewriting already in progress\r\n"
BGSAVE_DURING_REWRITE = (
    b"-ERR An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE in "
    b"order to schedule a BGSAVE whenever possible.\r\n"
)
FAILED = b"-ERR\r\n"


def _persistence(s: KvSession) -> KvPersistence:
    persistence = s.state.persistence
    assert persistence is not None
    return persistence


@command(
    "save",
    1,
    "admin noscript no_async_loading no_multi",
    "server",
    "Synchronously saves the database(s) to disk.",
    keys=(0, 0, 0),
)
def save(s: KvSession, argv: list[bytes]) -> bytes:
    persistence = _persistence(s)
    if persistence.child_running == "snapshot":
        return BGSAVE_RUNNING
    try:
        persistence.save_sync()
    except OSError:
        return FAILED
    return OK


@command(
    "bgsave",
    -1,
    "admin noscript no_async_loading",
    "server",
    "Asynchronously saves the database(s) to disk.",
    keys=(0, 0, 0),
)
def bgsave(s: KvSession, argv: list[bytes]) -> bytes:
    schedule = False
    if len(argv) == 2 and argv[1].upper() == b"SCHEDULE":
        schedule = True
    elif len(argv) > 1:
        return error("ERR syntax error")
    persistence = _persistence(s)
    running = persistence.child_running
    if running == "snapshot":
        return BGSAVE_RUNNING
    if running == "rewrite":
        if not schedule:
            return BGSAVE_DURING_REWRITE
        persistence.bgsave_scheduled = True
        return simple("Background saving scheduled")
    if not persistence.snapshot_now():
        return FAILED
    return simple("Background saving started")


@command(
    "bgrewriteaof",
    1,
    "admin noscript no_async_loading",
    "server",
    "Asynchronously rewrites the append-only file to disk.",
    keys=(0, 0, 0),
)
def bgrewriteaof(s: KvSession, argv: list[bytes]) -> bytes:
    persistence = _persistence(s)
    running = persistence.child_running
    if running == "rewrite":
        return REWRITE_RUNNING
    if persistence.journal is None:
        return error("ERR Background append only file rewriting error: appendonly is no")
    if not persistence.rewrite_now():
        return FAILED
    if running:
        return simple("Background append only file rewriting scheduled")
    return simple("Background append only file rewriting started")


@command(
    "lastsave",
    1,
    "random fast loading stale",
    "server",
    "Returns the Unix timestamp of the last successful save to disk.",
    since="1.0.0",
    keys=(0, 0, 0),
)
def lastsave(s: KvSession, argv: list[bytes]) -> bytes:
    return integer(_persistence(s).last_save_time)
