"""kv's persistence settings and their Redis spelling, on top of residentd.state.

``attach`` declares kv's options under Redis's names (``appendonly yes|no``, ``appendfsync``,
``dir``, ``appendfilename``, ``dbfilename``, ``save``, ``auto-aof-rewrite-*`` as
``auto_aof_rewrite_*``) and gives the framework kv's state machine with Redis 7.0's file
layout: ``dir/appendonlydir/`` holding ``<appendfilename>.manifest``, the base
``<appendfilename>.<n>.base.rdb`` and the increments ``<appendfilename>.<n>.incr.aof``, and
the RDB snapshot ``dir/<dbfilename>``.

Redis's ``appendonly`` takes ``yes`` or ``no`` where residentd's boolean settings are flags,
so kv declares it as a word and hands the framework its truth value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from residentd.apps.kv.persistence.aof import delete
from residentd.apps.kv.persistence.machine import KvMachine
from residentd.state import Layout, Persistence

if TYPE_CHECKING:
    import asyncio

    from residentd.app import App
    from residentd.apps.kv.state import KvState

DEFAULT_APPENDFILENAME = "appendonly.aof"
DEFAULT_DBFILENAME = "dump.rdb"


class _RedisOptions(Mapping[str, Any]):
    """kv's options as the framework reads them: ``appendonly`` as a bool."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    def __getitem__(self, name: str) -> Any:
        value = self.options[name]
        if name == "appendonly" and isinstance(value, str):
            return value.lower() == "yes"
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)


class KvPersistence(Persistence):
    """The framework's Persistence, with kv's file names read from its options at start-up
    and the keyspace's journal buffer switched on and off with the settings."""

    state: KvState
    bgsave_scheduled = False  # BGSAVE SCHEDULE during a rewrite: run once it ends

    def _after_child(self) -> None:
        super()._after_child()
        if self.bgsave_scheduled and not self.child_running:
            self.bgsave_scheduled = False
            self.snapshot_now()

    def open(
        self, options: Mapping[str, Any], loop: asyncio.AbstractEventLoop, flushes: Any
    ) -> None:
        self.layout = Layout.redis(appendfilename=options["appendfilename"], base_ext="rdb")
        self.snapshot_name = options["dbfilename"]
        super().open(_RedisOptions(options), loop, flushes)
        self.state.update_journal()

    def reconfigure(self, options: Mapping[str, Any]) -> None:
        super().reconfigure(_RedisOptions(options))
        self.state.update_journal()


def attach(app: App, state: KvState) -> KvPersistence:
    app.option(
        "appendonly",
        "no",
        "keep an append-only file of every write, replayed at start-up (Redis's appendonly)",
        reloadable=True,
        choices=("yes", "no"),
    )
    app.option(
        "appendfilename",
        DEFAULT_APPENDFILENAME,
        "base name of the append-only files in dir/appendonlydir",
    )
    app.option("dbfilename", DEFAULT_DBFILENAME, "file name of the RDB snapshot in dir")
    persistence = KvPersistence.attach(
        app,
        KvMachine(state),
        layout=Layout.redis(appendfilename=DEFAULT_APPENDFILENAME, base_ext="rdb"),
        snapshot_name=DEFAULT_DBFILENAME,
        defaults={"save": "", "appendfsync": "everysec"},
    )
    assert isinstance(persistence, KvPersistence)
    persistence.state = state
    state.persistence = persistence
    state.health = persistence.health
    return persistence


def expired_logger(state: KvState) -> Any:
    """The keyspace's ``on_expired`` while journaling: a DEL for each key whose time passed."""

    def expired(key: bytes) -> None:
        journal = state.journal
        if journal is not None:
            journal += delete(key)

    return expired
