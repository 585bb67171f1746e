"""What one kv daemon holds beside its connections: the keyspace, the pub/sub hub, SCAN
snapshots, the set of subscribed clients, the settings the commands read, its persistence
(residentd.state, wired in persistence/wiring.py), and the facts of the server it runs in.

Handlers and INFO read the server's facts (its limits, listening addresses, connection count
and counters, its loop) here and nowhere else, so nothing in kv reaches through a connection
to its server.

While kv persists (``appendonly yes``, or ``save`` points), ``journal`` is the framework
journal's own buffer (``Persistence.buffer``): the write commands append themselves to it in
RESP (persistence/aof.py, and the C fast path), and the iteration's commit point writes what
every pipeline of the iteration appended with one ``write``; nothing is copied per pipeline.
``commit``, after a pipeline that appended, counts the write, has the commit point run, and
names the connection whose replies must wait for the fsync under ``appendfsync always``.
Otherwise ``journal`` is None and the commands pay nothing for it.

One ``KvState`` is made per ``KvApp`` (``create_app`` in __init__.py), so tests can run
several independent daemons in one process; every session reaches it as ``app.state``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from residentd.app import App
from residentd.apps.kv import errors
from residentd.apps.kv.blocking import Blocking
from residentd.apps.kv.persistence.aof import delete
from residentd.apps.kv.pubsub import Hub, Subscriber
from residentd.apps.kv.scan import Cursors
from residentd.apps.kv.store import Keyspace
from residentd.limits import Limits
from residentd.state.api import NotWritable
from residentd.state.health import DiskHealth

if TYPE_CHECKING:
    from residentd.apps.kv.persistence.backend import KvPersistence


class KvApp(App):
    """The kv App, holding its ``KvState`` (keyspace, pub/sub hub, ...) as ``state``."""

    def __init__(self) -> None:
        super().__init__("kv", "in-memory key-value store speaking the Redis protocol (RESP2)")
        self.state = KvState(self)

    def workers_refused(self, workers: int, options: Mapping[str, Any]) -> str | None:
        return (
            "kv keeps its dataset in one process's memory, as Redis does: each worker would "
            "hold a different dataset. Run it with workers = 1 (the default); to use more "
            "cores, run several kv daemons on different ports and shard the keys at the client"
        )


class KvState:
    def __init__(self, app: App) -> None:
        self.app = app
        self.options: dict[str, Any] = app.options
        self.db = Keyspace()
        self.hub = Hub()
        self.cursors = Cursors()
        self.subscribers: dict[Subscriber, None] = {}
        self.blocking = Blocking()  # clients blocked on keys (BLPOP, ...)
        self.started = time.time()
        self.commands = 0  # commands run, for INFO (a connection counts pipelines)
        self.persistence: KvPersistence | None = None
        self.journal: bytearray | None = None
        # Whether the disk takes writes: the persistence's own once attached (wiring.py).
        self.health = DiskHealth()
        # The script engine (scripting/engine.py's ``Scripts``), set by create_app; typed
        # loosely because the engine runs commands, which see this state.
        self.scripts: Any = None
        # A script runs past busy-reply-threshold: sessions answer -BUSY (session.py).
        self.script_busy = False
        # An EXEC or a script is running: a blocking command answers at once, and the
        # journal entries get one MULTI/EXEC around them.
        self.atomic = False

    @property
    def max_bulk_len(self) -> int:
        return int(self.options["proto_max_bulk_len"])

    def flush(self) -> None:
        self.db.flush()
        self.cursors.clear()

    # -- the server kv runs in ---------------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        """The core's limits in force (``maxclients``, the buffer caps, the idle timeout)."""
        server = self.app.server
        return server.limits if server is not None else Limits(**self.app.limit_defaults)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        server = self.app.server
        assert server is not None, "kv is not serving"
        return server.loop

    def tcp_addresses(self) -> list[tuple[str, int]]:
        """The TCP addresses kv listens on, as (host, port), in listening order."""
        server = self.app.server
        if server is None:
            return []
        return [(a.host, a.port) for a in server.addresses() if a.kind == "tcp"]

    def connected_clients(self) -> int:
        server = self.app.server
        return 0 if server is None else len(server.connections)

    def counters(self) -> dict[str, Any]:
        """The server's counters (accepted, refused, bytes in and out, the loop's name)."""
        server = self.app.server
        assert server is not None, "kv is not serving"
        return server.snapshot()

    # -- persistence -----------------------------------------------------------------------------

    def update_journal(self) -> None:
        """Journal the writes while the settings ask for a journal or count changes for save
        points; stop paying for it otherwise."""
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
            self.db.on_expired = self._log_expired
        else:
            self.journal = None
            self.db.on_expired = None

    def _log_expired(self, key: bytes) -> None:
        """The keyspace's ``on_expired`` while journaling: a DEL for each key whose time
        passed."""
        journal = self.journal
        if journal is not None:
            journal += delete(key)

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
                return errors.MISCONF_RDB
            return errors.misconf_aof(exc.strerror)
        return None
