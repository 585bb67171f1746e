"""What one kv daemon holds beside its connections: the databases, the WATCHed keys, the
pub/sub hub, SCAN snapshots, the set of subscribed clients, the settings the commands read,
its persistence (residentd.state, wired in persistence/wiring.py), and the facts of the
server it runs in.

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

The databases (``dbs``, SELECT's numbers, ``databases`` of them as in Redis) are made when
first used: ``keyspace(n)``; ``db`` is database 0. A record journaled in another database
than the journal's last one is preceded by ``SELECT n``, as Redis's ``feedAppendOnlyFile``
writes it (``journal_select``); each new journal file starts from database 0 again.

One ``KvState`` is made per ``KvApp`` (``create_app`` in __init__.py), so tests can run
several independent daemons in one process; every session reaches it as ``app.state``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from residentd.app import App
from residentd.apps.kv import errors
from residentd.apps.kv.blocking import Blocking
from residentd.apps.kv.eviction import Eviction
from residentd.apps.kv.memory import UsedMemory
from residentd.apps.kv.notifications import EVICTED, KEY_MISS, Notifier, parse_flags
from residentd.apps.kv.persistence.aof import EXEC, MULTI, count_records, delete, encode
from residentd.apps.kv.pubsub import Hub, Subscriber
from residentd.apps.kv.roster import Listed
from residentd.apps.kv.scan import Cursors
from residentd.apps.kv.store import CYCLE_BUDGET, Keyspace
from residentd.apps.kv.watch import Watches
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


_SELECT = b"*2\r\n$6\r\nSELECT\r\n"  # the start of a journaled SELECT n


class KvState:
    # Slots: what _fast_serve.h checks for every chunk it serves is read at a known place.
    __slots__ = (
        "_journal_db",
        "_journal_file",
        "app",
        "atomic",
        "blocking",
        "clients",
        "commands",
        "cursors",
        "db",
        "dbs",
        "evicted_keys",
        "eviction",
        "health",
        "hub",
        "journal",
        "memory",
        "notifier",
        "options",
        "out_of_memory",
        "persistence",
        "script_busy",
        "scripts",
        "started",
        "stats_base",
        "subscribers",
        "watches",
    )

    def __init__(self, app: App) -> None:
        self.app = app
        self.options: dict[str, Any] = app.options
        self.db = Keyspace(0)
        self.dbs = [self.db]  # grown up to ``databases`` as SELECT and the others need them
        self.db.on_expired = partial(self._expired, self.db)
        self.watches = Watches()
        self.hub = Hub()
        self.cursors = Cursors()
        self.subscribers: dict[Subscriber, None] = {}
        # The connected clients by id, oldest first (CLIENT LIST, CLIENT KILL).
        self.clients: dict[int, Listed] = {}
        self.blocking = Blocking()  # clients blocked on keys (BLPOP, ...)
        self.started = time.time()
        self.commands = 0  # commands run, for INFO (a connection counts pipelines)
        self.persistence: KvPersistence | None = None
        self.journal: bytearray | None = None
        # The database the journal's records run in now, and the journal file it is of.
        self._journal_db = 0
        self._journal_file: object = None
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
        # notify-keyspace-events: publishes the keyspace's changes while not empty.
        self.notifier: Notifier | None = None
        # maxmemory: the used memory (memory.py), and while a limit is set its eviction.
        self.memory = UsedMemory()
        self.eviction: Eviction | None = None
        self.evicted_keys = 0
        # The limit was passed and nothing could be evicted before the last command (a
        # script's denyoom calls are refused then, as Redis's pre_command_oom_state says).
        self.out_of_memory = False
        # CONFIG RESETSTAT: the server's counters as they were then (INFO shows the rest).
        self.stats_base: dict[str, int] = {}

    @property
    def requirepass(self) -> bytes | None:
        """The default user's password (None: every client is authenticated)."""
        return self.options.get("requirepass", "").encode("latin-1") or None

    def configure_notifications(self) -> None:
        """Start (or stop) publishing as the ``notify_keyspace_events`` option says."""
        self.set_notifications(parse_flags(self.options.get("notify_keyspace_events", "")) or 0)

    def set_notifications(self, flags: int) -> None:
        """notify-keyspace-events: publish changes of the classes in ``flags`` (0: none)."""
        self.notifier = Notifier(self.hub, flags) if flags else None
        for db in self.dbs:
            db.on_miss = self._miss_reporter(db)

    def _miss_reporter(self, db: Keyspace) -> Callable[[bytes], None] | None:
        """What a read that finds no key calls in ``db``: the ``keymiss`` event's sender
        while notifications ask for it, else nothing (reads then pay one test)."""
        notifier = self.notifier
        if notifier is None or not notifier.flags & KEY_MISS:
            return None
        return partial(notifier.key_miss, db=db.index)

    def configure_eviction(self) -> None:
        """Apply the ``maxmemory*`` and ``lfu-*`` options: a limit and its policy (the keys'
        access stamps kept while it needs them), or none (0)."""
        previous = self.eviction
        options = self.options
        options["maxmemory_policy"] = options["maxmemory_policy"].lower()  # as CONFIG SET has it
        eviction = Eviction(self.memory, self.dbs, self._evicted, self.options)
        self.eviction = eviction if eviction.maxmemory else None
        self.out_of_memory = False
        for db in self.dbs:
            if self.eviction is None or previous is None or previous.lru != eviction.lru:
                db.access = db.stamp = None  # and LRU and LFU stamps do not mean the same
            if self.eviction is not None:
                eviction.start_tracking(db)

    @property
    def max_bulk_len(self) -> int:
        return int(self.options["proto_max_bulk_len"])

    # -- databases --------------------------------------------------------------------------------

    @property
    def databases(self) -> int:
        """How many databases there are (Redis's ``databases``)."""
        return int(self.options.get("databases", 16))

    def keyspace(self, index: int) -> Keyspace:
        """Database ``index`` (0 <= index < ``databases``), made on first use."""
        dbs = self.dbs
        while len(dbs) <= index:
            db = Keyspace(len(dbs))
            db.on_expired = partial(self._expired, db)
            db.on_miss = self._miss_reporter(db)
            if self.eviction is not None:
                self.eviction.start_tracking(db)
            dbs.append(db)
        return dbs[index]

    def flush(self) -> None:
        """FLUSHALL: every database emptied (touching the watched keys that existed)."""
        for db in self.dbs:
            self.flush_db(db)
        self.cursors.clear()

    def flush_db(self, db: Keyspace) -> None:
        """FLUSHDB: one database emptied."""
        if self.watches:
            self.watches.touch_db(db)
        db.flush()

    def swap_dbs(self, first: Keyspace, second: Keyspace) -> None:
        """SWAPDB: the contents of two databases exchanged; the clients blocked on a key of
        either that now exists may be served."""
        if self.watches:
            self.watches.touch_db(first, second)
            self.watches.touch_db(second, first)
        first.swap(second)
        blocking = self.blocking
        for index, key in list(blocking.keys):
            db = first if index == first.index else second if index == second.index else None
            if db is not None and key in db.data:
                blocking.signal(index, key)

    def touch(self, db: Keyspace, key: bytes) -> None:
        """A key another database's command changed (MOVE, COPY ... DB): its watchers'
        transactions fail (watch.py), and its blocked clients may be served (blocking.py)."""
        if self.watches:
            self.watches.touch(db, key)
        if self.blocking.keys:
            self.blocking.signal(db.index, key)

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

    def socket_of(self, client_id: int) -> tuple[str, int]:
        """A client's local address (as Redis writes an address) and file descriptor, from
        the asyncio transport under the network layer's connection."""
        server = self.app.server
        conn = server.connections.get(client_id) if server is not None else None
        transport: Any = getattr(conn, "transport", None)
        if transport is None:
            return "", -1
        sock = transport.get_extra_info("socket")
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            host, port = local[0], local[1]
            laddr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        else:
            laddr = f"{local}:0"
        return laddr, sock.fileno() if sock is not None else -1

    def connected_clients(self) -> int:
        server = self.app.server
        return 0 if server is None else len(server.connections)

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: INFO's counters start again from zero."""
        snapshot = self.counters()
        self.stats_base = {
            "accepted": snapshot["accepted"],
            "bytes_in": snapshot["bytes_in"],
            "bytes_out": snapshot["bytes_out"],
            "refused": sum(snapshot["refused"].values()),
        }
        self.commands = 0
        self.evicted_keys = 0
        for db in self.dbs:
            db.hits = db.misses = db.expired_keys = 0

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
        else:
            self.journal = None

    def _expired(self, db: Keyspace, key: bytes) -> None:
        """Each database's ``on_expired``: a DEL journaled while journaling, the key's
        watchers touched and an ``expired`` event sent."""
        self._deleted(db, key)
        if self.notifier is not None:
            self.notifier.expired(key, db.index)

    def _evicted(self, db: Keyspace, key: bytes) -> None:
        """A key evicted for maxmemory (eviction.py): as an expired one, with an ``evicted``
        event; counted for INFO's ``evicted_keys``."""
        self.evicted_keys += 1
        self._deleted(db, key)
        if self.notifier is not None:
            self.notifier.notify(EVICTED, b"evicted", key, db.index)

    def _deleted(self, db: Keyspace, key: bytes) -> None:
        """A key the server deleted on its own: a DEL journaled, its watchers touched."""
        journal = self.journal
        if journal is not None:
            mark = len(journal)
            journal += delete(key)
            self.journal_select(db, mark)
        if self.watches:
            self.watches.touch(db, key)

    def wrap_block(self, mark: int) -> None:
        """The journal's records from ``mark`` on as one MULTI/EXEC block (an EXEC's, or a
        script's effects): a ``SELECT`` that leads them stays before the block, where Redis
        writes it."""
        journal = self.journal
        assert journal is not None
        if journal.startswith(_SELECT, mark):  # *2 $6 SELECT $N n: past its last line
            mark = journal.index(b"\r\n", journal.index(b"\r\n", mark + len(_SELECT)) + 2) + 2
        journal[mark:mark] = MULTI
        journal += EXEC

    def journal_select(self, db: Keyspace, mark: int) -> None:
        """The journal's records from ``mark`` on were made in ``db``: put ``SELECT n``
        before them if the journal's last records were in another database or in another
        file (a rewrite starts a new one, which a replay reads from database 0)."""
        journal = self.journal
        persistence = self.persistence
        current = persistence.journal if persistence is not None else None
        if journal is None or (db.index == self._journal_db and current is self._journal_file):
            return
        journal[mark:mark] = encode([b"SELECT", b"%d" % db.index])
        self._journal_db = db.index
        self._journal_file = current

    def commit(self, waiter: object = None, mark: int | None = None, changed: bool = True) -> None:
        """After a pipeline (or a cycle) appended records to ``journal`` from ``mark`` on:
        have them journaled (the framework wakes its commit point), each command counted as a
        change for the save points, as Redis counts ``dirty``, unless not ``changed``: the
        keys the expiry and eviction cycles delete, which Redis does not count. Without
        ``mark`` (a blocked client served: its record was counted with the write that served
        it) only the waiter's output waits for the fsync."""
        persistence = self.persistence
        if persistence is not None:
            journal = self.journal
            records = 0 if mark is None or journal is None else count_records(journal, mark)
            persistence.wrote(waiter, records if changed else 0, records)

    def expire_cycle(self) -> None:
        """Redis's active expiry, with a DEL journaled for each key whose time passed."""
        journal = self.journal
        mark = len(journal) if journal is not None else 0
        deadline = time.perf_counter() + CYCLE_BUDGET  # one budget shared by the databases
        for db in self.dbs:
            if db.expires:
                db.expire_cycle(max(deadline - time.perf_counter(), 0.0))
        if journal is not None and len(journal) != mark:
            self.commit(mark=mark, changed=False)  # Redis's expiry leaves dirty alone

    def eviction_cycle(self) -> None:
        """What an eviction cut short by its time limit left over the limit, evicted from the
        cron (Redis's ``evictionTimeProc``), with a DEL journaled for each key."""
        eviction = self.eviction
        if eviction is None:
            return
        journal = self.journal
        mark = len(journal) if journal is not None else 0
        self.out_of_memory = not eviction.perform()
        if journal is not None and len(journal) != mark:
            self.commit(mark=mark, changed=False)  # as the expiry cycle's

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
