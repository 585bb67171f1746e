"""Durable state for resident apps: a journal of an app's records, snapshots written by a forked
child, compaction under a manifest, start-up recovery and disk errors (see api.py)."""

from residentd.state.api import (
    BadRecord,
    BadSnapshot,
    CorruptFile,
    NotWritable,
    RecordReader,
    SnapshotFormat,
    StateError,
    StateMachine,
)
from residentd.state.framing import Container, LengthCrcRecords, RawSnapshot, encode_record
from residentd.state.manifest import Layout, Manifest, Part
from residentd.state.persistence import Persistence

__all__ = [
    "BadRecord",
    "BadSnapshot",
    "Container",
    "CorruptFile",
    "Layout",
    "LengthCrcRecords",
    "Manifest",
    "NotWritable",
    "Part",
    "Persistence",
    "RawSnapshot",
    "RecordReader",
    "SnapshotFormat",
    "StateError",
    "StateMachine",
    "encode_record",
]
