"""Set commands, all of Redis 7.0's ``t_set.c``: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER,
SCARD, SPOP, SRANDMEMBER, SMOVE, SINTER, SUNION, SDIFF and their STORE forms, SINTERCARD and
SSCAN.

A set is a Python ``set`` of ``bytes``; one whose last member is removed is deleted. Replies
list a set in its own order, arbitrary as in Redis, except that a set Redis would hold as an
intset (at most 512 members, all integers) is listed in ascending order, as Redis lists it.
SPOP and SRANDMEMBER follow Redis's count rules (sampling.py); SPOP is journaled as the SREM
(or the DEL) of what it popped (persistence/aof.py), so that a replay removes the same
members. The multi-key commands check every key's type before they answer, and count a
missing key as an empty set. SSCAN answers an intset in one reply, as Redis does, and walks a
larger set with the cursors of scan.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import create, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.sampling import one, parse_count, pick, pop
from residentd.apps.kv.scan import EMPTY_SCAN, parse_cursor, scan_reply
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    NIL,
    ONE,
    ZERO,
    array_header,
    bulk,
    bulk_array,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

Members = set[bytes]


@command("sadd", -3, "write denyoom fast", "set", "Adds one or more members to a set.")
def sadd(s: Client, argv: list[bytes]) -> bytes:
    members = create(s, argv[1], set)
    before = len(members)
    members.update(argv[2:])
    return integer(len(members) - before)


@command("srem", -3, "write fast", "set", "Removes one or more members from a set.")
def srem(s: Client, argv: list[bytes]) -> bytes:
    members = write(s, argv[1], set)
    if members is None:
        return ZERO
    before = len(members)
    members.difference_update(argv[2:])
    s.db.delete_if_empty(argv[1], members)
    return integer(before - len(members))


@command("smembers", 2, "readonly", "set", "Returns all members of a set.")
def smembers(s: Client, argv: list[bytes]) -> bytes:
    return members_reply(read(s, argv[1], set) or set())


@command(
    "sismember",
    3,
    "readonly fast",
    "set",
    "Determines whether a member belongs to a set.",
)
def sismember(s: Client, argv: list[bytes]) -> bytes:
    members = read(s, argv[1], set)
    return ONE if members is not None and argv[2] in members else ZERO


@command(
    "smismember",
    -3,
    "readonly fast",
    "set",
    "Determines whether multiple members belong to a set.",
    since="6.2.0",
)
def smismember(s: Client, argv: list[bytes]) -> bytes:
    members = read(s, argv[1], set) or set()
    return array_header(len(argv) - 2) + b"".join(
        ONE if member in members else ZERO for member in argv[2:]
    )


@command("scard", 2, "readonly fast", "set", "Returns the number of members in a set.")
def scard(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(read(s, argv[1], set) or ()))


# -- random members -------------------------------------------------------------------------------


@command(
    "spop",
    -2,
    "write fast",
    "set",
    "Returns one or more random members from a set after removing them.",
)
def spop(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise KvError(errors.SYNTAX)
    if len(argv) == 3:
        return _spop_count(s, argv)
    members = write(s, argv[1], set)
    if members is None:
        return NIL
    (member,) = pop(members, 1)
    s.db.delete_if_empty(argv[1], members)
    return bulk(member)


def _spop_count(s: Client, argv: list[bytes]) -> bytes:
    count = parse_int(argv[2])
    if count is None or count < 0:
        raise KvError(errors.MUST_BE_POSITIVE)
    members = write(s, argv[1], set)
    if members is None or not count:
        return EMPTY_ARRAY
    if count >= len(members):
        s.db.delete(argv[1])
        return members_reply(members)
    return bulk_array(pop(members, count))


@command(
    "srandmember",
    -2,
    "readonly",
    "set",
    "Get one or multiple random members from a set.",
)
def srandmember(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) > 3:
        raise KvError(errors.SYNTAX)
    if len(argv) == 2:
        members = read(s, argv[1], set)
        return bulk(one(members)) if members else NIL
    count = parse_count(argv[2])
    members = read(s, argv[1], set)
    if not members or not count:
        return EMPTY_ARRAY
    if count >= len(members):
        return members_reply(members)
    return bulk_array(pick(members, count))


@command(
    "smove",
    4,
    "write fast",
    "set",
    "Moves a member from one set to another.",
    keys=(1, 2, 1),
)
def smove(s: Client, argv: list[bytes]) -> bytes:
    source = write(s, argv[1], set)
    target = s.db.get_write(argv[2])
    if source is None:
        return ZERO
    if target is not None and target.__class__ is not set:
        raise KvError(errors.WRONGTYPE)
    member = argv[3]
    if source is target:
        return ONE if member in source else ZERO
    if member not in source:
        return ZERO
    source.remove(member)
    s.db.delete_if_empty(argv[1], source)
    create(s, argv[2], set).add(member)
    return ONE


# -- algebra --------------------------------------------------------------------------------------


def _sets(s: Client, keys: list[bytes]) -> list[Members | None]:
    """The sets at ``keys`` (``None`` for a missing one), every type checked first."""
    return [read(s, key, set) for key in keys]


def _inter(s: Client, keys: list[bytes]) -> Members:
    found = _sets(s, keys)
    present = [members for members in found if members is not None]
    if len(present) < len(found):
        return set()
    present.sort(key=len)
    return present[0].intersection(*present[1:])


def _union(s: Client, keys: list[bytes]) -> Members:
    return set().union(*(members for members in _sets(s, keys) if members is not None))


def _diff(s: Client, keys: list[bytes]) -> Members:
    first, *rest = _sets(s, keys)
    if first is None:
        return set()
    return first.difference(*(members for members in rest if members is not None))


def _store(s: Client, key: bytes, result: Members) -> bytes:
    """A STORE form's end: ``result`` replaces ``key`` (which goes if ``result`` is empty)."""
    if result:
        s.db.set(key, result)
    else:
        s.db.delete(key)
    return integer(len(result))


@command(
    "sinter", -2, "readonly", "set", "Returns the intersect of multiple sets.", keys=(1, -1, 1)
)
def sinter(s: Client, argv: list[bytes]) -> bytes:
    return members_reply(_inter(s, argv[1:]))


@command(
    "sinterstore",
    -3,
    "write denyoom",
    "set",
    "Stores the intersect of multiple sets in a key.",
    keys=(1, -1, 1),
)
def sinterstore(s: Client, argv: list[bytes]) -> bytes:
    return _store(s, argv[1], _inter(s, argv[2:]))


@command("sunion", -2, "readonly", "set", "Returns the union of multiple sets.", keys=(1, -1, 1))
def sunion(s: Client, argv: list[bytes]) -> bytes:
    return members_reply(_union(s, argv[1:]))


@command(
    "sunionstore",
    -3,
    "write denyoom",
    "set",
    "Stores the union of multiple sets in a key.",
    keys=(1, -1, 1),
)
def sunionstore(s: Client, argv: list[bytes]) -> bytes:
    return _store(s, argv[1], _union(s, argv[2:]))


@command(
    "sdiff", -2, "readonly", "set", "Returns the difference of multiple sets.", keys=(1, -1, 1)
)
def sdiff(s: Client, argv: list[bytes]) -> bytes:
    return members_reply(_diff(s, argv[1:]))


@command(
    "sdiffstore",
    -3,
    "write denyoom",
    "set",
    "Stores the difference of multiple sets in a key.",
    keys=(1, -1, 1),
)
def sdiffstore(s: Client, argv: list[bytes]) -> bytes:
    return _store(s, argv[1], _diff(s, argv[2:]))


@command(
    "sintercard",
    -3,
    "readonly movablekeys",
    "set",
    "Returns the number of members of the intersect of multiple sets.",
    since="7.0.0",
    keys=(0, 0, 0),
)
def sintercard(s: Client, argv: list[bytes]) -> bytes:
    numkeys = parse_int(argv[1])
    if numkeys is None or numkeys < 1:
        raise KvError(errors.NUMKEYS_NOT_POSITIVE)
    if numkeys > len(argv) - 2:
        raise KvError(errors.NUMKEYS_TOO_MANY)
    limit = 0
    i = 2 + numkeys
    while i < len(argv):
        if argv[i].lower() != b"limit" or i + 1 == len(argv):
            raise KvError(errors.SYNTAX)
        parsed = parse_int(argv[i + 1])
        if parsed is None or parsed < 0:
            raise KvError(errors.LIMIT_NEGATIVE)
        limit = parsed
        i += 2
    found = _sets(s, argv[2 : 2 + numkeys])
    present = [members for members in found if members is not None]
    if len(present) < len(found):
        return ZERO
    smallest, *others = sorted(present, key=len)
    count = 0
    for member in smallest:
        if all(member in members for members in others):
            count += 1
            if count == limit:
                break
    return integer(count)


# -- scanning -------------------------------------------------------------------------------------


@command(
    "sscan",
    -3,
    "readonly",
    "set",
    "Iterates over members of a set.",
    since="2.8.0",
)
def sscan(s: Client, argv: list[bytes]) -> bytes:
    cursor = parse_cursor(argv[2])
    members = read(s, argv[1], set)
    if members is None:
        return EMPTY_SCAN
    cursor, found = s.state.cursors.elements(argv, cursor, members, intset_order(members))
    return scan_reply(cursor, found)


def members_reply(members: Members) -> bytes:
    """An array of ``members``, in ascending order where Redis would hold them in an intset
    (so that a small set of integers lists as in Redis), else in the set's own order."""
    ordered = intset_order(members)
    return bulk_array(members if ordered is None else ordered)


# Redis 7.0's set-max-intset-entries default.
INTSET_ENTRIES = 512


def intset_order(members: Members) -> list[bytes] | None:
    """The members in the order of Redis's intset if Redis would hold them in one (at most
    512 members, every one a 64-bit integer in canonical form), else ``None``."""
    if len(members) > INTSET_ENTRIES:
        return None
    numbers = []
    for member in members:
        number = parse_int(member)
        if number is None:
            return None
        numbers.append((number, member))
    numbers.sort()
    return [member for _, member in numbers]
