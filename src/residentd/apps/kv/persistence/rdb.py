"""Redis's RDB file, version 10 (what Redis 7.0 writes and reads): kv's snapshot, its
``dump.rdb`` and the base of its AOF.

    "REDIS0010"  AUX fields  (SELECTDB n  RESIZEDB keys expires  keys...)*  EOF  CRC64 (LE)

with one SELECTDB section for each database that holds keys, as Redis writes them.

Each key is an optional EXPIRETIME_MS (absolute Unix ms, 8 bytes LE), a type byte, the key
and the value. kv writes the plain encodings, which every Redis since 2.x (3.2 for sorted
sets) loads: a string as itself, a list, set or hash as a length and its elements
(RDB_TYPE_LIST, _SET, _HASH), a sorted set as a length and its members each followed by its
score as a little-endian binary double (RDB_TYPE_ZSET_2); it compresses nothing. A stream has
no plain encoding: it is written as Redis 7.0 writes it, RDB_TYPE_STREAM_LISTPACKS_2
(stream_rdb.py). The reader
also takes what redis-server writes for small values (listpack hashes and sorted sets,
quicklist-2 lists of listpacks, intset sets, LZF-compressed strings, the ziplists and the
text scores of older versions), so kv starts on a Redis dump. Keys whose time has passed are
skipped on load, as a Redis master does.

A stored checksum of 0 means the writer did not compute one (``rdbchecksum no``); any other
must match, or the file is refused (``RdbError`` with the byte offset).
"""

from __future__ import annotations

import math
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, BinaryIO, TypeAlias

from residentd.apps.kv.persistence import encodings, stream_rdb
from residentd.apps.kv.persistence.crc64 import crc64
from residentd.apps.kv.store import Table, new_table
from residentd.apps.kv.stream import Stream
from residentd.apps.kv.zset import SortedSet
from residentd.errors import ResidentdError

VERSION = 10
# One database: its number, its keys to values and its keys to absolute expiry times (ms).
Database: TypeAlias = tuple[int, Table, dict[bytes, int]]
MAGIC = b"REDIS%04d" % VERSION

# Types (rdb.h)
STRING, LIST, SET, ZSET, HASH, ZSET_2 = 0, 1, 2, 3, 4, 5
HASH_ZIPMAP, LIST_ZIPLIST, SET_INTSET, ZSET_ZIPLIST, HASH_ZIPLIST = 9, 10, 11, 12, 13
LIST_QUICKLIST, HASH_LISTPACK, ZSET_LISTPACK, LIST_QUICKLIST_2 = 14, 16, 17, 18
STREAM_LISTPACKS, STREAM_LISTPACKS_2 = stream_rdb.STREAM_LISTPACKS, stream_rdb.STREAM_LISTPACKS_2
# Opcodes
FUNCTION2, MODULE_AUX, IDLE, FREQ, AUX, RESIZEDB, EXPIRETIME_MS, EXPIRETIME, SELECTDB, EOF = (
    245,
    247,
    248,
    249,
    250,
    251,
    252,
    253,
    254,
    255,
)

FLUSH_AT = 1 << 20  # bytes buffered before a write (and a checksum step)


class RdbError(ResidentdError, ValueError):
    """An RDB file kv cannot load: why, and at which byte."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


# -- writing ------------------------------------------------------------------------------------


def length(n: int) -> bytes:
    """rdbSaveLen: 6 bits, 14 bits (big-endian), or a 32/64-bit big-endian length."""
    if n < 0x40:
        return bytes((n,))
    if n < 0x4000:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + n.to_bytes(4, "big")
    return b"\x81" + n.to_bytes(8, "big")


_SMALL_LENGTHS = [length(n) for n in range(0x4000)]


def string(value: bytes) -> bytes:
    size = len(value)
    return (_SMALL_LENGTHS[size] if size < 0x4000 else length(size)) + value


def aux(key: bytes, value: bytes) -> bytes:
    return bytes((AUX,)) + string(key) + string(value)


class Writer:
    """Buffers the file and keeps its running checksum."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.buffer = bytearray()
        self.crc = 0

    def flush(self) -> None:
        if self.buffer:
            self.crc = crc64(self.crc, self.buffer)
            self.out.write(self.buffer)
            self.buffer = bytearray()

    def finish(self) -> None:
        self.buffer.append(EOF)
        self.flush()
        self.out.write(struct.pack("<Q", self.crc))


def dump(out: BinaryIO, data: Table, expires: dict[bytes, int]) -> None:
    """Write ``data`` (with ``expires``, absolute ms) to ``out`` as an RDB file of database
    0."""
    dump_databases(out, [(0, data, expires)])


def dump_databases(out: BinaryIO, databases: Iterable[Database]) -> None:
    """Write the databases to ``out`` as an RDB file (the first one even when empty)."""
    w = Writer(out)
    buf = w.buffer
    buf += MAGIC
    buf += aux(b"redis-ver", b"7.0.0")
    buf += aux(b"redis-bits", b"64")
    buf += aux(b"ctime", b"%d" % int(time.time()))
    buf += aux(b"used-mem", b"0")
    for position, (index, data, expires) in enumerate(databases):
        if data or position == 0:
            _dump_database(w, index, data, expires)
    w.finish()


def _dump_database(w: Writer, index: int, data: Table, expires: dict[bytes, int]) -> None:
    buf = w.buffer
    buf += bytes((SELECTDB,)) + length(index)
    buf += bytes((RESIZEDB,)) + length(len(data)) + length(len(expires))
    pack_ms = struct.Struct("<BQ").pack
    for key, value in data.items():
        when = expires.get(key) if expires else None
        if when is not None:
            buf += pack_ms(EXPIRETIME_MS, when)
        cls = value.__class__
        if cls is bytes:
            buf.append(STRING)
            buf += string(key)
            buf += string(value)
        else:
            kind, body = encode(value)
            buf.append(kind)
            buf += string(key)
            buf += body
        if len(buf) >= FLUSH_AT:
            w.flush()
            buf = w.buffer


_TYPES: dict[type, int] = {deque: LIST, set: SET, dict: HASH, SortedSet: ZSET_2}


def encode(value: Any) -> tuple[int, bytes]:
    """A value's RDB type and serialization (rdbSaveObjectType, rdbSaveObject), as a file
    holds it after the key, and as DUMP's payload begins."""
    cls = value.__class__
    if cls is bytes:
        return STRING, string(value)
    if cls is Stream:
        return STREAM_LISTPACKS_2, stream_rdb.dump(value, string, length)
    kind = _TYPES.get(cls)
    if kind is None:
        raise TypeError(f"no RDB type for {cls.__name__}")
    out = bytearray(length(len(value)))
    if cls is dict:
        for field, item in value.items():
            out += string(field)
            out += string(item)
    elif cls is SortedSet:
        pack_score = struct.Struct("<d").pack
        for member, score in value.scores.items():
            out += string(member)
            out += pack_score(score)
    else:
        for item in value:
            out += string(item)
    return kind, bytes(out)


def decode(kind: int, data: bytes, start: int) -> Any:
    """The value of RDB type ``kind`` serialized in ``data`` from ``start`` (what follows it
    is not read); ``RdbError`` if it is not one kv can hold, or an empty collection (Redis refuses
    those too)."""
    r = Reader(data)
    r.pos = start
    value = _value(r, kind, start)
    if not value and value.__class__ is not bytes:
        raise RdbError("empty collection", start)
    return value


# -- reading ------------------------------------------------------------------------------------


class Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise RdbError("unexpected end of file", self.pos)
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise RdbError("unexpected end of file", self.pos)
        self.pos += 1
        return self.data[self.pos - 1]

    def length(self) -> tuple[int, bool]:
        """A length, or (for a string) its special encoding: (value, is_encoded)."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return int.from_bytes(self.take(4), "big"), False
        if first == 0x81:
            return int.from_bytes(self.take(8), "big"), False
        raise RdbError(f"bad length byte {first:#x}", self.pos - 1)

    def plain_length(self) -> int:
        n, encoded = self.length()
        if encoded:
            raise RdbError("encoded value where a length was expected", self.pos - 1)
        return n

    def binary_score(self) -> float:
        """rdbLoadBinaryDoubleValue: 8 bytes, little-endian."""
        score: float = struct.unpack("<d", self.take(8))[0]
        return score

    def text_score(self) -> float:
        """rdbLoadDoubleValue: a length byte (253 NaN, 254 inf, 255 -inf) and ASCII."""
        size = self.byte()
        if size >= 253:
            return (math.nan, math.inf, -math.inf)[size - 253]
        return float(self.take(size))

    def string(self) -> bytes:
        n, encoded = self.length()
        if not encoded:
            return self.take(n)
        if n in (0, 1, 2):  # an integer of 8, 16 or 32 bits
            return b"%d" % int.from_bytes(self.take(1 << n), "little", signed=True)
        if n == 3:
            start = self.pos
            compressed = self.plain_length()
            size = self.plain_length()
            try:
                return encodings.lzf_decompress(self.take(compressed), size)
            except ValueError as exc:
                raise RdbError(str(exc), start) from None
        raise RdbError(f"unknown string encoding {n}", self.pos - 1)


def load(data: bytes, now: int | None = None) -> tuple[Table, dict[bytes, int]]:
    """Read a whole RDB file's database 0: (keys to values, keys to absolute expiry ms)."""
    for index, keys, expires in load_databases(data, now):
        if index == 0:
            return keys, expires
    return new_table(), {}  # nothing in database 0


def load_databases(data: bytes, now: int | None = None) -> list[Database]:
    """Read a whole RDB file: each database that holds keys, in file order."""
    if len(data) < 9 or data[:5] != b"REDIS" or not data[5:9].isdigit():
        raise RdbError("not an RDB file (no REDIS header)", 0)
    version = int(data[5:9])
    if not 1 <= version <= VERSION:
        raise RdbError(f"RDB version {version} is not supported (at most {VERSION})", 5)
    if now is None:
        now = time.time_ns() // 1_000_000
    r = Reader(data)
    r.pos = 9
    keys = new_table()  # the keyspace's own kind of table: no copy when it is loaded
    expires: dict[bytes, int] = {}
    databases: dict[int, tuple[Table, dict[bytes, int]]] = {0: (keys, expires)}
    when: int | None = None
    while True:
        start = r.pos
        kind = r.byte()
        if kind == EOF:
            break
        if kind == EXPIRETIME_MS:
            when = int.from_bytes(r.take(8), "little")
            continue
        if kind == EXPIRETIME:
            when = int.from_bytes(r.take(4), "little") * 1000
            continue
        if kind == SELECTDB:
            index = r.plain_length()
            if index >= 1 << 31:
                raise RdbError(f"bad database number {index}", start)
            if index not in databases:
                databases[index] = (new_table(), {})
            keys, expires = databases[index]
            continue
        if kind == RESIZEDB:
            r.plain_length()
            r.plain_length()
            continue
        if kind == AUX:
            r.string()
            r.string()
            continue
        if kind == IDLE:
            r.plain_length()
            continue
        if kind == FREQ:
            r.byte()
            continue
        if kind in (MODULE_AUX, FUNCTION2):
            raise RdbError("modules and functions are not supported by kv", start)
        key = r.string()
        value = _value(r, kind, start)
        if when is not None and when <= now:
            when = None  # expired while the server was down: dropped, as Redis does
            continue
        if value or value.__class__ in (bytes, Stream):  # an empty list, set or hash is no key
            keys[key] = value
            if when is not None:
                expires[key] = when
        when = None
    if version >= 5:
        stored = int.from_bytes(r.take(8), "little")
        if stored and stored != crc64(0, memoryview(data)[: r.pos - 8]):
            raise RdbError("wrong RDB checksum", r.pos - 8)
    if r.pos != len(data):
        raise RdbError("data after the end of the RDB file", r.pos)
    return [(index, keys, expires) for index, (keys, expires) in databases.items() if keys]


def _value(r: Reader, kind: int, start: int) -> Any:
    try:
        if kind == STRING:
            return r.string()
        if kind == LIST:
            return deque(r.string() for _ in range(r.plain_length()))
        if kind == SET:
            return {r.string() for _ in range(r.plain_length())}
        if kind == HASH:
            n = r.plain_length()
            return {r.string(): r.string() for _ in range(n)}
        if kind in (ZSET, ZSET_2):
            size = r.plain_length()
            read_score = r.binary_score if kind == ZSET_2 else r.text_score
            entries: list[tuple[float, bytes]] = []
            for _ in range(size):
                member = r.string()
                entries.append((read_score(), member))
            return SortedSet(entries)
        if kind in (ZSET_ZIPLIST, ZSET_LISTPACK):
            read = encodings.ziplist if kind == ZSET_ZIPLIST else encodings.listpack
            flat = read(r.string())
            if len(flat) % 2:
                raise RdbError("sorted set with an odd count of members and scores", start)
            pairs = zip(flat[::2], flat[1::2], strict=True)
            return SortedSet([(float(score), member) for member, score in pairs])
        if kind == SET_INTSET:
            return set(encodings.intset(r.string()))
        if kind == LIST_ZIPLIST:
            return deque(encodings.ziplist(r.string()))
        if kind in (HASH_ZIPLIST, HASH_LISTPACK):
            read = encodings.ziplist if kind == HASH_ZIPLIST else encodings.listpack
            flat = read(r.string())
            if len(flat) % 2:
                raise RdbError("hash with an odd count of fields and values", start)
            return dict(zip(flat[::2], flat[1::2], strict=True))
        if kind == LIST_QUICKLIST:
            items: deque[bytes] = deque()
            for _ in range(r.plain_length()):
                items.extend(encodings.ziplist(r.string()))
            return items
        if kind in (STREAM_LISTPACKS, STREAM_LISTPACKS_2):
            return stream_rdb.load(r, kind)
        if kind == LIST_QUICKLIST_2:
            items = deque()
            for _ in range(r.plain_length()):
                container = r.plain_length()
                blob = r.string()
                if container == 1:  # QUICKLIST_NODE_CONTAINER_PLAIN: one element
                    items.append(blob)
                elif container == 2:  # PACKED: a listpack
                    items.extend(encodings.listpack(blob))
                else:
                    raise RdbError(f"bad quicklist container {container}", start)
            return items
    except ValueError as exc:
        if isinstance(exc, RdbError):
            raise
        raise RdbError(str(exc), start) from None
    raise RdbError(f"kv cannot hold a value of type {kind}", start)
