"""Hash commands: HSET, HGET, HMGET, HDEL, HGETALL, HLEN and HINCRBY, as in Redis's ``t_hash.c``.

A hash is a ``dict`` of field to value (both ``bytes``). Python dicts keep insertion order,
so HGETALL lists fields in the order they were first set, as Redis does for small hashes.
A hash whose last field is deleted is deleted too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import create, int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    INT64_MAX,
    INT64_MIN,
    NIL,
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
    if len(argv) % 2:
        raise KvError(errors.wrong_arity("hset"))
    hash_ = create(s, argv[1], dict)
    before = len(hash_)
    for i in range(2, len(argv), 2):
        hash_[argv[i]] = argv[i + 1]
    return integer(len(hash_) - before)


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


@command(
    "hlen", 2, "readonly fast", "hash", "Returns the number of fields in a hash.", since="2.0.0"
)
def hlen(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(read(s, argv[1], dict) or ()))


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
