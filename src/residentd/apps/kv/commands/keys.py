"""Commands on keys of any type: DEL, UNLINK, EXISTS, TOUCH, RANDOMKEY, EXPIRE, PEXPIRE,
EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST, TYPE, KEYS, SCAN, RENAME,
RENAMENX, COPY and MOVE, as Redis's ``db.c`` and ``expire.c`` have them.

Times to live are absolute Unix times in milliseconds in the keyspace's ``expires`` dict. TTL
rounds to the nearest second, and an EXPIRE into the past deletes the key at once, both as in
Redis. KEYS and SCAN match with Redis's glob rules (patterns.py); SCAN's cursors are
snapshots of the key list (scan.py).
"""

from __future__ import annotations

import copy
from collections import deque
from typing import TYPE_CHECKING, Any

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import database_arg
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.patterns import compile_glob
from residentd.apps.kv.scan import parse_cursor, parse_options, scan_reply
from residentd.apps.kv.store import TYPE_NAMES, now_ms, random_key
from residentd.codecs.resp import (
    INT64_MAX,
    INT64_MIN,
    NIL,
    OK,
    ONE,
    ZERO,
    bulk,
    bulk_array,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


@command("del", -2, "write", "keyspace", "Deletes one or more keys.", keys=(1, -1, 1))
def del_(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    deleted = 0
    for key in argv[1:]:
        if db.exists(key) and db.delete(key):
            deleted += 1
    return integer(deleted)


@command(
    "unlink",
    -2,
    "write fast",
    "keyspace",
    "Asynchronously deletes one or more keys.",
    since="4.0.0",
    keys=(1, -1, 1),
)
def unlink(s: Client, argv: list[bytes]) -> bytes:
    return del_(s, argv)


@command(
    "exists",
    -2,
    "readonly fast",
    "keyspace",
    "Determines whether one or more keys exist.",
    keys=(1, -1, 1),
)
def exists(s: Client, argv: list[bytes]) -> bytes:
    lookup = s.db.get  # a read lookup, as Redis's: it counts a hit or a miss
    return integer(sum(1 for key in argv[1:] if lookup(key) is not None))


@command(
    "touch",
    -2,
    "readonly fast",
    "keyspace",
    "Returns the number of existing keys out of those specified after updating the time they "
    "were last accessed.",
    since="3.2.1",
    keys=(1, -1, 1),
)
def touch(s: Client, argv: list[bytes]) -> bytes:
    return exists(s, argv)


@command(
    "randomkey",
    1,
    "readonly",
    "keyspace",
    "Returns a random key name from the database.",
    keys=(0, 0, 0),
)
def randomkey(s: Client, argv: list[bytes]) -> bytes:
    """Like Redis's ``dbRandomKey``: a random key, another if that one's time has passed
    (deleting it), picked by store.py's ``random_key``."""
    db = s.db
    data = db.data
    while data:
        key = random_key(data)
        if db.exists(key):
            return bulk(key)
    return NIL


# EXPIRE's conditions (Redis 7).
_NX, _XX, _GT, _LT = 1, 2, 4, 8
_EXPIRE_OPTIONS = {b"NX": _NX, b"XX": _XX, b"GT": _GT, b"LT": _LT}

# Redis's LLONG_MIN / 1000 and LLONG_MAX / 1000: C's division truncates toward zero where
# Python's // floors, so the lower bound is -9223372036854775, not ...776.
_MIN_SECONDS = -(-INT64_MIN // 1000)
_MAX_SECONDS = INT64_MAX // 1000


def _expire(s: Client, argv: list[bytes], name: str, unit: int, relative: bool = True) -> bytes:
    """Redis's ``expireGenericCommand``: ``unit`` is 1000 for seconds, 1 for milliseconds;
    ``relative`` times count from now (EXPIRE), the others from the epoch (EXPIREAT)."""
    flags = 0
    for option in argv[3:]:
        bit = _EXPIRE_OPTIONS.get(option.upper())
        if bit is None:
            raise KvError(errors.unsupported_option(option))
        flags |= bit
    if flags & _NX and flags & (_XX | _GT | _LT):
        raise KvError(errors.EXPIRE_OPTIONS)
    if flags & _GT and flags & _LT:
        raise KvError(errors.EXPIRE_GT_LT)
    when = parse_int(argv[2])
    if when is None:
        raise KvError(errors.NOT_AN_INTEGER)
    if unit == 1000 and not _MIN_SECONDS <= when <= _MAX_SECONDS:
        raise KvError(errors.invalid_expire(name))
    when *= unit
    base = now_ms() if relative else 0
    if when > INT64_MAX - base:
        raise KvError(errors.invalid_expire(name))
    when += base
    db = s.db
    key = argv[1]
    if db.get_write(key) is None:
        return ZERO
    if flags:
        current = db.expire_time(key)
        if flags & _NX and current is not None:
            return ZERO
        if flags & _XX and current is None:
            return ZERO
        if flags & _GT and (current is None or when <= current):
            return ZERO
        if flags & _LT and current is not None and when >= current:
            return ZERO
    db.set_expire(key, when)
    return ONE


@command(
    "expire",
    -3,
    "write fast",
    "keyspace",
    "Sets the expiration time of a key in seconds.",
)
def expire(s: Client, argv: list[bytes]) -> bytes:
    return _expire(s, argv, "expire", 1000)


@command(
    "pexpire",
    -3,
    "write fast",
    "keyspace",
    "Sets the expiration time of a key in milliseconds.",
    since="2.6.0",
)
def pexpire(s: Client, argv: list[bytes]) -> bytes:
    return _expire(s, argv, "pexpire", 1)


@command(
    "expireat",
    -3,
    "write fast",
    "keyspace",
    "Sets the expiration time of a key to a Unix timestamp.",
    since="1.2.0",
)
def expireat(s: Client, argv: list[bytes]) -> bytes:
    return _expire(s, argv, "expireat", 1000, relative=False)


@command(
    "pexpireat",
    -3,
    "write fast",
    "keyspace",
    "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    since="2.6.0",
)
def pexpireat(s: Client, argv: list[bytes]) -> bytes:
    return _expire(s, argv, "pexpireat", 1, relative=False)


def _ttl(s: Client, key: bytes, in_ms: bool, absolute: bool = False) -> bytes:
    """Redis's ``ttlGenericCommand``: the time left, or with ``absolute`` the deadline."""
    db = s.db
    if db.get(key) is None:
        return integer(-2)
    when = db.expire_time(key)
    if when is None:
        return integer(-1)
    left = max(when if absolute else when - now_ms(), 0)
    return integer(left if in_ms else (left + 500) // 1000)


@command("ttl", 2, "readonly fast", "keyspace", "Returns the expiration time in seconds of a key.")
def ttl(s: Client, argv: list[bytes]) -> bytes:
    return _ttl(s, argv[1], in_ms=False)


@command(
    "pttl",
    2,
    "readonly fast",
    "keyspace",
    "Returns the expiration time in milliseconds of a key.",
    since="2.6.0",
)
def pttl(s: Client, argv: list[bytes]) -> bytes:
    return _ttl(s, argv[1], in_ms=True)


@command(
    "expiretime",
    2,
    "readonly fast",
    "keyspace",
    "Returns the expiration time of a key as a Unix timestamp.",
    since="7.0.0",
)
def expiretime(s: Client, argv: list[bytes]) -> bytes:
    return _ttl(s, argv[1], in_ms=False, absolute=True)


@command(
    "pexpiretime",
    2,
    "readonly fast",
    "keyspace",
    "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    since="7.0.0",
)
def pexpiretime(s: Client, argv: list[bytes]) -> bytes:
    return _ttl(s, argv[1], in_ms=True, absolute=True)


@command(
    "persist", 2, "write fast", "keyspace", "Removes the expiration time of a key.", since="2.2.0"
)
def persist(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    if db.get_write(argv[1]) is None:
        return ZERO
    return ONE if db.persist(argv[1]) else ZERO


@command("type", 2, "readonly fast", "keyspace", "Determines the type of value stored at a key.")
def type_(s: Client, argv: list[bytes]) -> bytes:
    value = s.db.get(argv[1])
    name = b"none" if value is None else TYPE_NAMES[value.__class__]
    return b"+" + name + b"\r\n"


@command(
    "keys",
    2,
    "readonly",
    "keyspace",
    "Returns all key names that match a pattern.",
    keys=(0, 0, 0),
)
def keys(s: Client, argv: list[bytes]) -> bytes:
    live = s.db.keys()
    if argv[1] == b"*":
        return bulk_array(live)
    match = compile_glob(argv[1])
    return bulk_array([key for key in live if match(key)])


@command(
    "scan",
    -2,
    "readonly",
    "keyspace",
    "Iterates over the key names in the database.",
    since="2.8.0",
    keys=(0, 0, 0),
)
def scan(s: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[1])
    options = parse_options(argv, 2, allow_type=True)
    db = s.db
    match, type_name = options.match, options.type_name
    keep = None
    if match is not None or type_name is not None:

        def keep(key: bytes) -> bool:
            if match is not None and not match(key):
                return False
            return type_name is None or TYPE_NAMES[db.data[key].__class__] == type_name

    cursor, found = s.state.cursors.scan(db, cursor, options.count, keep)
    return scan_reply(cursor, found)


@command(
    "rename",
    3,
    "write",
    "keyspace",
    "Renames a key and overwrites the destination.",
    keys=(1, 2, 1),
)
def rename(s: Client, argv: list[bytes]) -> bytes:
    _rename(s, argv, nx=False)
    return OK


@command(
    "renamenx",
    3,
    "write fast",
    "keyspace",
    "Renames a key only when the target key name doesn't exist.",
    keys=(1, 2, 1),
)
def renamenx(s: Client, argv: list[bytes]) -> bytes:
    return ONE if _rename(s, argv, nx=True) else ZERO


def _rename(s: Client, argv: list[bytes], nx: bool) -> bool:
    """Redis's ``renameGenericCommand``: whether the key moved (a key renamed to itself
    does not, and neither does one whose target exists, under ``nx``)."""
    db = s.db
    source, target = argv[1], argv[2]
    if db.get_write(source) is None:
        raise KvError(errors.NO_SUCH_KEY)
    if source == target or (nx and db.get_write(target) is not None):
        return False
    db.rename(source, target)
    return True


def copy_value(value: Any) -> Any:
    """A copy of a value that shares nothing a command could change."""
    if value.__class__ is bytes:
        return value
    if value.__class__ in (dict, deque, set):
        return value.copy()
    return copy.deepcopy(value)


@command(
    "copy",
    -3,
    "write denyoom",
    "keyspace",
    "Copies the value of a key to a new key.",
    since="6.2.0",
    keys=(1, 2, 1),
)
def copy_(s: Client, argv: list[bytes]) -> bytes:
    replace = False
    db = destination = s.db
    i = 3
    while i < len(argv):
        option = argv[i].upper()
        if option == b"REPLACE":
            replace = True
        elif option == b"DB" and i + 1 < len(argv):
            destination = database_arg(s, argv[i + 1])
            i += 1
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    source, target = argv[1], argv[2]
    if destination is db and source == target:
        raise KvError(errors.SAME_OBJECT)
    value = db.get(source)
    if value is None:
        return ZERO
    if destination.get_write(target) is not None and not replace:
        return ZERO
    when = db.expire_time(source)
    destination.set(target, copy_value(value))
    if when is not None:
        destination.expires[target] = when
    s.state.touch(destination, target)
    return ONE


@command(
    "move",
    3,
    "write fast",
    "keyspace",
    "Moves a key to another database.",
    keys=(1, 1, 1),
)
def move(s: Client, argv: list[bytes]) -> bytes:
    destination = database_arg(s, argv[2])
    db = s.db
    if destination is db:
        raise KvError(errors.SAME_OBJECT)
    key = argv[1]
    value = db.get_write(key)
    if value is None or destination.get_write(key) is not None:
        return ZERO
    when = db.expire_time(key)
    db.delete(key)
    destination.set(key, value)
    if when is not None:
        destination.expires[key] = when
    state = s.state
    state.touch(db, key)
    state.touch(destination, key)
    return ONE
