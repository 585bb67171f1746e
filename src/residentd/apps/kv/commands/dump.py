"""DUMP and RESTORE in Redis's own serialization (Redis 7.0's ``createDumpPayload`` and
``restoreCommand``), so a dump moves between kv and Redis either way:

    RDB type byte  the value as an RDB file holds it  RDB version (2 bytes, LE)  CRC-64 (LE)

kv dumps the plain encodings its RDB snapshot writes (persistence/rdb.py), which every Redis
since 3.2 restores; it restores whatever Redis 7.0 dumps for the types it holds (listpacks,
intsets, int-encoded and LZF strings included). A payload of a newer RDB version or with a
wrong checksum is refused before it is read, one kv cannot read is "Bad data format".

RESTORE takes REPLACE, ABSTTL, and IDLETIME or FREQ, which it checks as Redis does and then
ignores: kv tracks neither (objects.py). A time to live already past restores nothing (and
deletes the key REPLACE would have replaced). The journal logs a relative time to live as
the absolute one with ABSTTL, as Redis propagates it (persistence/aof.py).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.persistence import rdb
from residentd.apps.kv.persistence.crc64 import crc64
from residentd.apps.kv.store import now_ms
from residentd.codecs.resp import NIL, OK, bulk

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

_VERSION = struct.pack("<H", rdb.VERSION)


def payload(value: object) -> bytes:
    """createDumpPayload: the serialized value with its RDB version and checksum."""
    kind, body = rdb.encode(value)
    data = bytes((kind,)) + body + _VERSION
    return data + struct.pack("<Q", crc64(0, data))


def verified(data: bytes) -> bool:
    """verifyDumpPayload: a known RDB version and the right checksum."""
    if len(data) < 10:
        return False
    version = int.from_bytes(data[-10:-8], "little")
    return version <= rdb.VERSION and crc64(0, data[:-8]) == int.from_bytes(data[-8:], "little")


@command(
    "dump",
    2,
    "readonly",
    "generic",
    "Returns a serialized representation of the value stored at a key.",
    since="2.6.0",
)
def dump(s: Client, argv: list[bytes]) -> bytes:
    value = s.db.get(argv[1])
    return NIL if value is None else bulk(payload(value))


@command(
    "restore",
    -4,
    "write denyoom",
    "generic",
    "Creates a key from the serialized representation of a value.",
    since="2.6.0",
)
def restore(s: Client, argv: list[bytes]) -> bytes:
    replace = absolute = False
    idle = freq = -1
    i = 4
    while i < len(argv):
        option = argv[i].upper()
        more = i + 1 < len(argv)
        if option == b"REPLACE":
            replace = True
        elif option == b"ABSTTL":
            absolute = True
        elif option == b"IDLETIME" and more and freq == -1:
            i += 1
            idle = int_arg(argv[i])
            if idle < 0:
                raise KvError(errors.INVALID_IDLETIME)
        elif option == b"FREQ" and more and idle == -1:
            i += 1
            freq = int_arg(argv[i])
            if not 0 <= freq <= 255:
                raise KvError(errors.INVALID_FREQ)
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    db = s.db
    key = argv[1]
    if not replace and db.get_write(key) is not None:
        raise KvError(errors.BUSYKEY)
    ttl = int_arg(argv[2])
    if ttl < 0:
        raise KvError(errors.INVALID_TTL)
    data = argv[3]
    if not verified(data):
        raise KvError(errors.BAD_PAYLOAD)
    try:
        value = rdb.decode(data[0], data, 1)  # Redis reads on into the footer too
    except rdb.RdbError:
        raise KvError(errors.BAD_DATA_FORMAT) from None
    if replace:
        db.delete(key)
    if ttl and not absolute:
        ttl += now_ms()
    if ttl and ttl <= now_ms():
        return OK  # already expired: nothing is stored
    db.set(key, value)
    if ttl:
        db.expires[key] = ttl
    return OK
