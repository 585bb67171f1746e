"""Clients blocked on keys (BLPOP, BLMOVE, BLMPOP, ...), served as Redis's ``blocked.c`` serves
them: first blocked, first served.

A blocking command that finds nothing to take registers a ``Wait``: the client, the keys it
waits on, a ``serve`` callable that tries to answer it from one of them, the reply it gets at
its timeout, and one loop timer for that timeout (none for timeout 0, which waits forever).
``keys`` maps each waited key, as (database number, key), to the FIFO of its waits; a client
waiting on several keys is in each FIFO once and leaves them all when it is served, times
out, is unblocked (CLIENT UNBLOCK) or disconnects. The machinery knows nothing of lists:
``serve`` holds what the command does (pop one element, move it to another list, pop COUNT of
them), so the sorted set commands (BZPOPMIN, BZMPOP) can wait the same way.

Readiness: a write command run while someone waits ``touched`` its arguments; those that are
waited keys go to ``ready`` (Redis's ``signalKeyAsReady``, which it calls when a key is
created: a waited key did not exist, or was empty, when its waiter blocked). A false alarm
(a value that happens to equal a waited key's name, a key of another type) costs one failed
``serve``. After each command the session runs ``serve_ready`` (Redis's
``handleClientsBlockedOnKeys``): for each ready key, in the order they became ready, its
waits are offered the key in FIFO order until one cannot be served (the key ran out or has
another type). ``serve`` journals what it did as the non-blocking command Redis propagates
(BLPOP as LPOP, BLMOVE as LMOVE), and the client gets its reply and resumes its pipeline. A
served BLMOVE that creates its destination makes that key ready too, in the same pass.

The C fast path never runs a write to a waited key (a push, a pop, ZADD, DEL, EXPIRE, ...):
the session hands it ``names`` (the waited keys' names, whatever their database), and it
leaves such a command to Python (_fastpath.c), where it is touched as above.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from residentd.errors import ResidentdError

if TYPE_CHECKING:
    from residentd.apps.kv.store import Keyspace

# A blocked command's attempt to answer from a key that became ready: the reply, or None if
# that key cannot serve it (gone, empty, another type).
Serve = Callable[[bytes], "bytes | None"]

# A timeout in seconds past this one (about 31 years) waits forever: the loop's timers
# cannot hold it, and Redis's own deadline would overflow.
FOREVER = 2.0**30


class Blocked(ResidentdError):
    """Raised by a client's ``block``: the command is suspended, its reply comes later."""


class Waiter(Protocol):
    """A blocked client as the registry sees it."""

    @property
    def id(self) -> int: ...

    def wake(self, reply: bytes, changed: bool = False) -> None:
        """Send the blocked command's reply and run the commands that waited behind it;
        ``changed``: serving it changed the keyspace (and journaled the change)."""


# A waited key: its database's number and its name.
Key = tuple[int, bytes]


@dataclass(slots=True, eq=False)
class Wait:
    client: Waiter
    keys: tuple[Key, ...]
    serve: Serve
    timeout_reply: bytes
    timer: asyncio.TimerHandle | None = None


class Blocking:
    """The blocked clients of one kv daemon."""

    __slots__ = ("clients", "keys", "names", "ready", "stale")

    def __init__(self) -> None:
        self.keys: dict[Key, deque[Wait]] = {}  # waited key -> its waits, first first
        self.names: dict[bytes, int] = {}  # a waited key's name -> how many keys have it
        self.ready: dict[Key, None] = {}  # keys that may serve a wait, in signal order
        self.clients: dict[int, Wait] = {}  # client id -> its wait
        # Waited keys that hold a value no waiter was told of: a store replaced what they held
        # (Redis's setKey then overwrites, which signals nobody). Only their deletion and
        # creation again, or a command that deletes and adds them (RENAME, COPY and RESTORE
        # with REPLACE), or SWAPDB makes them ready, as in Redis.
        self.stale: set[Key] = set()

    def __len__(self) -> int:
        return len(self.clients)

    def block(
        self,
        client: Waiter,
        db: int,
        keys: Iterable[bytes],
        timeout: float,
        serve: Serve,
        timeout_reply: bytes,
        loop: asyncio.AbstractEventLoop,
    ) -> Wait:
        """Register ``client`` as waiting on ``keys`` of database ``db`` (each once) for
        ``timeout`` seconds (0: forever)."""
        wait = Wait(client, tuple(dict.fromkeys((db, key) for key in keys)), serve, timeout_reply)
        names = self.names
        for key in wait.keys:
            waits = self.keys.get(key)
            if waits is None:
                waits = self.keys[key] = deque()
                names[key[1]] = names.get(key[1], 0) + 1
            waits.append(wait)
        if 0 < timeout < FOREVER:
            wait.timer = loop.call_at(loop.time() + timeout, self._timed_out, wait)
        self.clients[client.id] = wait
        return wait

    def touched(self, db: Keyspace, argv: list[bytes]) -> None:
        """After a write command in ``db``: mark the waited keys among its arguments ready (a
        waited key is absent, so a write that names it created it, as Redis's dbAdd signals),
        but a stale one (``overwrote``) only when this command deleted and added it."""
        keys = self.keys
        stale = self.stale
        index = db.index
        for position, arg in enumerate(argv[1:], 1):
            key = (index, arg)
            if key not in keys:
                continue
            if key in stale:
                if arg not in db.data:
                    stale.discard(key)  # gone: its next creation signals
                    continue
                if not _deletes_and_adds(argv, position):
                    continue
                stale.discard(key)
            self.ready[key] = None

    def overwrote(self, db: Keyspace, key: bytes) -> None:
        """A store (SORT ... STORE, ZUNIONSTORE and its kin, GEOSEARCHSTORE) is about to
        replace ``key``: if it holds a value, as in Redis that wakes no client waiting on it,
        even when a string becomes the list or sorted set they wait for."""
        if (db.index, key) in self.keys and db.exists(key):
            self.stale.add((db.index, key))

    def signal(self, db: int, key: bytes) -> None:
        if (db, key) in self.keys:
            self.stale.discard((db, key))
            self.ready[(db, key)] = None

    def serve_ready(self) -> None:
        """Serve the waits of every ready key, first blocked first (and the keys that
        serving makes ready)."""
        ready = self.ready
        while ready:
            key = next(iter(ready))
            del ready[key]
            waits = self.keys.get(key)
            while waits:
                wait = waits[0]
                reply = wait.serve(key[1])
                if reply is None:
                    break
                self._remove(wait)
                wait.client.wake(reply, reply[:1] != b"-")  # an error reply changed nothing

    def unblock(self, client_id: int, reply: bytes | None = None) -> bool:
        """End ``client_id``'s wait, answering ``reply`` (its timeout reply if None); returns
        whether it was blocked (CLIENT UNBLOCK)."""
        wait = self.clients.get(client_id)
        if wait is None:
            return False
        self._remove(wait)
        wait.client.wake(wait.timeout_reply if reply is None else reply)
        return True

    def forget(self, client_id: int) -> None:
        """Drop a disconnected client's wait, without a reply."""
        wait = self.clients.get(client_id)
        if wait is not None:
            self._remove(wait)

    def _timed_out(self, wait: Wait) -> None:
        wait.timer = None
        self._remove(wait)
        wait.client.wake(wait.timeout_reply)

    def _remove(self, wait: Wait) -> None:
        del self.clients[wait.client.id]
        if wait.timer is not None:
            wait.timer.cancel()
            wait.timer = None
        for key in wait.keys:
            waits = self.keys[key]
            if waits[0] is wait:
                waits.popleft()
            else:
                waits.remove(wait)
            if not waits:
                del self.keys[key]
                self.stale.discard(key)
                count = self.names[key[1]] - 1
                if count:
                    self.names[key[1]] = count
                else:
                    del self.names[key[1]]


def _deletes_and_adds(argv: list[bytes], position: int) -> bool:
    """Whether the command writes the key at ``position`` by deleting it and adding it anew
    (Redis's dbDelete then dbAdd, which signals): RENAME's destination, COPY's and RESTORE's
    with REPLACE (RENAMENX onto a key that holds a value changes nothing)."""
    name = argv[0].lower()
    if name == b"rename":
        return position == 2
    replace = any(arg.lower() == b"replace" for arg in argv[3:])
    return replace and position == (2 if name == b"copy" else 1 if name == b"restore" else -1)
