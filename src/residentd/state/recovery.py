"""Start-up: load the base snapshot, replay the journal tail, and say what was wrong.

A torn tail (the last record of the last journal file cut short by a crash) is cut off with a
warning naming the bytes dropped, as Redis's ``aof-load-truncated``; the file is truncated so
new records do not follow garbage. Anything else that does not parse is ``CorruptFile`` with
the file and byte offset, and start-up stops (exit 2). ``check`` and ``repair`` are the
offline side of the same scan (``residentd repair FILE``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from residentd.state.api import BadRecord, BadSnapshot, CorruptFile, RecordReader, StateMachine

log = logging.getLogger("residentd.state")


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def load_snapshot(path: str, machine: StateMachine) -> int:
    """Replace the state with the snapshot at ``path``; return its size."""
    data = _read(path)
    try:
        machine.reset()
        machine.load(machine.snapshot_format.read(data))
    except BadSnapshot as exc:
        raise CorruptFile(path, exc.offset, exc.reason) from None
    return len(data)


@dataclass(frozen=True, slots=True)
class Scan:
    """How far a journal file is whole: ``end`` bytes of ``size``, ``records`` records."""

    path: str
    size: int
    end: int
    records: int
    error: str | None  # why the bytes from ``end`` are bad; None for a torn tail or a whole file

    @property
    def dropped(self) -> int:
        return self.size - self.end


def scan(path: str, reader: RecordReader, machine: StateMachine | None = None) -> Scan:
    """Scan a journal file, applying each record to ``machine`` when one is given."""
    data = _read(path)
    end = 0
    count = 0
    apply = machine.apply if machine is not None else None
    try:
        for record, end in reader.scan(data):  # noqa: B007 - end is used after the loop
            if apply is not None:
                apply(record)
            count += 1
    except BadRecord as exc:
        return Scan(path, len(data), exc.offset, count, exc.reason)
    return Scan(path, len(data), end, count, None)


def replay(path: str, machine: StateMachine, last: bool) -> Scan:
    """Replay one journal file. A torn tail is allowed (and cut off) only in the last file."""
    result = scan(path, machine.records, machine)
    if result.error is not None:
        raise CorruptFile(path, result.end, result.error)
    if result.dropped:
        if not last:
            raise CorruptFile(path, result.end, "incomplete record in a journal file not the last")
        log.warning(
            "%s: the last record is incomplete (a crash during a write?): loaded %d records, "
            "dropped the last %d bytes (truncated the file at byte %d)",
            path,
            result.records,
            result.dropped,
            result.end,
        )
        os.truncate(path, result.end)
    return result


def repair(path: str, reader: RecordReader) -> Scan:
    """Cut a journal file at its first bad or incomplete record (the caller asked the user)."""
    result = scan(path, reader)
    if result.dropped:
        os.truncate(path, result.end)
    return result
