"""``Persistence``: an app's durable state, its files and their life while the daemon runs.

The runner calls ``open`` before listening (load the base and replay the journal, or load the
snapshot file when the journal is off) and ``close`` after the last connection is gone. In
between, every loop iteration's journal records are written at the server's commit point, before
any reply of that iteration leaves (``commit_iteration``, called by ``FlushQueue``); with
``always`` the replies of the connections that wrote (``append(..., waiter=conn)``) are held
while the disk refuses the data, so nothing is acknowledged that is not on disk.

With ``always`` the commit is Redis's group commit, in the loop: the iteration's records are
written and fsynced before any of its replies leave, one ``write`` and one ``fdatasync`` for
every connection's writes of the iteration. An iteration that brought new records first lets
one more iteration run, its output still held: the clients whose replies the last fsync
released send their next requests about then, and those join this fsync instead of waiting for
the next (``commit_iteration``). Every reply made meanwhile waits too, whichever connection it
goes to, as Redis's rule has it: no reply reveals state a crash could lose. ``commit_point`` is
the commit itself: write, fsync, release everything.

Snapshots (``snapshot_now``, the ``save`` schedule) and compaction (``rewrite_now``, the
``auto_aof_rewrite_*`` thresholds) run in a forked child, one at a time, as Redis's BGSAVE and
BGREWRITEAOF. A compaction first switches the journal to a new incremental file (recorded in the
manifest), then forks: the child's base is the state at that instant, and the writes made
meanwhile land in the new file, which the final manifest keeps after the new base.

A disk error (ENOSPC, EFBIG, EIO, EROFS) sets ``writable`` to False and ``last_error``; the app
refuses writes (``check_writable`` raises ``NotWritable``) and keeps serving reads; the failed
write is retried on every iteration and on a timer, and writes resume when it succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import logging
import os
import signal
import time
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from residentd.state import recovery
from residentd.state.api import StateMachine
from residentd.state.fsync import fsync_dir
from residentd.state.health import DiskHealth
from residentd.state.journal import Journal
from residentd.state.manifest import Layout, Manifest, Part, read_manifest, write_manifest
from residentd.state.settings import StateSettings
from residentd.state.snapshot import ChildJob, write_snapshot

if TYPE_CHECKING:
    from residentd.app import App

log = logging.getLogger("residentd.state")

RETRY_INTERVAL = 0.5  # seconds between retries of a refused journal write
SNAPSHOT_RETRY_DELAY = 5.0  # after a failed snapshot, as Redis's CONFIG_BGSAVE_RETRY_DELAY
_NONE: frozenset[object] = frozenset()  # no connection's output has to wait


class Persistence:
    # Slots for what a C fast path reads or adds to per pipeline (kv's after_journal); the
    # rest lives in the instance dict.
    __slots__ = ("__dict__", "__weakref__", "changes", "counts_only", "journal", "records")

    def __init__(
        self,
        machine: StateMachine,
        layout: Layout | None = None,
        snapshot_name: str = "state.snap",
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.machine = machine
        self.layout = layout or Layout()
        self.snapshot_name = snapshot_name
        self.names = dict(names or {})
        self.options: Mapping[str, Any] = {}
        self.settings: StateSettings | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.flushes: Any = None
        self.journal: Journal | None = None
        self.manifest: Manifest | None = None
        self.health = DiskHealth()
        # The records not yet written, kept across journal switches: every Journal writes from
        # it, and an app may append to it directly (``buffer``, then ``wrote``).
        self.buffer = bytearray()
        self._waiters: set[object] = set()
        self._commit_scheduled = False
        # A commit is scheduled and no reply waits for the disk (not ``always``): until it runs,
        # ``wrote`` only adds to ``changes`` and ``records``, which a C caller may do itself.
        self.counts_only = False
        # With always: an iteration that brought records lets one more run before the commit
        # (commit_iteration); off once a stop or a hand-over has begun.
        self._defer_commit = True
        self._deferred = False
        self._retry: asyncio.TimerHandle | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._child: ChildJob | None = None
        self._child_kind = ""
        self._rewrite_scheduled = False
        self._rewrite_base_size = 0
        self._rewrite_failed_at = 0.0
        self.changes = 0  # writes since the last successful snapshot
        self.records = 0  # journal records appended since start
        self.last_save_time = int(time.time())
        self.last_snapshot_duration: float | None = None
        self.last_bgsave_status = "ok"
        self.last_rewrite_status = "ok"
        self.last_rewrite_duration: float | None = None
        self.snapshot_failed_at = 0.0
        self.loaded: dict[str, Any] = {}
        #: Set by a live upgrade's new generation before ``open`` (daemon/upgrade.py).
        self.handed_over = False

    @classmethod
    def attach(
        cls,
        app: App,
        machine: StateMachine,
        *,
        layout: Layout | None = None,
        snapshot_name: str | None = None,
        names: Mapping[str, str] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> Persistence:
        """Make ``app``'s state durable: declare the options, hook into the runner."""
        layout = layout or Layout(basename=app.name)
        persistence = cls(machine, layout, snapshot_name or f"{app.name}.snap", names)
        # A name the app already declared is its own (kv's appendonly is a yes/no word).
        skip = tuple(
            item.name
            for item in dataclasses.fields(StateSettings)
            if persistence.names.get(item.name, item.name) in app.options
        )
        app.declare(StateSettings, names=persistence.names, skip=skip, **(defaults or {}))
        app.persistence = persistence
        app.on_stop(persistence.drain)
        return persistence

    # -- where the files are ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.settings is not None and self.settings.dir is not None

    @property
    def root(self) -> str:
        assert self.settings is not None and self.settings.dir is not None
        return self.settings.dir

    @property
    def snapshot_path(self) -> str:
        return os.path.join(self.root, self.snapshot_name)

    def _part_path(self, name: str) -> str:
        return os.path.join(self.layout.folder(self.root), name)

    # -- start and stop (the runner) -------------------------------------------------------------

    def open(
        self, options: Mapping[str, Any], loop: asyncio.AbstractEventLoop, flushes: Any
    ) -> None:
        """Load the state from disk and start journaling; raises ``CorruptFile``."""
        self.options = options
        self.settings = StateSettings.of(options, self.names)
        self.loop = loop
        self.flushes = flushes
        if not self.enabled:
            return
        # Past RLIMIT_FSIZE a write must fail with EFBIG, not kill the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        os.makedirs(self.root, exist_ok=True)
        started = time.monotonic()
        if self.handed_over:
            # The state comes over the handover socket; a journal the last generation
            # writes is appended to (none yet: take_over makes it from the loaded state).
            if self.settings.appendonly and read_manifest(self.layout, self.root) is not None:
                self._load_journal(load=False)
            self.loaded = {"handed_over": True}
        elif self.settings.appendonly:
            self._load_journal()
        else:
            self._load_snapshot_file()
        self.loaded["seconds"] = round(time.monotonic() - started, 6)
        flushes.commit = self.commit_point
        flushes.gate = self.commit_iteration
        if not self.handed_over:
            self._tick = loop.call_later(1.0, self._on_tick)

    def take_over(self) -> None:
        """A live upgrade's new generation, once the old one has let go: the state loaded
        from the handover socket is what the files hold; journal and schedule from now on
        (``handed_over`` made ``open`` load nothing and start no snapshot)."""
        self.handed_over = False
        if not self.enabled:
            return
        assert self.settings is not None and self.loop is not None
        if self.settings.appendonly and self.journal is None:
            self._load_journal(load=False)  # the first base, from the state now in memory
        self._tick = self.loop.call_later(1.0, self._on_tick)

    # -- a live upgrade ----------------------------------------------------------------------

    def settle(self) -> None:
        """The old generation, its connections held: journal what is buffered now, so the
        state it streams next holds nothing a file does not."""
        self.drain()

    def drain(self) -> None:
        """A graceful stop has begun (an ``on_stop`` hook) or the state is handed over: from now
        on every iteration commits at once (no iteration more with ``always``), and what is
        buffered is written, fsynced and its replies released now, before the connections are
        told goodbye (their lingering close sends only what they hold themselves)."""
        self._defer_commit = False
        if self.journal is not None:
            self.commit_point()

    def export_snapshot(self) -> bytes:
        """The whole state in the app's snapshot format, for the next generation."""
        out = io.BytesIO()
        self.machine.snapshot_format.write(out, self.machine.dump)
        return out.getvalue()

    def import_snapshot(self, snapshot: bytes) -> None:
        """Load the state the last generation streamed (``export_snapshot``)."""
        machine = self.machine
        machine.reset()
        machine.load(machine.snapshot_format.read(snapshot))

    def let_go(self) -> None:
        """The old generation, once the new one took over: records made since the state was
        taken (a timer's) are in no generation's memory and the files are the new one's now,
        so they are dropped, not written; then the files are closed."""
        if self.journal is not None:
            self.journal.buffer.clear()
        self.close()

    def _load_snapshot_file(self) -> None:
        if os.path.exists(self.snapshot_path):
            size = recovery.load_snapshot(self.snapshot_path, self.machine)
            self.loaded.update(snapshot=self.snapshot_path, snapshot_bytes=size)
            self.last_save_time = int(os.stat(self.snapshot_path).st_mtime)

    def _load_journal(self, load: bool = True) -> None:
        assert self.settings is not None
        manifest = read_manifest(self.layout, self.root)
        folder = self.layout.folder(self.root)
        if manifest is None:
            # No journal yet: start from the snapshot file, then make it the first base.
            if load:
                self._load_snapshot_file()
            os.makedirs(folder, exist_ok=True)
            base = Part(self.layout.base_name(1), 1, "b")
            manifest = Manifest(base, [Part(self.layout.incr_name(1), 1, "i")])
            write_snapshot(self._part_path(base.name), self.machine, self._format())
            open(self._part_path(manifest.incrs[0].name), "ab").close()
            write_manifest(self.layout, self.root, manifest)
            fsync_dir(folder)
        else:
            if load:
                self._replay(manifest)
            self._remove_strays(manifest)
            if not manifest.incrs:
                seq = 1 if manifest.base is None else manifest.base.seq
                manifest.incrs.append(Part(self.layout.incr_name(seq), seq, "i"))
                write_manifest(self.layout, self.root, manifest)
            manifest.history.clear()
        self.manifest = manifest
        self.journal = Journal(
            self._part_path(manifest.incrs[-1].name), self.settings.appendfsync, self.buffer
        )
        self._rewrite_base_size = self.journal_size()

    def _replay(self, manifest: Manifest) -> None:
        """Load the manifest's base and replay its incremental files into the machine."""
        if manifest.base is not None:
            size = recovery.load_snapshot(self._part_path(manifest.base.name), self.machine)
            self.loaded.update(base=manifest.base.name, base_bytes=size)
        else:
            self.machine.reset()
        records = 0
        for index, part in enumerate(manifest.incrs):
            last = index == len(manifest.incrs) - 1
            result = recovery.replay(self._part_path(part.name), self.machine, last)
            records += result.records
            if result.dropped:
                self.loaded["truncated_bytes"] = result.dropped
        self.loaded["records"] = records

    def _remove_strays(self, manifest: Manifest) -> None:
        """Delete what a crash left in the journal folder: history files, a base written by a
        compaction whose manifest was never switched, temporary files."""
        folder = self.layout.folder(self.root)
        named = {
            part.name for part in [*([manifest.base] if manifest.base else []), *manifest.incrs]
        }
        prefix = f"{self.layout.basename}."
        for name in os.listdir(folder):
            stray = name.startswith(prefix) and (".base." in name or ".incr." in name)
            if (stray and name not in named) or ".tmp-" in name:
                _unlink(os.path.join(folder, name))

    def _format(self) -> Any:
        return self.machine.snapshot_format

    def close(self) -> None:
        """Write and fsync what is buffered, stop a running child, close the journal."""
        for handle in (self._tick, self._retry):
            if handle is not None:
                handle.cancel()
        if self._child is not None:
            child, self._child = self._child, None
            child.on_done = lambda error, seconds: None
            child.kill()
        if self.journal is not None:
            try:
                self._sync_journal()
            except OSError as exc:
                log.error("cannot write the journal at stop: %s", exc.strerror)
            self.journal.close()
            self.journal = None
        if self.flushes is not None and self.flushes.commit == self.commit_point:
            self.flushes.commit = None
            self.flushes.gate = None

    # -- for the app -------------------------------------------------------------------------------

    @property
    def writable(self) -> bool:
        """False while the disk refuses the app's data (writes must be refused)."""
        return self.health.writable

    @property
    def last_error(self) -> str | None:
        return self.health.last_error

    @property
    def last_strerror(self) -> str:
        return self.health.last_strerror

    def check_writable(self) -> None:
        """Raise ``NotWritable`` while the disk refuses writes."""
        self.health.check()

    def append(self, record: bytes | bytearray, waiter: object = None) -> None:
        """Journal one record (already framed by the app). With ``always``, ``waiter`` (the
        connection whose reply acknowledges it) gets its output only once the record is on disk.
        """
        if self.journal is not None:
            self.buffer += record
        self.wrote(waiter)

    def wrote(self, waiter: object = None, changes: int = 1, records: int | None = None) -> None:
        """Count ``records`` (by default ``changes``) records that the app appended to
        ``buffer`` itself (kv's pipeline, all its commands' records at once), and ``changes``
        changes for the save points: the records are written at this iteration's commit
        point, and with ``always`` ``waiter``'s output waits for their fsync, as with
        ``append``. Without a journal (``save`` points only) the records are dropped: the
        changes are counted."""
        self.changes += changes
        journal = self.journal
        if journal is None:
            if self.buffer:
                del self.buffer[:]
            return
        self.records += changes if records is None else records
        if waiter is not None and journal.policy == "always":
            self._waiters.add(waiter)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self.counts_only = journal.policy != "always"
            flushes = self.flushes
            if flushes is not None and flushes.commit is not None:
                flushes.wake()  # the iteration's one flush callback commits first
            else:  # no server's flush queue to wake: commit on our own (held replies wait
                # for the retry timer)
                assert self.loop is not None
                self.loop.call_soon(self.commit_point)

    def changed(self, count: int = 1) -> None:
        """Count writes that have no journal record of their own (for the ``save`` points)."""
        self.changes += count

    # -- the commit point --------------------------------------------------------------------------

    def commit_point(self) -> Collection[object]:
        """Write (and with ``always`` fsync) the records buffered so far, now; the output held
        for an fsync in flight is released once they are on disk. Returns the connections whose
        output must wait because the disk refused the records."""
        self._commit_scheduled = self.counts_only = False
        journal = self.journal
        if journal is None or (
            not self.buffer
            and not self._waiters
            and not self.health.failing("journal")
            and (journal.synced >= journal.size or journal.policy != "always")
        ):
            return _NONE
        try:
            journal.commit()
        except OSError as exc:
            self._fail("write", exc)
            return self._waiters
        if self._waiters:
            self._waiters = set()
        if not self.health.writable and journal.last_fsync_error is None:
            self.health.recover("journal")
        if journal.policy == "always" and self.flushes is not None:
            self.flushes.release()  # all written and fsynced
        return _NONE

    def commit_iteration(self) -> tuple[Collection[object], int]:
        """The server's commit point, once per loop iteration before any output (``FlushQueue``'s
        gate). Returns the connections whose output waits for the disk to accept data, and the
        ticket the iteration's other output waits for: 0, it may leave now; -1, ask again next
        iteration. With ``always`` an iteration that brought records is answered -1 once, so
        that the requests clients send as the last fsync's replies reach them join this fsync:
        at pipeline 1 with 50 clients that made 34 requests an fsync instead of 30, and kv's
        ``always`` 0.98x to 1.16x as fast as the fsync in a thread of its own, at 25% to 40%
        less CPU a request (docs/benchmarks.md)."""
        journal = self.journal
        always = journal is not None and journal.policy == "always"
        if self.flushes is not None:
            # Without ``always`` no reply waits for the disk: the flushes call in only when
            # woken (records to write) or while output is held.
            self.flushes.gate_each = always
        if (
            always
            and self.buffer
            and self._defer_commit
            and not self._deferred
            and not self.health.failing("journal")
        ):
            self._deferred = True
            return _NONE, -1
        self._deferred = False
        held = self.commit_point()
        if journal is not None and always and journal.synced < journal.size:
            return held, journal.size  # an fsync failed: nothing may reveal those writes
        return held, 0

    def _fail(self, what: str, exc: OSError) -> None:
        strerror = exc.strerror or str(exc)
        self.health.fail("journal", f"journal {what} failed: {strerror}", strerror)
        self._schedule_retry()

    def _sync_journal(self) -> None:
        """Write and fsync the journal now (before a switch or a stop); release what waited."""
        assert self.journal is not None
        self.counts_only = False  # the journal may be switched next: wrote() decides again
        self.journal.sync()
        if self.flushes is not None:
            self.flushes.release()

    def _schedule_retry(self) -> None:
        if self._retry is None and self.loop is not None:
            self._retry = self.loop.call_later(RETRY_INTERVAL, self._retry_commit)

    def _retry_commit(self) -> None:
        self._retry = None
        held = self.commit_point()
        if not held and self.flushes is not None:
            self.flushes.release_held()

    # -- snapshots and compaction ------------------------------------------------------------------

    @property
    def child_running(self) -> str:
        """``"snapshot"`` or ``"rewrite"`` while a child runs, else ``""``."""
        return self._child_kind if self._child is not None else ""

    def snapshot_now(self) -> bool:
        """Start a background snapshot to the snapshot file; False if a child already runs."""
        if not self.enabled or self._child is not None:
            return False
        assert self.loop is not None
        path, machine, fmt = self.snapshot_path, self.machine, self._format()
        changes = self.changes
        try:
            self._child = ChildJob(
                self.loop,
                lambda: write_snapshot(path, machine, fmt),
                lambda error, seconds: self._snapshot_done(error, seconds, changes),
            )
        except OSError as exc:
            self._snapshot_done(f"cannot fork: {exc.strerror}", 0.0, changes)
            return False
        self._child_kind = "snapshot"
        return True

    def save_sync(self) -> None:
        """Write a snapshot in this process, blocking (Redis's SAVE); raises OSError."""
        started = time.monotonic()
        changes = self.changes
        try:
            write_snapshot(self.snapshot_path, self.machine, self._format())
        except OSError as exc:
            self._snapshot_done(f"{exc.strerror or exc}", time.monotonic() - started, changes)
            raise
        self._snapshot_done(None, time.monotonic() - started, changes)

    def _snapshot_done(self, error: str | None, seconds: float, changes: int) -> None:
        self._child = None
        self.last_snapshot_duration = round(seconds, 6)
        if error is None:
            self.last_bgsave_status = "ok"
            self.last_save_time = int(time.time())
            self.changes -= changes
            log.info("snapshot written to %s in %.3fs", self.snapshot_path, seconds)
            self.health.recover("snapshot")
        else:
            self.last_bgsave_status = "err"
            self.snapshot_failed_at = time.monotonic()
            text = f"snapshot failed: {error}"
            if self.settings is not None and self.settings.save_points:
                self.health.fail("snapshot", text, error)  # stop-writes-on-bgsave-error
            else:
                log.error("%s", text)
        self._after_child()

    def rewrite_now(self) -> bool:
        """Compact the journal in the background (Redis's BGREWRITEAOF). While another child
        runs, the compaction is scheduled for when it ends. False when there is no journal."""
        if self.journal is None or self.manifest is None:
            return False
        if self._child is not None:
            self._rewrite_scheduled = True
            return True
        assert self.loop is not None and self.settings is not None
        manifest = self.manifest
        # 1. A new incremental file takes the writes from now on, recorded in the manifest.
        seq = manifest.incrs[-1].seq + 1
        incr = Part(self.layout.incr_name(seq), seq, "i")
        try:
            self._sync_journal()
            new_journal = Journal(
                self._part_path(incr.name), self.settings.appendfsync, self.buffer
            )
            switched = Manifest(manifest.base, [*manifest.incrs, incr])
            try:
                write_manifest(self.layout, self.root, switched)
            except OSError:
                new_journal.close()
                _unlink(new_journal.path)
                raise
        except OSError as exc:
            self._rewrite_done(f"cannot switch the journal: {exc.strerror or exc}", 0.0, None)
            return False
        self.journal.close()
        self.journal = new_journal
        self.manifest = switched
        # 2. The child writes the state as of now as the next base.
        base_seq = (manifest.base.seq if manifest.base is not None else 0) + 1
        base = Part(self.layout.base_name(base_seq), base_seq, "b")
        path, machine, fmt = self._part_path(base.name), self.machine, self._format()
        try:
            self._child = ChildJob(
                self.loop,
                lambda: write_snapshot(path, machine, fmt),
                lambda error, seconds: self._rewrite_done(error, seconds, (base, incr)),
            )
        except OSError as exc:
            self._rewrite_done(f"cannot fork: {exc.strerror}", 0.0, None)
            return False
        self._child_kind = "rewrite"
        self._rewrite_scheduled = False
        return True

    def _rewrite_done(
        self, error: str | None, seconds: float, parts: tuple[Part, Part] | None
    ) -> None:
        self._child = None
        self.last_rewrite_duration = round(seconds, 6)
        if error is None and parts is not None and self.manifest is not None:
            base, incr = parts
            old = self.manifest
            index = old.incrs.index(incr)
            new = Manifest(base, old.incrs[index:])
            try:
                write_manifest(self.layout, self.root, new)
            except OSError as exc:
                error = f"cannot write the manifest: {exc.strerror or exc}"
                _unlink(self._part_path(base.name))
            else:
                self.manifest = new
                for part in [*([old.base] if old.base else []), *old.incrs[:index]]:
                    _unlink(self._part_path(part.name))
                self._rewrite_base_size = self.journal_size()
                log.info("journal compacted into %s in %.3fs", base.name, seconds)
        if error is None:
            self.last_rewrite_status = "ok"
        else:
            self.last_rewrite_status = "err"
            self._rewrite_failed_at = time.monotonic()
            log.error("journal compaction failed: %s", error)
        self._after_child()

    def _after_child(self) -> None:
        if self._rewrite_scheduled and self.journal is not None:
            self.rewrite_now()

    def _on_tick(self) -> None:
        """Once a second: the ``save`` schedule, the compaction thresholds, a journal retry."""
        assert self.loop is not None
        self._tick = self.loop.call_later(1.0, self._on_tick)
        settings = self.settings
        journal = self.journal
        if journal is not None and journal.last_fsync_error is not None:
            error = journal.last_fsync_error
            strerror = error.strerror or str(error)
            self.health.fail("journal", f"journal fsync failed: {strerror}", strerror)
            self._schedule_retry()
        if settings is None or self._child is not None:
            return
        now = time.monotonic()
        if settings.save_points and self.changes:
            since = time.time() - self.last_save_time
            retry_ok = (
                self.last_bgsave_status == "ok"
                or now - self.snapshot_failed_at >= SNAPSHOT_RETRY_DELAY
            )
            if retry_ok and any(
                since >= seconds and self.changes >= count
                for seconds, count in settings.save_points
            ):
                self.snapshot_now()
                return
        if (
            self.journal is not None
            and settings.auto_aof_rewrite_percentage
            and now - self._rewrite_failed_at >= SNAPSHOT_RETRY_DELAY
        ):
            size = self.journal_size()
            base = self._rewrite_base_size or 1
            if (
                size >= settings.auto_aof_rewrite_min_size
                and (size - base) * 100 / base >= settings.auto_aof_rewrite_percentage
            ):
                self.rewrite_now()

    # -- settings changed live -------------------------------------------------------------------

    def reconfigure(self, options: Mapping[str, Any]) -> None:
        """Apply changed options (a reload, kv's CONFIG SET): fsync policy, save points,
        thresholds, and the journal turned on or off."""
        if self.settings is None:
            return
        old = self.settings
        self.options = options
        new = StateSettings.of(options, self.names)
        if new.dir != old.dir:  # the folder needs a restart
            new = dataclasses.replace(new, dir=old.dir)
        self.settings = new
        if not self.enabled:
            return
        if new.appendonly and self.journal is None:
            self._start_journal()
        elif not new.appendonly and self.journal is not None:
            self._sync_journal()
            self.journal.close()
            self.journal = None
            self.manifest = None
        elif self.journal is not None and new.appendfsync != self.journal.policy:
            self._sync_journal()
            path = self.journal.path
            self.journal.close()
            self.journal = Journal(path, new.appendfsync, self.buffer)

    def _start_journal(self) -> None:
        """Turn the journal on while running: a base of the current state, written in this
        process (a snapshot in a child would miss nothing, but the manifest must not name a
        base that does not exist yet), then an empty incremental file."""
        assert self.settings is not None
        folder = self.layout.folder(self.root)
        os.makedirs(folder, exist_ok=True)
        old = read_manifest(self.layout, self.root)
        seq = 1
        if old is not None:
            seq = 1 + max([part.seq for part in [*([old.base] if old.base else []), *old.incrs]])
        base = Part(self.layout.base_name(seq), seq, "b")
        incr = Part(self.layout.incr_name(seq), seq, "i")
        write_snapshot(self._part_path(base.name), self.machine, self._format())
        open(self._part_path(incr.name), "ab").close()
        manifest = Manifest(base, [incr])
        write_manifest(self.layout, self.root, manifest)
        if old is not None:
            for part in [*([old.base] if old.base else []), *old.incrs]:
                _unlink(self._part_path(part.name))
        self.manifest = manifest
        del self.buffer[:]  # records of writes the new base holds already
        self.journal = Journal(self._part_path(incr.name), self.settings.appendfsync, self.buffer)
        self._rewrite_base_size = self.journal_size()

    # -- figures -----------------------------------------------------------------------------------

    def journal_size(self) -> int:
        """Bytes of the base and incremental files the manifest names."""
        if self.manifest is None:
            return 0
        total = 0
        for part in [*([self.manifest.base] if self.manifest.base else []), *self.manifest.incrs]:
            with contextlib.suppress(OSError):
                total += os.stat(self._part_path(part.name)).st_size
        return total

    def info(self) -> dict[str, Any]:
        """Figures for ``status``, ``/metrics`` and kv's ``INFO persistence``."""
        journal = self.journal
        return {
            "enabled": self.enabled,
            "appendonly": journal is not None,
            "appendfsync": journal.policy if journal is not None else None,
            "writable": self.writable,
            "last_disk_error": self.last_error,
            "changes_since_save": self.changes,
            "last_save_time": self.last_save_time,
            "last_snapshot_duration": self.last_snapshot_duration,
            "last_bgsave_status": self.last_bgsave_status,
            "snapshot_in_progress": self.child_running == "snapshot",
            "rewrite_in_progress": self.child_running == "rewrite",
            "rewrite_scheduled": self._rewrite_scheduled,
            "last_rewrite_status": self.last_rewrite_status,
            "last_rewrite_duration": self.last_rewrite_duration,
            "journal_size": self.journal_size() if journal is not None else 0,
            "journal_base_size": self._rewrite_base_size,
            "journal_buffer": journal.pending if journal is not None else 0,
            "journal_records": self.records,
            "journal_writes": journal.writes if journal is not None else 0,
            "journal_fsyncs": journal.fsyncs if journal is not None else 0,
            "fsync_lag": round(journal.fsync_lag(), 3) if journal is not None else 0.0,
            "loaded": dict(self.loaded),
        }


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
