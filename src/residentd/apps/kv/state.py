"""What one kv daemon holds beside its connections: the keyspace, the pub/sub hub, SCAN
snapshots, the set of subscribed sessions, the settings the commands read, and its
persistence (residentd.state, wired in persistence/wiring.py).

While kv persists (``appendonly yes``, or ``save`` points), ``journal`` is the framework
journal's own buffer (``Persistence.buffer``): the write commands append themselves to it in
RESP (persistence/aof.py, and the C fast path), and the iteration's commit point writes what
every pipeline of the iteration appended with one ``write``; nothing is copied per pipeline.
``commit``, after a pipeline that appended, counts the write, has the commit point run, and
names the connection whose replies must wait for the fsync under ``appendfsync always``.
Otherwise ``journal`` is None and the commands pay nothing for it.

One ``KvState`` is made per App (``create_app`` in __init__.py), so tests can run several
independent daemons in one process; every session gets a reference to it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from residentd.apps.kv.pubsub import Hub
from residentd.apps.kv.scan import Cursors
from residentd.apps.kv.store import Keyspace
from residentd.state.api import NotWritable
from residentd.state.health import DiskHealth

if TYPE_CHECKING:
    from residentd.app import App
    from residentd.apps.kv.persistence.wiring import KvPersistence
    from residentd.apps.kv.session import KvSession

MISCONF_RDB = (
    b"-MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
    b"persist to disk. Commands that may modify the data set are disabled, because this "
    b"instance is configured to report errors during writes if RDB snapshotting fails "
    b"(stop-writes-on-bgsave-error option). Please check the Redis logs for details about "
    b"the RDB error.\r\n"
)


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
        self.persistence: KvPersistence | None = None
        self.journal: bytearray | None = None
        # Whether the disk takes writes: the persistence's own once attached (wiring.py).
        self.health = DiskHealth()

    @property
    def max_bulk_len(self) -> int:
        return int(self.options["proto_max_bulk_len"])

    def flush(self) -> None:
        self.db.flush()
        self.cursors.clear()

    # -- persistence -----------------------------------------------------------------------------

    def update_journal(self) -> None:
        """Journal the writes while the settings ask for a journal or count changes for save
        points; stop paying for it otherwise."""
        from residentd.apps.kv.persistence.wiring import expired_logger

        persistence = self.persistence
        settings = persistence.settings if persistence is not None else None
        active = settings is not None and persistence is not None and persistence.enabled
        if (
            active
            and persistence is not None
            and settings is not None
            and (settings.appendonly or settings.save)
        ):
            self.journal = persistence.buffer
            self.db.on_expired = expired_logger(self)
        else:
            self.journal = None
            self.db.on_expired = None

    def commit(self, waiter: object = None) -> None:
        """After a pipeline (or the expiry cycle) appended records to ``journal``: have them
        journaled (the framework counts the write and wakes its commit point)."""
        if self.persistence is not None:
            self.persistence.wrote(waiter)

    def expire_cycle(self) -> None:
        """Redis's active expiry, with a DEL journaled for each key whose time passed."""
        journal = self.journal
        mark = len(journal) if journal is not None else 0
        self.db.expire_cycle()
        if journal is not None and len(journal) != mark:
            self.commit()

    @property
    def writable(self) -> bool:
        return self.health.writable

    def misconf(self) -> bytes | None:
        """Redis's -MISCONF refusal while the disk refuses data, else None."""
        persistence = self.persistence
        if persistence is None or persistence.writable:
            return None
        try:
            persistence.check_writable()
        except NotWritable as exc:
            if exc.kind != "journal":
                return MISCONF_RDB
            reason = exc.strerror.replace("\r", " ").replace("\n", " ")
            return b"-MISCONF Errors writing to the AOF file: %b\r\n" % reason.encode()
        return None
