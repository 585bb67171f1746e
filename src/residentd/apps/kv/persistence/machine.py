"""kv's state machine for residentd.state: how the framework dumps, loads and replays a
keyspace in Redis's formats.

- ``dump`` writes the databases as an RDB file (rdb.py); it runs in the forked child of a
  BGSAVE or an AOF rewrite (the AOF's base file is an RDB file too, as with Redis's
  ``aof-use-rdb-preamble yes``);
- ``load`` reads an RDB file (kv's or redis-server's) into the databases;
- ``records`` reads the AOF's RESP commands and ``apply`` replays them through kv's own
  command handlers, so a replayed command does exactly what it did live; ``SELECT n``
  switches the database the following commands run in, as in Redis's AOF.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any, BinaryIO

from residentd.apps.kv.commands import DISPATCH
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.persistence import rdb
from residentd.apps.kv.persistence.aof import RespRecords
from residentd.state.api import BadSnapshot, RecordReader, SnapshotFormat
from residentd.state.framing import RawSnapshot

if TYPE_CHECKING:
    from residentd.apps.kv.blocking import Serve
    from residentd.apps.kv.state import KvState


class ReplayClient:
    """The ``Client`` a replayed command runs as: the keyspace and the state, no connection.
    A journal holds writes only (``RespRecords`` unwraps the MULTI/EXEC blocks), so a record
    that would start a transaction or a subscription is a bad journal."""

    __slots__ = ("db", "state")

    id = 0
    name: bytes | None = None
    channels: dict[bytes, None] | None = None
    patterns: dict[bytes, None] | None = None
    shard_channels: dict[bytes, None] | None = None
    in_transaction = False
    subscribed = False
    subscription_count = 0
    shard_subscription_count = 0
    authenticated = True
    no_evict = False
    resp = 2

    def __init__(self, state: KvState) -> None:
        self.state = state
        self.db = state.db

    def select(self, index: int) -> None:
        self.db = self.state.keyspace(index)

    def watch(self, key: bytes) -> None:
        raise ValueError("WATCH inside a journal record")

    def begin(self) -> None:
        raise ValueError("MULTI inside a journal record")

    def execute(self) -> bytes:
        raise ValueError("EXEC inside a journal record")

    def discard(self) -> None:
        raise ValueError("DISCARD inside a journal record")

    def subscribe(self, channel: bytes) -> None:
        raise ValueError("a pub/sub subscription in the journal")

    def set_protocol(self, version: int) -> None:
        raise ValueError("HELLO inside a journal record")

    def connection_command(self, *args: object) -> None:
        raise ValueError("a connection command inside a journal record")

    authenticate = reset = set_reply_mode = connection_command

    def describe(self) -> str:
        raise ValueError("CLIENT INFO inside a journal record")

    unsubscribe = psubscribe = punsubscribe = ssubscribe = sunsubscribe = subscribe
    unwatch = discard

    def block(self, keys: list[bytes], timeout: float, serve: Serve, timeout_reply: bytes) -> None:
        """A journal holds no blocking command (BLPOP is logged as LPOP): never blocks."""


class KvMachine:
    records: RecordReader = RespRecords()
    snapshot_format: SnapshotFormat = RawSnapshot()

    def __init__(self, state: KvState) -> None:
        self.state = state
        self.replayed = 0
        # The replay's client: SELECT in one record holds for the next, until the next
        # journal file, which starts in database 0 (``reset`` and ``begin_file``).
        self.client = ReplayClient(state)

    def reset(self) -> None:
        self.state.flush()
        self.client = ReplayClient(self.state)

    def load(self, payload: bytes) -> None:
        try:
            databases = rdb.load_databases(payload)
        except rdb.RdbError as exc:
            raise BadSnapshot(exc.reason, exc.offset) from None
        state = self.state
        for db in state.dbs:
            db.flush()
        for index, data, expires in databases:
            if index >= state.databases:
                raise BadSnapshot(
                    f"database {index} is out of range (databases {state.databases})", 0
                )
            db = state.keyspace(index)
            db.data = data
            db.expires = expires

    def apply(self, record: Any) -> None:
        client = self.client
        for argv in record:
            name = argv[0]
            if name.lower() == b"select":
                index = int(argv[1]) if len(argv) == 2 and argv[1].isdigit() else -1
                if not 0 <= index < self.state.databases:
                    raise ValueError(f"the journal selects database {argv[1:]!r}")
                client.select(index)
                continue
            entry = DISPATCH.get(name) or DISPATCH.get(name.lower())
            if entry is None:
                raise ValueError(f"unknown command {name!r} in the journal")
            with suppress(KvError):  # an error reply changed nothing, as when it ran
                entry[0](client, argv)
            self.replayed += 1

    def dump(self, out: BinaryIO) -> None:
        rdb.dump_databases(out, [(db.index, db.data, db.expires) for db in self.state.dbs])
