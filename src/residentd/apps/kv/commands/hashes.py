"""Hash commands, all of Redis 7.0's ``t_hash.c``: HSET, HSETNX, HMSET, HGET, HMGET, HDEL,
HGETALL, HKEYS, HVALS, HLEN, HEXISTS, HSTRLEN, HINCRBY, HINCRBYFLOAT, HRANDFIELD and HSCAN.

A hash is a ``dict`` of field to value (both ``bytes``). Python dicts keep insertion order,
so HGETALL lists fields in the order they were first set, as Redis does for small hashes.
A hash whose last field is deleted is deleted too. HINCRBYFLOAT adds as Redis's ``long
double`` (longdouble.py) and is journaled as the HSET of its result (persistence/aof.py).
HSCAN answers a hash Redis would keep as a listpack (at most 128 fields, none of them nor
their values longer than 64 bytes) in one reply, as Redis does, and walks a larger one with
the cursors of scan.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors, longdouble
from residentd.apps.kv.commands.common import create, int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.sampling import one, parse_count, pick
from residentd.apps.kv.scan import EMPTY_SCAN, parse_cursor, scan_reply
from residentd.codecs.resp import (
    EMPTY_ARRAY,
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


@command(
    "hset",
    -4,
    "write denyoom fast",
    "hash",
    "Creates or modifies the value of a field in a hash.",
    since="2.0.0",
)
def hset(s: Client, argv: list[bytes]) -> bytes:
    return integer(_set_pairs(s, argv))


@command(
    "hmset",
    -4,
    "write denyoom fast",
    "hash",
    "Sets the values of multiple fields.",
    since="2.0.0",
)
def hmset(s: Client, argv: list[bytes]) -> bytes:
    _set_pairs(s, argv)
    return OK


def _set_pairs(s: Client, argv: list[bytes]) -> int:
    """HSET's and HMSET's work: set each field of ``argv[2:]`` and count the new ones."""
    if len(argv) % 2:
        raise KvError(errors.wrong_arity(argv[0].decode("latin-1").lower()))
    hash_ = create(s, argv[1], dict)
    before = len(hash_)
    for i in range(2, len(argv), 2):
        hash_[argv[i]] = argv[i + 1]
    return len(hash_) - before


@command(
    "hsetnx",
    4,
    "write denyoom fast",
    "hash",
    "Sets the value of a field in a hash only when the field doesn't exist.",
    since="2.0.0",
)
def hsetnx(s: Client, argv: list[bytes]) -> bytes:
    hash_ = create(s, argv[1], dict)
    if argv[2] in hash_:
        return ZERO
    hash_[argv[2]] = argv[3]
    return ONE


@command(
    "hget", 3, "readonly fast", "hash", "Returns the value of a field in a hash.", since="2.0.0"
)
def hget(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict)
    value = None if hash_ is None else hash_.get(argv[2])
    return NIL if value is None else bulk(value)


@command(
    "hmget",
    -3,
    "readonly fast",
    "hash",
    "Returns the values of all fields in a hash.",
    since="2.0.0",
)
def hmget(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict) or {}
    return bulk_array([hash_.get(field) for field in argv[2:]])


@command(
    "hdel",
    -3,
    "write fast",
    "hash",
    "Deletes one or more fields and their values from a hash.",
    since="2.0.0",
)
def hdel(s: Client, argv: list[bytes]) -> bytes:
    hash_ = write(s, argv[1], dict)
    if hash_ is None:
        return ZERO
    deleted = 0
    for field in argv[2:]:
        if hash_.pop(field, None) is not None:
            deleted += 1
    s.db.delete_if_empty(argv[1], hash_)
    return integer(deleted)


@command(
    "hgetall", 2, "readonly", "hash", "Returns all fields and values in a hash.", since="2.0.0"
)
def hgetall(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict)
    if not hash_:
        return EMPTY_ARRAY
    flat: list[bytes] = []
    for field, value in hash_.items():
        flat.append(field)
        flat.append(value)
    return bulk_array(flat)


@command("hkeys", 2, "readonly", "hash", "Returns all fields in a hash.", since="2.0.0")
def hkeys(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict)
    return bulk_array(hash_) if hash_ else EMPTY_ARRAY


@command("hvals", 2, "readonly", "hash", "Returns all values in a hash.", since="2.0.0")
def hvals(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict)
    return bulk_array(hash_.values()) if hash_ else EMPTY_ARRAY


@command(
    "hlen", 2, "readonly fast", "hash", "Returns the number of fields in a hash.", since="2.0.0"
)
def hlen(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(read(s, argv[1], dict) or ()))


@command(
    "hexists",
    3,
    "readonly fast",
    "hash",
    "Determines whether a field exists in a hash.",
    since="2.0.0",
)
def hexists(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict)
    return ONE if hash_ is not None and argv[2] in hash_ else ZERO


@command(
    "hstrlen",
    3,
    "readonly fast",
    "hash",
    "Returns the length of the value of a field.",
    since="3.2.0",
)
def hstrlen(s: Client, argv: list[bytes]) -> bytes:
    hash_ = read(s, argv[1], dict)
    return integer(len(hash_.get(argv[2], b"")) if hash_ is not None else 0)


@command(
    "hincrby",
    4,
    "write denyoom fast",
    "hash",
    "Increments the integer value of a field in a hash by a number.",
    since="2.0.0",
)
def hincrby(s: Client, argv: list[bytes]) -> bytes:
    by = int_arg(argv[3])
    hash_ = create(s, argv[1], dict)
    old = hash_.get(argv[2])
    current = 0 if old is None else parse_int(old)
    if current is None:
        raise KvError(errors.HASH_NOT_AN_INTEGER)
    value = current + by
    if value > INT64_MAX or value < INT64_MIN:
        raise KvError(errors.OVERFLOW)
    hash_[argv[2]] = b"%d" % value
    return integer(value)


@command(
    "hincrbyfloat",
    4,
    "write denyoom fast",
    "hash",
    "Increments the floating point value of a field by a number.",
    since="2.6.0",
)
def hincrbyfloat(s: Client, argv: list[bytes]) -> bytes:
    by = longdouble.parse(argv[3])
    if by is None:
        raise KvError(errors.NOT_A_FLOAT)
    if not longdouble.is_finite(by):
        raise KvError(errors.NAN_OR_INFINITY)
    hash_ = create(s, argv[1], dict)
    old = hash_.get(argv[2])
    current = longdouble.parse(old) if old is not None else longdouble.ZERO
    if current is None:
        raise KvError(errors.HASH_NOT_A_FLOAT)
    value = longdouble.add(current, by)
    if not longdouble.is_finite(value):
        raise KvError(errors.INCREMENT_NAN_OR_INFINITY)
    text = hash_[argv[2]] = longdouble.human(value)
    return bulk(text)


@command(
    "hrandfield",
    -2,
    "readonly",
    "hash",
    "Returns one or more random fields from a hash.",
    since="6.2.0",
)
def hrandfield(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 2:
        hash_ = read(s, argv[1], dict)
        return bulk(one(hash_)) if hash_ else NIL
    count = parse_count(argv[2])
    with_values = len(argv) == 4 and argv[3].lower() == b"withvalues"
    if len(argv) > 4 or (len(argv) == 4 and not with_values):
        raise KvError(errors.SYNTAX)
    if with_values and not -(INT64_MAX // 2) <= count <= INT64_MAX // 2:  # C's -LONG_MAX/2
        raise KvError(errors.OUT_OF_RANGE)
    hash_ = read(s, argv[1], dict)
    if not hash_ or not count:
        return EMPTY_ARRAY
    fields = pick(hash_, count)
    if not with_values:
        return bulk_array(fields)
    return bulk_array([item for field in fields for item in (field, hash_[field])])


@command(
    "hscan",
    -3,
    "readonly",
    "hash",
    "Iterates over fields and values of a hash.",
    since="2.8.0",
)
def hscan(s: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2])
    hash_ = read(s, argv[1], dict)
    if hash_ is None:
        return EMPTY_SCAN
    whole = list(hash_) if is_listpack(hash_) else None
    cursor, fields = s.state.cursors.elements(argv, cursor, hash_, whole)
    pairs = [item for field in fields for item in (field, hash_[field])]
    return scan_reply(cursor, pairs)


# Redis 7.0's hash-max-listpack-entries and hash-max-listpack-value defaults.
LISTPACK_ENTRIES = 128
LISTPACK_VALUE = 64


def is_listpack(hash_: dict[bytes, bytes]) -> bool:
    """Whether Redis would hold this hash as a listpack (which HSCAN answers whole)."""
    if len(hash_) > LISTPACK_ENTRIES:
        return False
    return all(
        len(field) <= LISTPACK_VALUE and len(value) <= LISTPACK_VALUE
        for field, value in hash_.items()
    )
