"""Persistence commands: SAVE, BGSAVE, BGREWRITEAOF and LASTSAVE, with Redis 7.0's replies.

They drive the framework's Persistence (residentd.state): SAVE writes the RDB file in this
process, BGSAVE in a forked child while kv keeps serving, BGREWRITEAOF compacts the AOF into
a new RDB base (scheduled when a BGSAVE is running, as Redis does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import OK, integer, simple

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client
    from residentd.apps.kv.persistence.backend import KvPersistence


def _persistence(s: Client) -> KvPersistence:
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
def save(s: Client, argv: list[bytes]) -> bytes:
    persistence = _persistence(s)
    if persistence.child_running == "snapshot":
        raise KvError(errors.BGSAVE_RUNNING)
    try:
        persistence.save_sync()
    except OSError:
        raise KvError(errors.SAVE_FAILED) from None
    return OK


@command(
    "bgsave",
    -1,
    "admin noscript no_async_loading",
    "server",
    "Asynchronously saves the database(s) to disk.",
    keys=(0, 0, 0),
)
def bgsave(s: Client, argv: list[bytes]) -> bytes:
    schedule = False
    if len(argv) == 2 and argv[1].upper() == b"SCHEDULE":
        schedule = True
    elif len(argv) > 1:
        raise KvError(errors.SYNTAX)
    persistence = _persistence(s)
    running = persistence.child_running
    if running == "snapshot":
        raise KvError(errors.BGSAVE_RUNNING)
    if running == "rewrite":
        if not schedule:
            raise KvError(errors.BGSAVE_DURING_REWRITE)
        persistence.bgsave_scheduled = True
        return simple("Background saving scheduled")
    if not persistence.snapshot_now():
        raise KvError(errors.SAVE_FAILED)
    return simple("Background saving started")


@command(
    "bgrewriteaof",
    1,
    "admin noscript no_async_loading",
    "server",
    "Asynchronously rewrites the append-only file to disk.",
    keys=(0, 0, 0),
)
def bgrewriteaof(s: Client, argv: list[bytes]) -> bytes:
    persistence = _persistence(s)
    running = persistence.child_running
    if running == "rewrite":
        raise KvError(errors.REWRITE_RUNNING)
    if persistence.journal is None:
        raise KvError(errors.REWRITE_WITHOUT_AOF)
    if not persistence.rewrite_now():
        raise KvError(errors.SAVE_FAILED)
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
def lastsave(s: Client, argv: list[bytes]) -> bytes:
    return integer(_persistence(s).last_save_time)
