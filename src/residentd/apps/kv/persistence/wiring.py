"""kv's persistence settings and their Redis spelling, on top of residentd.state.

``attach`` declares kv's options under Redis's names (``appendonly yes|no``, ``appendfsync``,
``dir``, ``appendfilename``, ``dbfilename``, ``save``, ``auto-aof-rewrite-*`` as
``auto_aof_rewrite_*``) and gives the framework kv's state machine with Redis 7.0's file
layout: ``dir/appendonlydir/`` holding ``<appendfilename>.manifest``, the base
``<appendfilename>.<n>.base.rdb`` and the increments ``<appendfilename>.<n>.incr.aof``, and
the RDB snapshot ``dir/<dbfilename>`` (backend.py reads them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv.persistence.backend import (
    DEFAULT_APPENDFILENAME,
    DEFAULT_DBFILENAME,
    KvPersistence,
)
from residentd.apps.kv.persistence.machine import KvMachine
from residentd.state import Layout

if TYPE_CHECKING:
    from residentd.app import App
    from residentd.apps.kv.state import KvState


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
    persistence.on_settings = state.update_journal
    state.persistence = persistence
    return persistence
