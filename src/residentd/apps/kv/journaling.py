"""Running a write command with its side effects: the one path the session, EXEC and scripts
share while kv persists, while some client watches keys or while keyspace events are on.

The command is refused with -MISCONF while the disk refuses data; otherwise it runs, and then:
what Redis would propagate for it (persistence/aof.py's ``propagate``) is appended to the
journal (after a ``SELECT`` when the journal was in another database; several commands for
one go in one MULTI block unless an EXEC or a script already wraps them), the watched keys it
changed are touched (watch.py), and its keyspace events are sent (notifications.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from residentd.apps.kv.commands.registry import COMMANDS
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.notifications import Watch
from residentd.apps.kv.persistence.aof import EXEC, MULTI, encode, propagate
from residentd.apps.kv.watch import destination, scores, written_keys
from residentd.apps.kv.zset import SortedSet
from residentd.codecs.resp import parse_int

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client, Handler
    from residentd.apps.kv.store import Keyspace

_DELETES = frozenset((b"del", b"unlink"))


def _same_bit(db: Keyspace, argv: list[bytes]) -> bool:
    """SETBIT of a bit inside the string to the value it has (Redis: no change, no dirty)."""
    value = db.data.get(argv[1])
    offset, bit = parse_int(argv[2]), argv[3]
    if value.__class__ is not bytes or offset is None or offset < 0 or bit not in (b"0", b"1"):
        return False
    byte = offset >> 3
    if byte >= len(value) or not db.exists(argv[1]):
        return False
    return bool(value[byte] & (0x80 >> (offset & 7))) == (bit == b"1")


def _zero_increment(db: Keyspace, argv: list[bytes]) -> bool:
    """ZINCRBY, or ZADD ... INCR, of a member by 0 (Redis: the score is the same, so nothing
    is propagated, signalled or notified)."""
    if argv[0].lower() == b"zadd":
        if len(argv) < 5 or not any(word.upper() == b"INCR" for word in argv[2:-2]):
            return False
        by, member = argv[-2], argv[-1]
    else:
        by, member = argv[2], argv[3]
    value = db.data.get(argv[1])
    if not isinstance(value, SortedSet) or member not in value.scores or not db.exists(argv[1]):
        return False
    try:
        return float(by) == 0 and math.isfinite(value.scores[member])
    except ValueError:
        return False


def _persist_without_ttl(db: Keyspace, argv: list[bytes]) -> bool:
    """GETEX k PERSIST of a key with no time to live (Redis: removeExpire removed nothing)."""
    return len(argv) == 3 and argv[2].upper() == b"PERSIST" and argv[1] not in db.expires


# Commands that, on the state they find, change nothing (checked before they run): Redis
# neither propagates nor signals them.
_CHANGES_NOTHING: dict[bytes, Callable[[Keyspace, list[bytes]], bool]] = {
    b"setbit": _same_bit,
    b"zincrby": _zero_increment,
    b"zadd": _zero_increment,
    b"getex": _persist_without_ttl,
    b"smove": lambda db, argv: len(argv) == 4 and argv[1] == argv[2],  # within one set
}


def run_journaled(
    client: Client,
    handler: Handler,
    argv: list[bytes],
    journal: bytearray | None,
    spec: tuple[int, int, int],
) -> bytes:
    """Run ``handler`` for ``argv`` as ``client``, with the effects above; its reply.
    ``spec``: the command's keys (first, last, step), as COMMAND INFO gives them."""
    state = client.state
    db = client.db
    if journal is not None:
        refusal = state.misconf()
        if refusal is not None:
            return refusal
    notifier = state.notifier
    watch = Watch(db, argv, spec) if notifier is not None else None
    written = destination(argv)
    if written is None and len(argv) > 1:
        written = argv[1]
    existed = written is not None and written in db.data
    unchanged = _CHANGES_NOTHING.get(argv[0].lower())
    if unchanged is not None and unchanged(db, argv):
        try:
            return handler(client, argv)  # its reply, and no effect to log, touch or notify
        except KvError as exc:
            return exc.reply
    watches = state.watches
    present = before = None
    if watches.keys:
        name = argv[0].lower()
        if name in _DELETES:  # only what is there is deleted
            present = [
                key for key in argv[1:] if (db.index, key) in watches.keys and db.exists(key)
            ]
        elif name == b"zadd" and (db.index, argv[1]) in watches.keys:
            before = scores(db, argv[1])
    try:
        reply = handler(client, argv)
    except KvError as exc:
        return exc.reply
    logged = propagate(db, argv, reply, existed)
    if watch is not None and notifier is not None:
        watch.after(reply, notifier)
    if not logged:
        return reply
    if journal is not None:
        mark = len(journal)
        if len(logged) > 1 and not state.atomic:
            # Several commands for one (XREADGROUP's XCLAIMs, SPOP's SREMs): one MULTI block,
            # so a torn journal loads all or none of them, as Redis 7.0 writes them.
            journal += MULTI
            for record in logged:
                journal += encode(record)
            journal += EXEC
        else:
            for record in logged:
                journal += encode(record)
        state.journal_select(db, mark)
    if watches.keys and (before is None or before != scores(db, argv[1])):
        keys = present if present is not None else written_keys(spec, argv, reply)
        for key in keys:
            watches.touch(db, key)
    return reply


def run_served(client: Client, logged: list[bytes], pop: Callable[[], bytes]) -> bytes:
    """A served blocked command's pop (``pop`` does it and returns the waiter's reply), with
    the effects of the command Redis propagates for it, ``logged``: BLPOP served is an LPOP,
    BLMOVE an LMOVE, BZMPOP a ZPOPMIN with its count. That is journaled, its keyspace events
    are sent (Redis's serveClientBlockedOnList notifies ``lpop``) and the keys it wrote
    touched for WATCH."""
    state = client.state
    db = client.db
    spec = COMMANDS[logged[0].lower().decode("latin-1")].keys
    notifier = state.notifier
    watch = Watch(db, logged, spec) if notifier is not None else None
    reply = pop()
    journal_served(client, logged)
    if watch is not None and notifier is not None:
        watch.after(reply, notifier)
    watches = state.watches
    if watches.keys:  # the keys popped from and moved to: their watchers' EXEC fails
        for key in written_keys(spec, logged, reply):
            watches.touch(db, key)
    return reply


def journal_served(client: Client, logged: list[bytes]) -> None:
    """Log a command a served blocked client's pop or read amounts to (the session journals
    every other write)."""
    state = client.state
    journal = state.journal
    if journal is not None:
        mark = len(journal)
        journal += encode(logged)
        state.journal_select(client.db, mark)  # woken by SWAPDB or MOVE from another database
