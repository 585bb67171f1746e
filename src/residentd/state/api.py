"""What an app implements to make its state durable, and what it gets back.

An app that wants its in-memory state to survive a restart, a crash or ``kill -9`` gives the
framework a ``StateMachine``: it encodes its own journal records (``journal.append(bytes)``,
called after a write is applied in memory and before its reply is sent), reads them back on
start-up (``records.scan``), and dumps and loads its whole state as a snapshot (``dump`` runs
in a forked child, copy-on-write, while the parent keeps serving).

The framework (``residentd.state.Persistence``) owns the files: the journal and its fsync
policy (``always``, ``everysec``, ``no``), snapshots (temporary file, fsync, atomic rename,
directory fsync), compaction (a manifest naming the base snapshot and the incremental journal
files, as Redis 7's multi-part AOF), start-up recovery and disk errors.

    class Counter(StateMachine):
        records = LengthCrcRecords()          # default framing: length + CRC32 per record
        snapshot_format = Container(b"CNT1")  # default snapshot file: magic, version, CRC32

        def apply(self, record: bytes) -> None: ...       # replay one journal record
        def dump(self, out: BinaryIO) -> None: ...        # the whole state (in the child)
        def load(self, payload: bytes) -> None: ...       # replace the state from a snapshot
        def reset(self) -> None: ...                      # empty the state

    persistence = Persistence.attach(app, Counter())      # declares dir/appendonly/... options

    # in a session, for a write:
    persistence.check_writable()          # raises NotWritable while the disk refuses data
    apply_in_memory(...)
    persistence.append(encode(record), waiter=self.conn)  # reply waits for the fsync (always)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from residentd.errors import ResidentdError


class StateError(ResidentdError):
    """Base of the errors of the state layer."""


class NotWritable(StateError):
    """Writes are refused because the disk refused the last journal or snapshot write.

    ``str(exc)`` says why (``"journal write failed: No space left on device"``). An app renders
    it in its own protocol (kv: ``-MISCONF ...``); reads keep being served, and writes resume
    by themselves once the disk accepts data again. ``kind`` is ``"journal"`` or
    ``"snapshot"`` (what the disk refused) and ``strerror`` the system's text of the error.
    """

    def __init__(self, message: str, kind: str = "journal", strerror: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.strerror = strerror


class CorruptFile(StateError):
    """A journal or snapshot that cannot be loaded: ``path``, ``offset`` and ``reason``.

    Start-up refuses to go on (exit code 2) rather than serve part of the data; ``residentd
    repair FILE`` truncates a journal at ``offset`` after saying what it drops.
    """

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt at byte {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class BadRecord(StateError):
    """Raised by a ``RecordReader`` at garbage: ``offset`` is where the bad record starts."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"bad record at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class BadSnapshot(StateError):
    """Raised by a ``SnapshotFormat`` or ``StateMachine.load`` for a snapshot that fails its
    checksum, has an unknown version or does not parse (``offset`` where known, else 0)."""

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class RecordReader(Protocol):
    """The app's framing of journal records (the framework never looks inside a record)."""

    def scan(self, data: bytes, start: int = 0) -> Iterator[tuple[Any, int]]:
        """Yield ``(record, end)`` for each whole record of ``data[start:]``, in order, where
        ``end`` is the offset just past that record.

        Stop quietly before an incomplete last record (a torn tail: the crash came mid-write;
        the framework drops those bytes with a warning). Raise ``BadRecord(offset, reason)`` at
        anything that is not the start of a valid record (a checksum mismatch, a bad header).
        """
        ...


class SnapshotFormat(Protocol):
    """The file format around a snapshot's payload: its version and checksum."""

    def write(self, out: BinaryIO, dump: Any) -> None:
        """Write a whole snapshot file to ``out``; ``dump(stream)`` writes the app's payload."""
        ...

    def read(self, data: bytes) -> bytes:
        """Check a whole snapshot file and return the payload ``StateMachine.load`` takes, or
        raise ``BadSnapshot``."""
        ...


class StateMachine(Protocol):
    """What an app implements. ``records`` and ``snapshot_format`` are attributes."""

    records: RecordReader
    snapshot_format: SnapshotFormat

    def reset(self) -> None:
        """Empty the state (before a load)."""

    def load(self, payload: bytes) -> None:
        """Replace the state with a snapshot's payload; raise ``BadSnapshot`` if it is bad."""

    def apply(self, record: Any) -> None:
        """Apply one replayed journal record (as ``records.scan`` yielded it)."""

    def dump(self, out: BinaryIO) -> None:
        """Write the whole state as a snapshot payload. Runs in a forked child: it must not use
        the event loop, the logging queue or any lock another thread may hold."""
