"""kv's persistence settings and their Redis spelling, on top of residentd.state.

``attach`` declares kv's settings (settings.py) and residentd.state's under Redis's names
(``appendonly yes|no``, ``appendfsync``, ``dir``, ``appendfilename``, ``dbfilename``, ``save``,
``auto-aof-rewrite-*`` as ``auto_aof_rewrite_*``) and gives the framework kv's state machine
with Redis 7.0's file layout: ``dir/appendonlydir/`` holding ``<appendfilename>.manifest``, the
base ``<appendfilename>.<n>.base.rdb`` and the increments ``<appendfilename>.<n>.incr.aof``,
and the RDB snapshot ``dir/<dbfilename>``.

Redis's ``appendonly`` takes ``yes`` or ``no`` where residentd's boolean settings are flags,
so kv declares it as a word and hands the framework its truth value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv.persistence.backend import KvPersistence
from residentd.apps.kv.persistence.machine import KvMachine
from residentd.apps.kv.settings import DEFAULT_APPENDFILENAME, DEFAULT_DBFILENAME, KvFileSettings
from residentd.state import Layout

if TYPE_CHECKING:
    from residentd.app import App
    from residentd.apps.kv.state import KvState


def attach(app: App, state: KvState) -> KvPersistence:
    app.declare(KvFileSettings)
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
    state.health = persistence.health
    return persistence
