"""String commands: GET, SET and its options, SETEX, PSETEX, GETEX, GETDEL, GETSET, MGET,
MSET, MSETNX, SETNX, APPEND, STRLEN and the INCR family with INCRBYFLOAT, as Redis's
``t_string.c`` has them (ranges and LCS are in substrings.py, the bit commands in bits.py).

A string value is ``bytes``. Counters are stored as their decimal text too, the way clients
see them, and parsed by Redis's rules on each INCR (no spaces, no ``+``, no leading zeros,
64-bit range). GET and plain SET are the hottest paths of any Redis workload and are written
out in full here rather than through the keyspace's helpers: a dict lookup, an expiry check
only when some key has a time to live, and a reply from pre-encoded pieces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors, longdouble
from residentd.apps.kv.commands.common import int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.store import now_ms
from residentd.codecs.resp import (
    BULK_HEADERS,
    CRLF,
    INT64_MAX,
    INT64_MIN,
    NIL,
    OK,
    ONE,
    SMALL,
    ZERO,
    bulk,
    bulk_array,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


@command("get", 2, "readonly fast", "string", "Returns the string value of a key.")
def get(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    key = argv[1]
    value = db.data.get(key)
    if value is None or (db.expires and db.expire_if_due(key)):
        db.misses += 1
        if db.on_miss is not None:
            db.on_miss(key)
        return NIL
    db.hits += 1
    if value.__class__ is not bytes:
        raise KvError(errors.WRONGTYPE)
    size = len(value)
    if size < SMALL:
        return BULK_HEADERS[size] + value + CRLF  # bulk(value), inlined
    return bulk(value)


@command(
    "set",
    -3,
    "write denyoom",
    "string",
    "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
)
def set_(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 3:
        db = s.db
        key = argv[1]
        db.data[key] = argv[2]
        if db.expires:
            db.expires.pop(key, None)
        return OK
    return _set_with_options(s, argv)


# SET's option flags, as in Redis's parseExtendedStringArgumentsOrReply.
_NX, _XX, _GET, _KEEPTTL, _EX, _PX, _EXAT, _PXAT = (1 << bit for bit in range(8))
_TIME_OPTIONS = {b"EX": _EX, b"PX": _PX, b"EXAT": _EXAT, b"PXAT": _PXAT}
_ANY_TIME = _EX | _PX | _EXAT | _PXAT


def _set_with_options(s: Client, argv: list[bytes]) -> bytes:
    flags = 0
    expire: bytes | None = None
    i = 3
    while i < len(argv):
        option = argv[i].upper()
        has_next = i + 1 < len(argv)
        if option == b"NX" and not flags & _XX:
            flags |= _NX
        elif option == b"XX" and not flags & _NX:
            flags |= _XX
        elif option == b"GET":
            flags |= _GET
        elif option == b"KEEPTTL" and not flags & _ANY_TIME:
            flags |= _KEEPTTL
        elif (
            option in _TIME_OPTIONS
            and not flags & (_KEEPTTL | (_ANY_TIME & ~_TIME_OPTIONS[option]))
            and has_next
        ):
            flags |= _TIME_OPTIONS[option]
            i += 1
            expire = argv[i]
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    when = None if expire is None else _absolute_expire(expire, flags)
    db = s.db
    key = argv[1]
    reply = OK
    if flags & _GET:
        old = db.get(key)
        if old is not None and old.__class__ is not bytes:
            raise KvError(errors.WRONGTYPE)
        reply = NIL if old is None else bulk(old)
    found = db.get_write(key) is not None
    if (flags & _NX and found) or (flags & _XX and not found):
        return reply if flags & _GET else NIL
    db.set(key, argv[2], keep_ttl=bool(flags & _KEEPTTL))
    if when is not None:
        db.expire_at(key, when)
    return reply


def _absolute_expire(text: bytes, flags: int, name: str = "set") -> int:
    """The absolute expiry time in ms that an EX/PX/EXAT/PXAT argument asks for (Redis's
    ``getExpireMillisecondsOrReply``); ``name`` is the command the error names."""
    value = int_arg(text)
    seconds = flags & (_EX | _EXAT)
    if value <= 0 or (seconds and value > INT64_MAX // 1000):
        raise KvError(errors.invalid_expire(name))
    when = value * 1000 if seconds else value
    if flags & (_EX | _PX):
        when += now_ms()
    if when > INT64_MAX:
        raise KvError(errors.invalid_expire(name))
    return when


def _setex(s: Client, argv: list[bytes], name: str, unit: int) -> bytes:
    when = _absolute_expire(argv[2], _EX if unit == 1000 else _PX, name)
    s.db.set(argv[1], argv[3])
    s.db.expire_at(argv[1], when)
    return OK


@command(
    "setex",
    4,
    "write denyoom",
    "string",
    "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
    since="2.0.0",
)
def setex(s: Client, argv: list[bytes]) -> bytes:
    return _setex(s, argv, "setex", 1000)


@command(
    "psetex",
    4,
    "write denyoom",
    "string",
    "Sets both string value and expiration time in milliseconds of a key. The key is created "
    "if it doesn't exist.",
    since="2.6.0",
)
def psetex(s: Client, argv: list[bytes]) -> bytes:
    return _setex(s, argv, "psetex", 1)


_PERSIST = 1 << 8


def _getex_options(argv: list[bytes]) -> tuple[int, bytes | None]:
    """GETEX's flags and time argument (Redis's ``parseExtendedStringArgumentsOrReply`` for
    ``COMMAND_GET``: PERSIST, or one of EX/PX/EXAT/PXAT, which may repeat)."""
    flags = 0
    expire: bytes | None = None
    i = 2
    while i < len(argv):
        option = argv[i].upper()
        if option == b"PERSIST" and not flags & _ANY_TIME:
            flags |= _PERSIST
        elif (
            option in _TIME_OPTIONS
            and not flags & (_PERSIST | (_ANY_TIME & ~_TIME_OPTIONS[option]))
            and i + 1 < len(argv)
        ):
            flags |= _TIME_OPTIONS[option]
            i += 1
            expire = argv[i]
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    return flags, expire


@command(
    "getex",
    -2,
    "write fast",
    "string",
    "Returns the string value of a key after setting its expiration time.",
    since="6.2.0",
)
def getex(s: Client, argv: list[bytes]) -> bytes:
    flags, expire = _getex_options(argv)
    db = s.db
    key = argv[1]
    value = read(s, key, bytes)
    if value is None:
        return NIL
    when = None if expire is None else _absolute_expire(expire, flags, "getex")
    if when is not None:
        db.set_expire(key, when)
    elif flags & _PERSIST:
        db.persist(key)
    return bulk(value)


@command(
    "getdel",
    2,
    "write fast",
    "string",
    "Returns the string value of a key after deleting the key.",
    since="6.2.0",
)
def getdel(s: Client, argv: list[bytes]) -> bytes:
    value = read(s, argv[1], bytes)
    if value is None:
        return NIL
    s.db.delete(argv[1])
    return bulk(value)


@command(
    "getset",
    3,
    "write denyoom fast",
    "string",
    "Returns the previous string value of a key after setting it to a new value.",
)
def getset(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    old = db.get(argv[1])
    if old is not None and old.__class__ is not bytes:
        raise KvError(errors.WRONGTYPE)
    db.set(argv[1], argv[2])
    return NIL if old is None else bulk(old)


@command(
    "mget",
    -2,
    "readonly fast",
    "string",
    "Atomically returns the string values of one or more keys.",
    keys=(1, -1, 1),
)
def mget(s: Client, argv: list[bytes]) -> bytes:
    get = s.db.get
    values = []
    for key in argv[1:]:
        value = get(key)
        values.append(value if value.__class__ is bytes else None)
    return bulk_array(values)


@command(
    "mset",
    -3,
    "write denyoom",
    "string",
    "Atomically creates or modifies the string values of one or more keys.",
    since="1.0.1",
    keys=(1, -1, 2),
)
def mset(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) % 2 == 0:
        raise KvError(errors.wrong_arity("mset"))
    db = s.db
    data = db.data
    for i in range(1, len(argv), 2):
        data[argv[i]] = argv[i + 1]
    if db.expires:
        for i in range(1, len(argv), 2):
            db.expires.pop(argv[i], None)
    return OK


@command(
    "msetnx",
    -3,
    "write denyoom",
    "string",
    "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    keys=(1, -1, 2),
)
def msetnx(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) % 2 == 0:
        raise KvError(errors.wrong_arity("msetnx"))
    db = s.db
    if any(db.get_write(argv[i]) is not None for i in range(1, len(argv), 2)):
        return ZERO
    for i in range(1, len(argv), 2):
        db.set(argv[i], argv[i + 1])
    return ONE


@command(
    "setnx",
    3,
    "write denyoom fast",
    "string",
    "Set the string value of a key only when the key doesn't exist.",
)
def setnx(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    if db.get_write(argv[1]) is not None:
        return ZERO
    db.set(argv[1], argv[2])
    return ONE


@command(
    "append",
    3,
    "write denyoom fast",
    "string",
    "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    since="2.0.0",
)
def append(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    key = argv[1]
    old = db.get_write(key)
    if old is None:
        db.data[key] = argv[2]
        return integer(len(argv[2]))
    if old.__class__ is not bytes:
        raise KvError(errors.WRONGTYPE)
    if len(old) + len(argv[2]) > s.state.max_bulk_len:
        raise KvError(errors.STRING_TOO_LONG)
    value = old + argv[2]
    db.data[key] = value
    return integer(len(value))


@command(
    "strlen", 2, "readonly fast", "string", "Returns the length of a string value.", since="2.2.0"
)
def strlen(s: Client, argv: list[bytes]) -> bytes:
    value = s.db.get(argv[1])
    if value is None:
        return ZERO
    if value.__class__ is not bytes:
        raise KvError(errors.WRONGTYPE)
    return integer(len(value))


def _increment(s: Client, key: bytes, by: int) -> bytes:
    """Redis's ``incrDecrCommand``: add ``by`` to the integer stored at ``key``."""
    db = s.db
    old = db.data.get(key)
    if old is None or (db.expires and db.expire_if_due(key)):
        current = 0
    elif old.__class__ is not bytes:
        raise KvError(errors.WRONGTYPE)
    elif old.isdigit() and len(old) < 19 and (old[0] != 48 or len(old) == 1):
        current = int(old)  # the usual counter: digits, no leading zero, within int64
    else:
        parsed = parse_int(old)
        if parsed is None:
            raise KvError(errors.NOT_AN_INTEGER)
        current = parsed
    value = current + by
    if value > INT64_MAX or value < INT64_MIN:
        raise KvError(errors.OVERFLOW)
    db.data[key] = b"%d" % value
    return integer(value)


@command("incr", 2, "write denyoom fast", "string", "Increments the integer value of a key by one.")
def incr(s: Client, argv: list[bytes]) -> bytes:
    return _increment(s, argv[1], 1)


@command("decr", 2, "write denyoom fast", "string", "Decrements the integer value of a key by one.")
def decr(s: Client, argv: list[bytes]) -> bytes:
    return _increment(s, argv[1], -1)


@command(
    "incrby",
    3,
    "write denyoom fast",
    "string",
    "Increments the integer value of a key by a number.",
)
def incrby(s: Client, argv: list[bytes]) -> bytes:
    return _increment(s, argv[1], int_arg(argv[2]))


@command(
    "decrby",
    3,
    "write denyoom fast",
    "string",
    "Decrements a number from the integer value of a key.",
)
def decrby(s: Client, argv: list[bytes]) -> bytes:
    by = int_arg(argv[2])
    if by == INT64_MIN:
        raise KvError(errors.DECREMENT_OVERFLOW)
    return _increment(s, argv[1], -by)


_NOT_A_FLOAT = b"-ERR value is not a valid float\r\n"
_NAN_OR_INFINITY = b"-ERR increment would produce NaN or Infinity\r\n"


@command(
    "incrbyfloat",
    3,
    "write denyoom fast",
    "string",
    "Increment the floating point value of a key by a number. Uses 0 as initial value if the "
    "key doesn't exist.",
    since="2.6.0",
)
def incrbyfloat(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    key = argv[1]
    old = write(s, key, bytes)
    current = longdouble.parse(old) if old is not None else longdouble.ZERO
    by = longdouble.parse(argv[2])
    if current is None or by is None:
        raise KvError(_NOT_A_FLOAT)
    total = longdouble.add(current, by)
    if not longdouble.is_finite(total):
        raise KvError(_NAN_OR_INFINITY)
    value = longdouble.human(total)
    db.data[key] = value  # in place: the time to live stays
    return bulk(value)
