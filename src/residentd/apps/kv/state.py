"""What one kv daemon holds beside its connections: the keyspace, the pub/sub hub, SCAN
snapshots, the set of subscribed sessions, and the settings the commands read.

One ``KvState`` is made per App (``create_app`` in __init__.py), so tests can run several
independent daemons in one process; every session gets a reference to it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from residentd.apps.kv.pubsub import Hub
from residentd.apps.kv.scan import Cursors
from residentd.apps.kv.store import Keyspace

if TYPE_CHECKING:
    from residentd.app import App
    from residentd.apps.kv.session import KvSession


class KvState:
    def __init__(self, app: App) -> None:
        self.app = app
        self.options: dict[str, Any] = app.options
        self.db = Keyspace()
        self.hub = Hub()
        self.cursors = Cursors()
        self.subscribers: dict[KvSession, None] = {}
        self.started = time.time()
        self.commands = 0  # commands run, for INFO (a connection counts pipelines)

    @property
    def max_bulk_len(self) -> int:
        return int(self.options["proto_max_bulk_len"])

    def flush(self) -> None:
        self.db.flush()
        self.cursors.clear()
