"""A tiny durable daemon for the state tests: string keys over a line protocol.

    SET key value -> OK        INCR key -> the new value      GET key -> value or NIL
    SAVE -> OK | ERR ...       BGSAVE -> OK | BUSY             REWRITE -> OK | NO
    INFO -> the persistence figures as JSON                    DBSIZE -> number of keys

A write refused because the disk refuses data gets ``ERR MISCONF <why>``. Journal records use the
framework's default framing; snapshots its default container (JSON payload).

    residentd run tests/state/kvlite.py:app --listen 127.0.0.1:PORT --dir D --appendonly yes
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from residentd.app import App, Session
from residentd.codecs.lines import LineCodec
from residentd.settings import setting
from residentd.state import Container, LengthCrcRecords, NotWritable, Persistence, encode_record


class Store:
    """The state machine: a dict of byte strings."""

    records = LengthCrcRecords()
    snapshot_format = Container(b"KVL1", 1)

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def reset(self) -> None:
        self.data = {}

    def load(self, payload: bytes) -> None:
        self.data = {k.encode(): v.encode() for k, v in json.loads(payload).items()}

    def dump(self, out: BinaryIO) -> None:
        if os.getpid() != MAIN_PID:  # a slow disk: a forked child takes its time
            time.sleep(app.current(KvLiteSettings).dump_delay)
        out.write(json.dumps({k.decode(): v.decode() for k, v in self.data.items()}).encode())

    def apply(self, record: bytes) -> None:
        self.execute(record.split(b" ", 2))

    def execute(self, words: list[bytes]) -> bytes:
        if words[0] == b"SET":
            self.data[words[1]] = words[2]
            return b"OK"
        value = int(self.data.get(words[1], b"0")) + 1
        self.data[words[1]] = str(value).encode()
        return self.data[words[1]]


@dataclass(frozen=True, slots=True)
class KvLiteSettings:
    dump_delay: float = setting(0.0, "seconds a snapshot child sleeps before writing (tests)")


MAIN_PID = os.getpid()
store = Store()
app = App("kvlite", "a durable toy store for the state tests")
app.declare(KvLiteSettings)
persistence = Persistence.attach(app, store, snapshot_name="kvlite.snap")


class KvLite(Session):
    __slots__ = ()
    defer_writes = True

    def on_message(self, line: bytes) -> None:
        words = line.split(b" ", 2)
        command = words[0].upper()
        if command in (b"SET", b"INCR") and len(words) >= (3 if command == b"SET" else 2):
            try:
                persistence.check_writable()
            except NotWritable as exc:
                self.send(b"ERR MISCONF " + str(exc).encode())
                return
            words[0] = command
            reply = store.execute(words)
            persistence.append(encode_record(b" ".join(words)), waiter=self.conn)
            self.send(reply)
        elif command == b"GET" and len(words) == 2:
            self.send(store.data.get(words[1], b"NIL"))
        elif command == b"DBSIZE":
            self.send(str(len(store.data)).encode())
        elif command == b"SAVE":
            try:
                persistence.save_sync()
                self.send(b"OK")
            except OSError as exc:
                self.send(f"ERR {exc}".encode())
        elif command == b"BGSAVE":
            self.send(b"OK" if persistence.snapshot_now() else b"BUSY")
        elif command == b"REWRITE":
            self.send(b"OK" if persistence.rewrite_now() else b"NO")
        elif command == b"INFO":
            self.send(json.dumps(info()).encode())
        else:
            self.send(b"ERR unknown command")


def info() -> dict[str, Any]:
    return persistence.info()


app.service("kvlite", KvLite, codec=lambda: LineCodec(max_line=1 << 20), listen=["127.0.0.1:0"])
