"""HyperLogLog commands, as Redis 7.0's ``hyperloglog.c`` has them: PFADD, PFCOUNT, PFMERGE
(PFDEBUG and PFSELFTEST, Redis's testing aids, are not served).

An HLL is a string in Redis's own layout (hyperloglog.py): the commands read the string,
change a ``bytearray`` copy and store it back as ``bytes``, keeping the key's time to live.
A string that is not an HLL is refused with Redis's WRONGTYPE text for HLLs; a sparse HLL
whose opcodes do not add up is INVALIDOBJ. PFCOUNT of one key writes the count it computed
into the header's cache, as Redis does (GET then shows it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv import hyperloglog as hll
from residentd.apps.kv.commands.common import read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.journaling import journal_served
from residentd.codecs.resp import OK, ONE, ZERO, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


def _checked(value: bytes | None) -> bytes | None:
    if value is not None and not hll.is_hll(value):
        raise KvError(errors.NOT_AN_HLL)
    return value


def _store(s: Client, key: bytes, value: bytearray) -> None:
    s.db.set(key, bytes(value), keep_ttl=True)


def _union(s: Client, keys: list[bytes]) -> tuple[list[int], bool]:
    """The registers of the union of the HLLs at ``keys`` (a missing key is an empty one),
    checked and merged key by key as Redis does, and whether any of them is dense."""
    top = [0] * hll.REGISTERS
    dense = False
    for key in keys:
        value = _checked(read(s, key, bytes))
        if value is not None:
            dense = dense or value[4] == hll.DENSE
            top = list(map(max, top, hll.registers(value)))
    return top, dense


@command(
    "pfadd",
    -2,
    "write denyoom fast",
    "hyperloglog",
    "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
    since="2.8.9",
)
def pfadd(s: Client, argv: list[bytes]) -> bytes:
    key = argv[1]
    found = _checked(write(s, key, bytes))
    value = bytearray(hll.EMPTY if found is None else found)
    try:
        updated = hll.add_all(value, argv[2:]) or found is None
    except ValueError:  # HllError, or the C version's
        raise KvError(errors.INVALID_HLL) from None
    if not updated:
        return ZERO
    hll.invalidate(value)
    _store(s, key, value)
    return ONE


@command(
    "pfcount",
    -2,
    "readonly",
    "hyperloglog",
    "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
    since="2.8.9",
    keys=(1, -1, 1),
)
def pfcount(s: Client, argv: list[bytes]) -> bytes:
    try:
        if len(argv) > 2:
            return integer(hll.estimate(_union(s, argv[1:])[0]))
        key = argv[1]
        one = _checked(read(s, key, bytes))
        if one is None:
            return ZERO
        cached = hll.cached_count(one)
        if cached is not None:
            return integer(cached)
        value = bytearray(one)
        result = hll.count(value)
    except ValueError:
        raise KvError(errors.INVALID_HLL) from None
    # The count is cached in the value, which changed: as Redis, journaled and signalled
    # (a watcher's EXEC fails), though PFCOUNT is a read.
    _store(s, key, value)
    journal_served(s, [b"PFCOUNT", key])
    s.state.touch(s.db, key)
    return integer(result)


@command(
    "pfmerge",
    -2,
    "write denyoom",
    "hyperloglog",
    "Merges one or more HyperLogLog values into a single key.",
    since="2.8.9",
    keys=(1, -1, 1),
)
def pfmerge(s: Client, argv: list[bytes]) -> bytes:
    key = argv[1]
    try:
        top, dense = _union(s, argv[1:])
        target = bytearray(_checked(write(s, key, bytes)) or hll.EMPTY)
        if dense:
            hll.to_dense(target)
            hll.write_dense(target, top)
        else:
            for index, value in enumerate(top):
                if value:
                    hll.set_register(target, index, value)
    except ValueError:
        raise KvError(errors.INVALID_HLL) from None
    hll.invalidate(target)
    _store(s, key, target)
    return OK
