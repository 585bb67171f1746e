"""SCAN over a Python dict, which offers no cursor of its own.

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
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable

from residentd.apps.kv.store import Keyspace

MAX_SNAPSHOTS = 8
_OFFSET_BITS = 32
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1


class Cursors:
    __slots__ = ("_snapshots",)

    def __init__(self) -> None:
        self._snapshots: OrderedDict[int, list[bytes]] = OrderedDict()

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
        ident, offset = cursor >> _OFFSET_BITS, cursor & _OFFSET_MASK
        keys = self._snapshots.pop(ident, None) if cursor else None
        if keys is None:
            keys = list(db.data)
            if not cursor:
                ident = self._new_ident()
        batch = keys[offset : offset + count]
        offset += count
        found = [key for key in batch if db.exists(key) and (keep is None or keep(key))]
        if offset >= len(keys):
            return 0, found
        self._snapshots[ident] = keys
        if len(self._snapshots) > MAX_SNAPSHOTS:
            self._snapshots.popitem(last=False)
        return (ident << _OFFSET_BITS) | offset, found

    def clear(self) -> None:
        self._snapshots.clear()

    def _new_ident(self) -> int:
        while True:
            ident = random.randrange(1, 1 << 31)
            if ident not in self._snapshots:
                return ident
