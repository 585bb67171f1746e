"""Keyspace notifications, as Redis's ``notify.c`` sends them: each change to a key is
published on ``__keyspace@<db>__:<key>`` (the message is the event's name) and on
``__keyevent@<db>__:<event>`` (the message is the key), as ``notify-keyspace-events`` asks.

The setting is a string of Redis's class letters: ``K`` (keyspace channel), ``E`` (keyevent
channel), ``g`` (generic: del, expire, rename, ...), ``$`` strings, ``l`` lists, ``s`` sets,
``h`` hashes, ``z`` sorted sets, ``x`` expired, ``e`` evicted, ``t`` streams, ``m`` key miss,
``d`` module, ``n`` new key, and ``A`` for ``g$lshzxetd``. ``parse_flags`` reads it as
``keyspaceEventsStringToFlags`` does and ``flags_text`` writes it back in Redis's canonical
order (``AKE`` stays ``AKE``, ``Exn`` reads back as ``xnE``).

Handlers do not notify: the events of a write command are derived from the command, its reply
and the keys' state before it ran, by a rule per command (``RULES``), the way
persistence/aof.py derives what to journal. The session runs its writes through ``Watch``
while notifications are on (``KvState.notifier`` is not None), and then only: ``Watch.before``
notes which of the command's keys exist (a key past its time expires there, which sends
``expired`` first, as Redis's lookup does), the handler runs, and ``Watch.after`` publishes
what the rule found, with ``new`` before the first event of each key the command created.
Keys deleted because their time passed, lazily or by the active cycle, are reported through
the keyspace's ``on_expired`` (``Notifier.expired``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from residentd.codecs.resp import NIL

if TYPE_CHECKING:
    from residentd.apps.kv.pubsub import Hub
    from residentd.apps.kv.store import Keyspace

KEYSPACE = 1 << 0  # K
KEYEVENT = 1 << 1  # E
GENERIC = 1 << 2  # g
STRING = 1 << 3  # $
LIST = 1 << 4  # l
SET = 1 << 5  # s
HASH = 1 << 6  # h
ZSET = 1 << 7  # z
EXPIRED = 1 << 8  # x
EVICTED = 1 << 9  # e
STREAM = 1 << 10  # t
KEY_MISS = 1 << 11  # m
MODULE = 1 << 12  # d
NEW = 1 << 13  # n
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE

_LETTERS = {
    "A": ALL, "g": GENERIC, "$": STRING, "l": LIST, "s": SET, "h": HASH, "z": ZSET,
    "x": EXPIRED, "e": EVICTED, "K": KEYSPACE, "E": KEYEVENT, "t": STREAM, "m": KEY_MISS,
    "d": MODULE, "n": NEW,
}  # fmt: skip
# The order flags_text writes the classes in (notify.c's keyspaceEventsFlagsToString).
_CLASS_ORDER = "g$lshzxetdn"


def parse_flags(text: str) -> int | None:
    """The flags of a ``notify-keyspace-events`` value, or None if a letter is unknown."""
    flags = 0
    for letter in text:
        bit = _LETTERS.get(letter)
        if bit is None:
            return None
        flags |= bit
    return flags


def flags_text(flags: int) -> str:
    """The value as CONFIG GET shows it: ``A`` for all the classes it stands for (Redis then
    leaves ``n`` out, though it stays on), else each class, then ``K``, ``E`` and ``m``."""
    if flags & ALL == ALL:
        text = "A"
    else:
        text = "".join(letter for letter in _CLASS_ORDER if flags & _LETTERS[letter])
    return text + "".join(letter for letter in "KEm" if flags & _LETTERS[letter])


SETTING_ERROR = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."

# class, event name, key; and the database when it is not the command's own (MOVE's target).
Event = tuple[int, bytes, bytes] | tuple[int, bytes, bytes, int]


class Notifier:
    """Publishes the events of the classes ``flags`` asks for on the hub's channels."""

    __slots__ = ("flags", "hub")

    def __init__(self, hub: Hub, flags: int) -> None:
        self.hub = hub
        self.flags = flags

    def notify(self, kind: int, event: bytes, key: bytes, db: int = 0) -> None:
        flags = self.flags
        if not flags & kind:
            return
        if flags & KEYSPACE:
            self.hub.publish(b"__keyspace@%d__:%b" % (db, key), event)
        if flags & KEYEVENT:
            self.hub.publish(b"__keyevent@%d__:%b" % (db, event), key)

    def expired(self, key: bytes, db: int = 0) -> None:
        self.notify(EXPIRED, b"expired", key, db)

    def key_miss(self, key: bytes, db: int = 0) -> None:
        """A read looked ``key`` up and found nothing (Redis's lookupKey sends it)."""
        self.notify(KEY_MISS, b"keymiss", key, db)


# -- what each write command sends ----------------------------------------------------------------

ZERO = b":0\r\n"
NULL_ARRAY = b"*-1\r\n"
EMPTY_ARRAY = b"*0\r\n"


class Watch:
    """One write command's keys before it ran, and then the events it caused."""

    __slots__ = ("argv", "db", "existed", "extra", "keys", "name")

    def __init__(self, db: Keyspace, argv: list[bytes], spec: tuple[int, int, int]) -> None:
        """``spec``: the command's keys (first, last, step), as COMMAND INFO gives them."""
        self.db = db
        self.argv = argv
        self.name = argv[0].lower()
        self.keys = _keys(self.name, argv, spec)
        self.existed = {key: db.exists(key) for key in self.keys}  # lazily expires: events
        prepare = PREPARE.get(self.name)
        self.extra: Any = prepare(db, argv) if prepare is not None else None

    def was(self, key: bytes) -> bool:
        return self.existed.get(key, False)

    def gone(self, key: bytes) -> list[Event]:
        """``del`` if the command emptied ``key`` (an aggregate loses its last element)."""
        return [(GENERIC, b"del", key)] if key not in self.db.data else []

    def after(self, reply: bytes, notifier: Notifier) -> None:
        if reply[:1] == b"-":
            return
        rule = RULES.get(self.name)
        if rule is None:
            return
        created = {key for key in self.keys if not self.was(key) and key in self.db.data}
        index = self.db.index
        for kind, event, key, *elsewhere in rule(self, reply):
            if elsewhere:
                notifier.notify(kind, event, key, elsewhere[0])
                continue
            if key in created:  # unless the rule placed its "new" itself
                created.discard(key)
                if kind != NEW:
                    notifier.notify(NEW, b"new", key, index)
            notifier.notify(kind, event, key, index)


def _keys(name: bytes, argv: list[bytes], spec: tuple[int, int, int]) -> list[bytes]:
    """The keys of a command by its key specification; SORT's STORE target too."""
    first, last, step = spec
    count = len(argv)
    last = count + last if last < 0 else min(last, count - 1)
    keys = argv[first : last + 1 : step] if first else []
    if name == b"sort":
        keys += [argv[i + 1] for i in range(2, len(argv) - 1) if argv[i].upper() == b"STORE"]
    more = _MORE_KEYS.get(name)
    if more is not None:
        keys += more(argv)
    return keys


def _radius_store(argv: list[bytes]) -> list[bytes]:
    """GEORADIUS's and GEORADIUSBYMEMBER's STORE or STOREDIST key (the last one given)."""
    stores = [i + 1 for i in range(2, len(argv) - 1) if argv[i].upper() in (b"STORE", b"STOREDIST")]
    return [argv[stores[-1]]] if stores else []


# The keys whose creation sends "new", for commands whose key specification kv leaves empty.
_MORE_KEYS: dict[bytes, Callable[[list[bytes]], list[bytes]]] = {
    b"geoadd": lambda argv: argv[1:2],
    b"georadius": _radius_store,
    b"georadiusbymember": _radius_store,
    b"geosearchstore": lambda argv: argv[1:2],
    b"restore": lambda argv: argv[1:2],
    b"xadd": lambda argv: argv[1:2],
    b"xgroup": lambda argv: argv[2:3],
}


Rule = Callable[[Watch, bytes], list[Event]]


def _always(kind: int, event: bytes) -> Rule:
    """The event on the first key whenever the command succeeded."""
    return lambda w, reply: [(kind, event, w.argv[1])]


def _unless(kind: int, event: bytes, *nothing: bytes) -> Rule:
    """The event on the first key unless the reply says nothing changed; ``del`` after it
    if the key is left empty."""
    return lambda w, reply: (
        [] if reply in nothing else [(kind, event, w.argv[1]), *w.gone(w.argv[1])]
    )


def _getdel(w: Watch, reply: bytes) -> list[Event]:
    return [] if reply == NIL else [(GENERIC, b"del", w.argv[1])]


_TIMES = {b"EX", b"PX", b"EXAT", b"PXAT"}


def _set(w: Watch, reply: bytes) -> list[Event]:
    key = w.argv[1]
    options = {arg.upper() for arg in w.argv[3:]}
    was = w.was(key)
    if (b"NX" in options and was) or (b"XX" in options and not was):
        return []
    new = [] if was else [(NEW, b"new", key)]
    timed = [(GENERIC, b"expire", key)] if options & _TIMES else []
    return [*new, (STRING, b"set", key), *timed]


def _setex(w: Watch, reply: bytes) -> list[Event]:
    return [(STRING, b"set", w.argv[1]), (GENERIC, b"expire", w.argv[1])]


def _mset(w: Watch, reply: bytes) -> list[Event]:
    if reply == ZERO:  # MSETNX refused
        return []
    return [(STRING, b"set", key) for key in w.argv[1::2]]


def _getex(w: Watch, reply: bytes) -> list[Event]:
    key = w.argv[1]
    if reply == NIL:
        return []
    options = {arg.upper() for arg in w.argv[2:]}
    if b"PERSIST" in options:
        return [(GENERIC, b"persist", key)] if w.extra else []
    if options & _TIMES:
        return [(GENERIC, b"expire", key)] if key in w.db.data else [(GENERIC, b"del", key)]
    return []


def _had_deadline(db: Keyspace, argv: list[bytes]) -> Any:
    return argv[1] in db.expires


def _setrange(w: Watch, reply: bytes) -> list[Event]:
    return [(STRING, b"setrange", w.argv[1])] if w.argv[3] else []


def _deleted(w: Watch, reply: bytes) -> list[Event]:
    events: list[Event] = []
    for key in dict.fromkeys(w.argv[1:]):
        if w.was(key) and key not in w.db.data:
            events.append((GENERIC, b"del", key))
    return events


def _expire(w: Watch, reply: bytes) -> list[Event]:
    key = w.argv[1]
    if reply == ZERO:
        return []
    return [(GENERIC, b"expire", key)] if key in w.db.data else [(GENERIC, b"del", key)]


def _rename(w: Watch, reply: bytes) -> list[Event]:
    source, target = w.argv[1], w.argv[2]
    if reply == ZERO or source == target:
        return []
    # The target is added anew (replacing any key there): "new" comes first.
    return [
        (NEW, b"new", target),
        (GENERIC, b"rename_from", source),
        (GENERIC, b"rename_to", target),
    ]


def _copy(w: Watch, reply: bytes) -> list[Event]:
    target = w.argv[2]
    return [] if reply == ZERO else [(NEW, b"new", target), (GENERIC, b"copy_to", target)]


def _store(kind: int, event: bytes, at: int = 1) -> Rule:
    """A command storing its result at ``argv[at]``: the event, or ``del`` when the result
    is empty and replaced a key."""

    def rule(w: Watch, reply: bytes) -> list[Event]:
        key = w.argv[at]
        if key in w.db.data:
            return [(kind, event, key)]
        return [(GENERIC, b"del", key)] if w.was(key) else []

    return rule


def _sort(w: Watch, reply: bytes) -> list[Event]:
    for i, arg in enumerate(w.argv[2:-1], 2):
        if arg.upper() == b"STORE":
            return _store(LIST, b"sortstore", i + 1)(w, reply)
    return []


def _bitfield(w: Watch, reply: bytes) -> list[Event]:
    """``setbit`` if a SET or INCRBY ran (one refused by OVERFLOW FAIL answers nil)."""
    argv = w.argv
    writes: list[bool] = []
    i = 2
    while i < len(argv):
        op = argv[i].upper()
        if op == b"OVERFLOW":
            i += 2
            continue
        writes.append(op != b"GET")
        i += 3 if op == b"GET" else 4
    items = reply.split(b"\r\n")[1:]  # one line per reply: an integer, or nil
    changed = any(write and item != b"$-1" for write, item in zip(writes, items, strict=False))
    return [(STRING, b"setbit", argv[1])] if changed else []


def _smove(w: Watch, reply: bytes) -> list[Event]:
    source, target = w.argv[1], w.argv[2]
    if reply == ZERO or source == target:
        return []
    events = [(SET, b"srem", source), *w.gone(source)]
    if not w.extra:  # the member was not in the target yet
        events.append((SET, b"sadd", target))
    return events


def _member_in_target(db: Keyspace, argv: list[bytes]) -> Any:
    target = db.data.get(argv[2])
    return isinstance(target, set) and argv[3] in target


_ZADD_FLAGS = (b"nx", b"xx", b"gt", b"lt", b"ch", b"incr")


def _zadd_scores(db: Keyspace, argv: list[bytes]) -> Any:
    """Whether ZADD has INCR, and the scores before it of the members it names (None:
    absent); its options come before the first score."""
    i = 2
    while i < len(argv) and argv[i].lower() in _ZADD_FLAGS:
        i += 1
    scores = getattr(db.data.get(argv[1]), "scores", {})
    incr = any(arg.lower() == b"incr" for arg in argv[2:i])
    return incr, [(member, scores.get(member)) for member in argv[i + 1 :: 2]]


def _zadd(w: Watch, reply: bytes) -> list[Event]:
    key = w.argv[1]
    incr, before = w.extra
    if incr:
        return [] if reply in (NIL, NULL_ARRAY) else [(ZSET, b"zincr", key)]
    scores = getattr(w.db.data.get(key), "scores", {})
    if all(scores.get(member) == old for member, old in before):
        return []
    return [(ZSET, b"zadd", key)]


def _geoadd_scores(db: Keyspace, argv: list[bytes]) -> Any:
    """GEOADD's members (after NX, XX and CH, each after its longitude and latitude) with
    their scores before it."""
    i = 2
    while i < len(argv) and argv[i].lower() in (b"nx", b"xx", b"ch"):
        i += 1
    scores = getattr(db.data.get(argv[1]), "scores", {})
    return False, [(member, scores.get(member)) for member in argv[i + 2 :: 3]]


def _geo_store(event: bytes) -> Rule:
    """GEOSEARCHSTORE, and GEORADIUS with STORE: the event on the stored key, or ``del`` when
    nothing was found and that replaced a key."""

    def rule(w: Watch, reply: bytes) -> list[Event]:
        keys = w.argv[1:2] if w.name == b"geosearchstore" else _radius_store(w.argv)
        if not keys:  # no STORE: a read
            return []
        key = keys[0]
        if reply != ZERO:
            return [(ZSET, event, key)]
        return [(GENERIC, b"del", key)] if w.was(key) else []

    return rule


def _move(w: Watch, reply: bytes) -> list[Event]:
    """MOVE: ``move_from`` here, then ``move_to`` in the target database (after its "new")."""
    if reply == ZERO:
        return []
    key, target = w.argv[1], int(w.argv[2])
    return [
        (NEW, b"new", key, target),
        (GENERIC, b"move_from", key),
        (GENERIC, b"move_to", key, target),
    ]


def _stream_length(db: Keyspace, argv: list[bytes]) -> Any:
    stream = db.data.get(argv[1])
    return getattr(stream, "length", 0)


def _xadd(w: Watch, reply: bytes) -> list[Event]:
    """XADD: ``xadd``, and ``xtrim`` when its MAXLEN or MINID trimmed entries."""
    if reply in (NIL, NULL_ARRAY):  # NOMKSTREAM on no stream
        return []
    key = w.argv[1]
    trimmed = getattr(w.db.data.get(key), "length", 0) < w.extra + 1
    return [(STREAM, b"xadd", key), *([(STREAM, b"xtrim", key)] if trimmed else [])]


def _consumer_exists(db: Keyspace, argv: list[bytes]) -> Any:
    """XGROUP DELCONSUMER: whether the consumer was there (the reply counts its pending)."""
    if argv[1].lower() != b"delconsumer" or len(argv) != 5:
        return False
    group = getattr(db.data.get(argv[2]), "groups", {}).get(argv[3])
    return group is not None and argv[4] in group.consumers


def _xgroup(w: Watch, reply: bytes) -> list[Event]:
    sub = w.argv[1].lower()
    key = w.argv[2] if len(w.argv) > 2 else b""
    if sub in (b"create", b"setid") or (sub == b"delconsumer" and w.extra):
        return [(STREAM, b"xgroup-" + sub, key)]
    if sub in (b"createconsumer", b"destroy") and reply != ZERO:
        return [(STREAM, b"xgroup-" + sub, key)]
    return []


def _reply_key(reply: bytes) -> bytes:
    """The key a multi-key pop names first in its reply (``*2\r\n$<n>\r\n<key>...``)."""
    header = reply.index(b"\r\n", 4)
    size = int(reply[5:header])
    return reply[header + 2 : header + 2 + size]


def _side(argv: list[bytes], at: int, events: tuple[bytes, bytes]) -> bytes:
    """The event of the side named at ``argv[at]``: the first for LEFT or MIN, else the
    second."""
    return events[0] if argv[at].upper() in (b"LEFT", b"MIN") else events[1]


def _mpop(kind: int, events: tuple[bytes, bytes], numkeys_at: int) -> Rule:
    """LMPOP, BLMPOP, ZMPOP, BZMPOP: the pop on the key the reply names (``numkeys_at``:
    where numkeys is; the side follows the keys)."""

    def rule(w: Watch, reply: bytes) -> list[Event]:
        if reply in (NIL, NULL_ARRAY):
            return []
        key = _reply_key(reply)
        side = _side(w.argv, numkeys_at + 1 + int(w.argv[numkeys_at]), events)
        return [(kind, side, key), *w.gone(key)]

    return rule


def _bpop(kind: int, event: bytes) -> Rule:
    """BLPOP, BRPOP, BZPOPMIN, BZPOPMAX answered at once: the pop on the key replied."""

    def rule(w: Watch, reply: bytes) -> list[Event]:
        if reply in (NIL, NULL_ARRAY):
            return []
        key = _reply_key(reply)
        return [(kind, event, key), *w.gone(key)]

    return rule


_LIST_SIDES = (b"lpop", b"rpop")


def _lmove(w: Watch, reply: bytes) -> list[Event]:
    """LMOVE, BLMOVE, RPOPLPUSH, BRPOPLPUSH: the push on the target, then the pop on the
    source (and its ``del`` if emptied), in Redis's order."""
    if reply in (NIL, NULL_ARRAY):
        return []
    argv = w.argv
    source, target = argv[1], argv[2]
    name = w.name
    if name in (b"lmove", b"blmove"):
        pop = _side(argv, 3, _LIST_SIDES)
        push = b"lpush" if argv[4].upper() == b"LEFT" else b"rpush"
    else:  # RPOPLPUSH, BRPOPLPUSH
        pop, push = b"rpop", b"lpush"
    return [(LIST, push, target), (LIST, pop, source), *w.gone(source)]


def _ltrim(w: Watch, reply: bytes) -> list[Event]:
    key = w.argv[1]
    return [(LIST, b"ltrim", key), *w.gone(key)] if w.was(key) else []


PREPARE: dict[bytes, Callable[[Keyspace, list[bytes]], Any]] = {
    b"geoadd": _geoadd_scores,
    b"xadd": _stream_length,
    b"xgroup": _consumer_exists,
    b"getex": _had_deadline,
    b"smove": _member_in_target,
    b"zadd": _zadd_scores,
}

RULES: dict[bytes, Rule] = {
    b"set": _set,
    b"setnx": _unless(STRING, b"set", ZERO),
    b"setex": _setex,
    b"psetex": _setex,
    b"getset": _always(STRING, b"set"),
    b"mset": _mset,
    b"msetnx": _mset,
    b"incr": _always(STRING, b"incrby"),
    b"decr": _always(STRING, b"incrby"),
    b"incrby": _always(STRING, b"incrby"),
    b"decrby": _always(STRING, b"incrby"),
    b"incrbyfloat": _always(STRING, b"incrbyfloat"),
    b"append": _always(STRING, b"append"),
    b"setrange": _setrange,
    b"getdel": _getdel,
    b"getex": _getex,
    b"setbit": _always(STRING, b"setbit"),
    b"bitfield": _bitfield,
    b"bitop": _store(STRING, b"set", 2),
    b"del": _deleted,
    b"unlink": _deleted,
    b"expire": _expire,
    b"pexpire": _expire,
    b"expireat": _expire,
    b"pexpireat": _expire,
    b"persist": _unless(GENERIC, b"persist", ZERO),
    b"rename": _rename,
    b"renamenx": _rename,
    b"copy": _copy,
    b"sort": _sort,
    b"lpush": _always(LIST, b"lpush"),
    b"rpush": _always(LIST, b"rpush"),
    b"lpushx": _unless(LIST, b"lpush", ZERO),
    b"rpushx": _unless(LIST, b"rpush", ZERO),
    b"lset": _always(LIST, b"lset"),
    b"linsert": _unless(LIST, b"linsert", ZERO, b":-1\r\n"),
    b"lrem": _unless(LIST, b"lrem", ZERO),
    b"ltrim": _ltrim,
    b"lmove": _lmove,
    b"blmove": _lmove,
    b"rpoplpush": _lmove,
    b"brpoplpush": _lmove,
    b"lmpop": _mpop(LIST, _LIST_SIDES, 1),
    b"blmpop": _mpop(LIST, _LIST_SIDES, 2),
    b"blpop": _bpop(LIST, b"lpop"),
    b"brpop": _bpop(LIST, b"rpop"),
    b"bzpopmin": _bpop(ZSET, b"zpopmin"),
    b"bzpopmax": _bpop(ZSET, b"zpopmax"),
    b"bzmpop": _mpop(ZSET, (b"zpopmin", b"zpopmax"), 2),
    b"lpop": _unless(LIST, b"lpop", NIL, NULL_ARRAY),
    b"rpop": _unless(LIST, b"rpop", NIL, NULL_ARRAY),
    b"hset": _always(HASH, b"hset"),
    b"hmset": _always(HASH, b"hset"),
    b"hsetnx": _unless(HASH, b"hset", ZERO),
    b"hdel": _unless(HASH, b"hdel", ZERO),
    b"hincrby": _always(HASH, b"hincrby"),
    b"hincrbyfloat": _always(HASH, b"hincrbyfloat"),
    b"sadd": _unless(SET, b"sadd", ZERO),
    b"srem": _unless(SET, b"srem", ZERO),
    b"spop": _unless(SET, b"spop", NIL, EMPTY_ARRAY),
    b"smove": _smove,
    b"sinterstore": _store(SET, b"sinterstore"),
    b"sunionstore": _store(SET, b"sunionstore"),
    b"sdiffstore": _store(SET, b"sdiffstore"),
    b"zadd": _zadd,
    b"zincrby": _always(ZSET, b"zincr"),
    b"zrem": _unless(ZSET, b"zrem", ZERO),
    b"zremrangebyrank": _unless(ZSET, b"zremrangebyrank", ZERO),
    b"zremrangebyscore": _unless(ZSET, b"zremrangebyscore", ZERO),
    b"zremrangebylex": _unless(ZSET, b"zremrangebylex", ZERO),
    b"zpopmin": _unless(ZSET, b"zpopmin", EMPTY_ARRAY),
    b"zpopmax": _unless(ZSET, b"zpopmax", EMPTY_ARRAY),
    b"zmpop": _mpop(ZSET, (b"zpopmin", b"zpopmax"), 1),
    b"zunionstore": _store(ZSET, b"zunionstore"),
    b"zinterstore": _store(ZSET, b"zinterstore"),
    b"zdiffstore": _store(ZSET, b"zdiffstore"),
    b"zrangestore": _store(ZSET, b"zrangestore"),
    b"geoadd": _zadd,
    b"geosearchstore": _geo_store(b"geosearchstore"),
    b"georadius": _geo_store(b"georadiusstore"),
    b"georadiusbymember": _geo_store(b"georadiusstore"),
    b"pfadd": _unless(STRING, b"pfadd", ZERO),
    b"pfmerge": _always(STRING, b"pfadd"),
    b"move": _move,
    b"restore": _always(GENERIC, b"restore"),
    b"xadd": _xadd,
    b"xdel": _unless(STREAM, b"xdel", ZERO),
    b"xtrim": _unless(STREAM, b"xtrim", ZERO),
    b"xsetid": _always(STREAM, b"xsetid"),
    b"xgroup": _xgroup,
}
