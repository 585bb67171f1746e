"""Helpers the command handlers share: typed lookups and argument parsing.

Each either returns what the handler asked for or raises ``KvError`` with Redis's error
reply (WRONGTYPE, "value is not an integer or out of range", ...), which the session sends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from residentd.apps.kv import errors
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import parse_int

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client
    from residentd.apps.kv.store import Keyspace

T = TypeVar("T")


def read(s: Client, key: bytes, kind: type[T]) -> T | None:
    """The value at ``key`` for a read if it is a ``kind``, ``None`` if there is none."""
    value: Any = s.db.get(key)
    if value is None or value.__class__ is kind:
        return value
    raise KvError(errors.WRONGTYPE)


def write(s: Client, key: bytes, kind: type[T]) -> T | None:
    """Like ``read``, for a command about to change the value (no hit/miss counted)."""
    value: Any = s.db.get_write(key)
    if value is None or value.__class__ is kind:
        return value
    raise KvError(errors.WRONGTYPE)


def first_nonempty(s: Client, keys: list[bytes], kind: type[T]) -> tuple[bytes, T] | None:
    """The first of ``keys`` holding a non-empty ``kind``, with it (for a command about to
    take from it: BLPOP, LMPOP, BZPOPMIN, ...); WRONGTYPE at another type before it."""
    for key in keys:
        value = write(s, key, kind)
        if value:
            return key, value
    return None


def ready_nonempty(s: Client, key: bytes, kind: type[T]) -> T | None:
    """The non-empty ``kind`` at a key that became ready for a blocked client, None if it
    holds none now (gone, emptied, another type)."""
    value: Any = s.db.get_write(key)
    return value if value.__class__ is kind and value else None


def create(s: Client, key: bytes, kind: type[T]) -> T:
    """The ``kind`` at ``key``, created empty if there is none (the hot path of LPUSH, SADD
    and HSET, so ``write`` is spelled out here)."""
    db = s.db
    value: Any = db.data.get(key)
    if value is None or (db.expires and db.expire_if_due(key)):
        value = db.data[key] = kind()
    elif value.__class__ is not kind:
        raise KvError(errors.WRONGTYPE)
    return value


def int_arg(text: bytes) -> int:
    """A 64-bit integer argument, by Redis's rules."""
    value = parse_int(text)
    if value is None:
        raise KvError(errors.NOT_AN_INTEGER)
    return value


def database_arg(s: Client, text: bytes) -> Keyspace:
    """A database number argument (SELECT, MOVE, COPY ... DB): its keyspace, by Redis's
    ``getIntFromObjectOrReply`` and ``selectDb`` checks."""
    index = int_arg(text)
    if not -(2**31) <= index < 2**31:
        raise KvError(errors.NOT_AN_INT32)
    if not 0 <= index < s.state.databases:
        raise KvError(errors.DB_INDEX_OUT_OF_RANGE)
    return s.state.keyspace(index)


def index_range(start: int, stop: int, size: int) -> range:
    """The positions from ``start`` to ``stop`` (both included, negative ones counted from
    the end) in a sequence of ``size``, clipped as LRANGE and ZRANGE clip them."""
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = max(start, 0)
    if start > stop or start >= size:
        return range(0)
    return range(start, min(stop, size - 1) + 1)


def ranged_int(text: bytes, low: int, reply: bytes) -> int:
    """Redis's ``getRangeLongFromObjectOrReply`` from ``low`` up with a message of its own:
    ``reply`` for a non-integer and for one below ``low`` alike."""
    value = parse_int(text)
    if value is None or value < low:
        raise KvError(reply)
    return value


def mpop_args(
    argv: list[bytes], first: int, sides: tuple[bytes, bytes]
) -> tuple[list[bytes], bool, int]:
    """LMPOP's and ZMPOP's ``numkeys key ... side [COUNT n]`` from ``argv[first]``: the keys,
    whether the side is ``sides[0]`` (LEFT, MIN), and the count (1 without COUNT)."""
    numkeys = ranged_int(argv[first], 1, errors.NUMKEYS)
    where = first + numkeys + 1
    if where >= len(argv):
        raise KvError(errors.SYNTAX)
    side = argv[where].upper()
    if side not in sides:
        raise KvError(errors.SYNTAX)
    count = -1
    index = where + 1
    while index < len(argv):
        if count == -1 and argv[index].upper() == b"COUNT" and index + 1 < len(argv):
            count = ranged_int(argv[index + 1], 1, errors.COUNT_POSITIVE)
            index += 2
        else:
            raise KvError(errors.SYNTAX)
    return argv[first + 1 : where], side == sides[0], max(count, 1)
