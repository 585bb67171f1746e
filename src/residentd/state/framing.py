"""The default formats, for apps without their own: journal records and the snapshot container.

A journal record is a 12-byte header and a payload: the payload's length (u32, big-endian), the
CRC32 of those four length bytes, and the CRC32 of the payload. The header's own checksum tells
a flipped length byte (corruption: refuse to start) from a record cut short by a crash (a torn
tail: drop it with a warning), which a length alone cannot.

A snapshot file is ``magic (4) | version (u16) | payload | CRC32 of everything before (u32)``.
An app with its own file format (kv writes Redis RDB, which carries its own version and CRC64)
uses ``RawSnapshot``, which hands the bytes through and leaves the checks to ``load``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from residentd.state.api import BadRecord, BadSnapshot

HEADER = struct.Struct(">III")
LENGTH = struct.Struct(">I")
MAX_RECORD = 1 << 30


def encode_record(payload: bytes) -> bytes:
    """One framed record (header and payload)."""
    length = LENGTH.pack(len(payload))
    return HEADER.pack(len(payload), zlib.crc32(length), zlib.crc32(payload)) + payload


class LengthCrcRecords:
    """The default ``RecordReader``: records are payload bytes framed by ``encode_record``."""

    encode = staticmethod(encode_record)

    def scan(self, data: bytes, start: int = 0) -> Iterator[tuple[Any, int]]:
        view = memoryview(data)
        size = len(data)
        offset = start
        while offset + HEADER.size <= size:
            length, header_crc, crc = HEADER.unpack_from(data, offset)
            if zlib.crc32(view[offset : offset + 4]) != header_crc or length > MAX_RECORD:
                raise BadRecord(offset, "bad record header")
            end = offset + HEADER.size + length
            if end > size:
                return  # torn: the header is whole, the payload was cut short
            payload = bytes(view[offset + HEADER.size : end])
            if zlib.crc32(payload) != crc:
                raise BadRecord(offset, "record checksum mismatch")
            yield payload, end
            offset = end


class _CrcWriter:
    """A write-only stream that keeps the CRC32 of what went through it."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.crc = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.out.write(data)
        return len(data)


class Container:
    """The default ``SnapshotFormat``: magic, version, payload, CRC32."""

    def __init__(self, magic: bytes = b"RSDS", version: int = 1) -> None:
        if len(magic) != 4:
            raise ValueError("the magic is 4 bytes")
        self.magic = magic
        self.version = version

    def write(self, out: BinaryIO, dump: Callable[[Any], None]) -> None:
        stream = _CrcWriter(out)
        stream.write(self.magic + struct.pack(">H", self.version))
        dump(stream)
        out.write(struct.pack(">I", stream.crc))

    def read(self, data: bytes) -> bytes:
        if len(data) < 10 or data[:4] != self.magic:
            raise BadSnapshot(f"not a snapshot (expected magic {self.magic!r})", 0)
        (version,) = struct.unpack_from(">H", data, 4)
        if version != self.version:
            raise BadSnapshot(f"snapshot version {version}, this build reads {self.version}", 4)
        (crc,) = struct.unpack_from(">I", data, len(data) - 4)
        if zlib.crc32(memoryview(data)[:-4]) != crc:
            raise BadSnapshot("snapshot checksum mismatch", len(data) - 4)
        return data[6:-4]


class RawSnapshot:
    """A ``SnapshotFormat`` for apps whose payload is a whole file format of its own."""

    def write(self, out: BinaryIO, dump: Callable[[Any], None]) -> None:
        dump(out)

    def read(self, data: bytes) -> bytes:
        return data
