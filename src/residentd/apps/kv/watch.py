"""WATCH: optimistic locking for MULTI/EXEC, with the invalidation rules of Redis 7.0's
``multi.c`` (``touchWatchedKey``, ``touchAllWatchedKeysInDb``, ``isWatchedKeyExpired``).

``Watches`` maps each watched (database number, key) to the clients watching it; a client
keeps its own side as ``Watcher.watched``: (database number, key) to whether the key had
already expired, unreclaimed, when it was watched. A change to a watched key marks its
watchers ``dirty`` ("touched", Redis's ``CLIENT_DIRTY_CAS``) and their EXEC then answers a
null array. The changes that touch a key:

- a write command that changed it, by any client, the watcher itself included (the session
  tells this from what the command would journal: persistence/aof.py ``propagate``; a ZADD
  or ZINCRBY that changed no score, a SETBIT that changed no bit, BITFIELD without SET or
  INCRBY, RENAME of a key to itself, SMOVE within one set, GETEX PERSIST of a key without a
  time to live, a ``*STORE`` of nothing to a key that did not exist, and XSETID (which Redis
  7.0 propagates but does not signal) do not touch, as in Redis), only the destination of a
  ``*STORE`` or of SORT's and GEORADIUS's STORE, and the target of MOVE and COPY ... DB in the
  other database; PFCOUNT, when it writes a stale cached count back into the value;
- its deletion because its time passed; and at EXEC, a watched key whose time has passed
  touches its watcher even if nothing deleted it yet;
- FLUSHDB and FLUSHALL, for keys that existed; SWAPDB, for keys that exist in either
  database.

A key that had already expired when it was watched is not touched by its reclaiming (it was
logically gone already), as in Redis.

The write paths consult ``Watches`` only while some client watches something (``bool`` of
it): one truthiness test per write. The C fast path does not signal, so while any client
watches anything every pipeline takes the Python path (session.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from residentd.apps.kv.store import now_ms
from residentd.apps.kv.zset import SortedSet

if TYPE_CHECKING:
    from residentd.apps.kv.store import Keyspace

# Write commands that read some of their keys and write one: (name, where the written key is).
_DESTINATION = {
    b"sinterstore": 1,
    b"sunionstore": 1,
    b"sdiffstore": 1,
    b"zinterstore": 1,
    b"zunionstore": 1,
    b"zdiffstore": 1,
    b"zrangestore": 1,
    b"geosearchstore": 1,
    b"bitop": 2,
}
# Commands that write a key named after a STORE (or STOREDIST) option, if they have one.
_STORE_OPTION = frozenset((b"sort", b"georadius", b"georadiusbymember"))
# Commands whose handlers touch what they write themselves: they reach another database.
_OWN_TOUCHES = frozenset((b"copy", b"move", b"flushdb", b"flushall", b"swapdb"))


class Watcher(Protocol):
    """The client side of WATCH: what it watches and whether one of them was touched."""

    watched: dict[tuple[int, bytes], bool] | None
    dirty: bool


class Watches:
    __slots__ = ("keys",)

    def __init__(self) -> None:
        # Tested for truth on the write paths: empty while nobody watches anything.
        self.keys: dict[tuple[int, bytes], dict[Watcher, None]] = {}

    def __bool__(self) -> bool:
        return bool(self.keys)

    def watch(self, client: Watcher, db: Keyspace, key: bytes) -> None:
        watched = client.watched
        if watched is None:
            watched = client.watched = {}
        name = (db.index, key)
        if name in watched:
            return
        when = db.expires.get(key) if key in db.data else None
        watched[name] = when is not None and when <= now_ms()
        self.keys.setdefault(name, {})[client] = None

    def unwatch_all(self, client: Watcher) -> None:
        """UNWATCH, EXEC, DISCARD and a closing client: forget its keys and its touch."""
        for name in client.watched or ():
            clients = self.keys.get(name)
            if clients is not None:
                clients.pop(client, None)
                if not clients:
                    del self.keys[name]
        client.watched = None
        client.dirty = False

    def touch(self, db: Keyspace, key: bytes) -> None:
        """Redis's ``touchWatchedKey``: ``key`` of ``db`` was changed or deleted."""
        name = (db.index, key)
        clients = self.keys.get(name)
        if not clients:
            return
        for client in list(clients):
            watched = client.watched
            if watched is not None and watched.get(name) and key not in db.data:
                watched[name] = False  # an expired key reclaimed: no logical change
                continue
            client.dirty = True

    def touch_db(self, emptied: Keyspace, replaced_with: Keyspace | None = None) -> None:
        """Redis's ``touchAllWatchedKeysInDb``, before ``emptied`` is flushed (without
        ``replaced_with``) or swapped with ``replaced_with``."""
        index = emptied.index
        for (number, key), clients in list(self.keys.items()):
            if number != index:
                continue
            in_emptied = key in emptied.data
            in_replacement = replaced_with is not None and key in replaced_with.data
            if not (in_emptied or in_replacement):
                continue
            for client in list(clients):
                watched = client.watched
                if watched is None:
                    continue
                name = (number, key)
                if watched.get(name):
                    if not in_replacement:
                        watched[name] = False  # the expired key is gone: no change
                        continue
                    if replaced_with is not None and _expired(replaced_with, key):
                        continue  # an expired key stays expired
                elif not in_emptied and replaced_with is not None and _expired(replaced_with, key):
                    watched[name] = True  # a missing key replaced by an expired one
                    continue
                client.dirty = True

    def expired(self, client: Watcher, dbs: list[Keyspace]) -> bool:
        """Redis's ``isWatchedKeyExpired`` at EXEC: a watched key, alive when watched, whose
        time has passed since."""
        for (number, key), was_expired in (client.watched or {}).items():
            if not was_expired and number < len(dbs) and _expired(dbs[number], key):
                return True
        return False


def destination(argv: list[bytes]) -> bytes | None:
    """The key a command that reads keys and stores a result writes: a ``*STORE``'s
    destination, BITOP's, and the last STORE or STOREDIST key of SORT and GEORADIUS (None for
    one without, or for another command)."""
    name = argv[0].lower()
    where = _DESTINATION.get(name)
    if where is not None:
        return argv[where] if where < len(argv) else None
    if name not in _STORE_OPTION:
        return None
    words = (b"STORE",) if name == b"sort" else (b"STORE", b"STOREDIST")
    stores = [i + 1 for i in range(2, len(argv) - 1) if argv[i].upper() in words]
    return argv[stores[-1]] if stores else None


def scores(db: Keyspace, key: bytes) -> dict[bytes, float] | None:
    """A sorted set's scores as they are now (ZADD touches its key only if one changed)."""
    value = db.data.get(key)
    return dict(value.scores) if isinstance(value, SortedSet) else None


def _expired(db: Keyspace, key: bytes) -> bool:
    """Whether ``key`` is in ``db`` with its time passed (not yet reclaimed)."""
    when = db.expires.get(key) if key in db.data else None
    return when is not None and when <= now_ms()


def written_keys(spec: tuple[int, int, int], argv: list[bytes], reply: bytes) -> list[bytes]:
    """The keys a write command that changed something (it journaled a record) wrote, as
    Redis's commands signal them: the destination only of a ``*STORE``, the key popped from
    of an ``*MPOP`` (named in its reply); else every key of ``spec`` (the command's first
    key, last key and step)."""
    name = argv[0].lower()
    if name in _OWN_TOUCHES:
        return []
    if name in (b"rename", b"renamenx") and argv[1] == argv[2]:
        return []  # a key renamed to itself does not change
    if name == b"bitfield" and not any(arg.upper() in (b"SET", b"INCRBY") for arg in argv[2:]):
        return []
    if name == b"xsetid":
        return []  # Redis 7.0's XSETID propagates but signals no watcher
    if name in _DESTINATION or name in _STORE_OPTION:
        written = destination(argv)
        return [] if written is None else [written]
    if name.endswith(b"mpop"):  # *2 $n key [...]
        start = reply.find(b"\r\n", 4) + 2
        return [reply[start : start + int(reply[5 : start - 2])]]
    first, last, step = spec
    if first == 0:
        return []
    if last < 0:
        last += len(argv)
    return argv[first : last + 1 : step]
