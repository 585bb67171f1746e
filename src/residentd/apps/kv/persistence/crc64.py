"""CRC-64/Jones, the checksum at the end of every RDB file (Redis's crc64.c): reflected,
polynomial 0xad93d23594c935a9, initial value 0, no final xor.

``crc64(crc, data)`` continues a running checksum over ``data``. The C version in
_fastpath.c runs when it is built; the Python one below is the reference (and what
``RESIDENTD_PURE_PYTHON=1`` runs), a table lookup per byte.
"""

from __future__ import annotations

from residentd.speedups import choose

POLY = 0x95AC9329AC4BC9B5  # 0xad93d23594c935a9, bit-reflected


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
        table.append(crc)
    return table


TABLE = _table()


def crc64_python(crc: int, data: bytes | bytearray | memoryview) -> int:
    table = TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


crc64 = choose("residentd.apps.kv._fastpath", "crc64", crc64_python)
