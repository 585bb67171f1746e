"""SCAN, HSCAN and SSCAN over Python dicts and sets, which offer no cursor of their own.

Redis's cursor is a position in its hash table, walked in reverse-binary order so that a
resize in the middle of a scan loses nothing. A dict cannot be walked from a position, and
skipping ``n`` keys costs ``n``, so a cursor here names a snapshot: ``SCAN 0`` copies the key
list (a C-speed copy of references, about 8 bytes a key), and each cursor is the snapshot's
id in the high 32 bits and the offset of the next key in the low 32. Each call returns the
next ``COUNT`` keys of the snapshot that still exist, match and have the asked type.

That keeps Redis's guarantees: a key present from the start to the end of a full iteration
is returned (exactly once, even), a key added meanwhile may or may not be, and every
iteration ends. Snapshots are released when their iteration ends; at most ``MAX_SNAPSHOTS``
are kept, the least recently used going first. A cursor whose snapshot is gone still works:
it continues at its offset in a fresh snapshot, which may then miss keys deleted or added
since, the one way this differs from Redis. A keyspace no larger than ``COUNT`` is returned
in one call without a snapshot.

HSCAN and SSCAN walk a hash's fields or a set's members the same way (``walk``, through
``elements``). A snapshot belongs to what it was taken of (the keyspace, or the very hash or
set, which it keeps alive until it is released): a cursor brought to another collection
continues at its offset in a fresh snapshot of that one, as a cursor whose snapshot is gone
does. What Redis keeps in a listpack or an intset, and answers whole, is answered whole.

``parse_cursor`` and ``parse_options`` read the arguments the three share as Redis's
``parseScanCursorOrReply`` and ``scanGenericCommand`` do.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from residentd.apps.kv import errors
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.patterns import Matcher, compile_glob
from residentd.apps.kv.store import Keyspace
from residentd.codecs.resp import bulk, bulk_array, parse_int

MAX_SNAPSHOTS = 8
_OFFSET_BITS = 32
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1

# The reply of HSCAN and SSCAN on a missing key (Redis's shared.emptyscan).
EMPTY_SCAN = b"*2\r\n$1\r\n0\r\n*0\r\n"


def parse_cursor(text: bytes) -> int:
    """A SCAN cursor as C's ``strtoul`` reads it for Redis: an optional sign, then digits,
    nothing else, no leading space, within 64 bits (a minus sign wraps around)."""
    if not text:
        return 0
    sign = text[:1]
    digits = text[1:] if sign in (b"+", b"-") else text
    if not digits.isdigit() or int(digits) >= 1 << 64:
        raise KvError(errors.INVALID_CURSOR)
    value = int(digits)
    return (-value) % (1 << 64) if sign == b"-" else value


def scan_reply(cursor: int, names: list[bytes]) -> bytes:
    """A scan step's reply: the next cursor (a bulk string) and the names found."""
    return b"*2\r\n" + bulk(b"%d" % cursor) + bulk_array(names)


@dataclass(slots=True)
class ScanOptions:
    count: int = 10
    match: Matcher | None = None  # None: every name (no MATCH, or MATCH *)
    type_name: bytes | None = None  # SCAN's TYPE, lower case


def parse_options(argv: list[bytes], start: int, allow_type: bool) -> ScanOptions:
    """The COUNT, MATCH (and, for SCAN, TYPE) options from ``argv[start:]``."""
    options = ScanOptions()
    i = start
    while i < len(argv):
        option = argv[i].upper()
        known = option in (b"COUNT", b"MATCH") or (allow_type and option == b"TYPE")
        if i + 1 >= len(argv) or not known:
            raise KvError(errors.SYNTAX)
        value = argv[i + 1]
        if option == b"COUNT":
            parsed = parse_int(value)
            if parsed is None:
                raise KvError(errors.NOT_AN_INTEGER)
            if parsed < 1:
                raise KvError(errors.SYNTAX)
            options.count = parsed
        elif option == b"MATCH":
            options.match = None if value == b"*" else compile_glob(value)
        else:
            options.type_name = value.lower()
        i += 2
    return options


class Cursors:
    __slots__ = ("_snapshots",)

    def __init__(self) -> None:
        # ident -> (what the snapshot is of, its names)
        self._snapshots: OrderedDict[int, tuple[object, list[bytes]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._snapshots)

    def scan(
        self,
        db: Keyspace,
        cursor: int,
        count: int,
        keep: Callable[[bytes], bool] | None = None,
    ) -> tuple[int, list[bytes]]:
        """The next cursor (0 at the end) and the keys of this step that pass ``keep``."""
        return self.walk(db, db.data, db.exists, cursor, count, keep)

    def walk(
        self,
        owner: object,
        names: Collection[bytes],
        alive: Callable[[bytes], bool],
        cursor: int,
        count: int,
        keep: Callable[[bytes], bool] | None = None,
    ) -> tuple[int, list[bytes]]:
        """One step of a scan of ``names`` (the keys of ``owner``, or a hash or set itself):
        the next cursor (0 at the end) and the names of this step still ``alive`` that pass
        ``keep``."""
        ident, offset = cursor >> _OFFSET_BITS, cursor & _OFFSET_MASK
        snapshot = self._snapshots.get(ident) if cursor else None
        if snapshot is not None and snapshot[0] is owner:
            del self._snapshots[ident]
            keys = snapshot[1]
        else:  # a new iteration, or one whose snapshot is gone: a fresh one
            keys = list(names)
            ident = self._new_ident()
        batch = keys[offset : offset + count]
        offset += count
        found = [key for key in batch if alive(key) and (keep is None or keep(key))]
        if offset >= len(keys):
            return 0, found
        self._snapshots[ident] = (owner, keys)
        if len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return (ident << _OFFSET_BITS) | offset, found

    def elements(
        self,
        argv: list[bytes],
        cursor: int,
        names: Collection[bytes],
        whole: list[bytes] | None,
    ) -> tuple[int, list[bytes]]:
        """HSCAN's or SSCAN's step over a hash's fields or a set's members, with the options
        of ``argv[3:]``: all of ``whole`` at once where it is given (a collection Redis keeps
        in a listpack or an intset, which it answers in one reply), else the next COUNT."""
        options = parse_options(argv, 3, allow_type=False)
        match = options.match
        if whole is not None:
            return 0, whole if match is None else [name for name in whole if match(name)]
        return self.walk(names, names, names.__contains__, cursor, options.count, match)

    def clear(self) -> None:
        self._snapshots.clear()

    def _new_ident(self) -> int:
        while True:
            ident = random.randrange(1, 1 << 31)
            if ident not in self._snapshots:
                return ident
