"""Set commands: SADD, SREM, SMEMBERS, SISMEMBER and SCARD, as in Redis's ``t_set.c``.

A set is a Python ``set`` of ``bytes``. SMEMBERS order is the set's own, arbitrary as in
Redis. A set whose last member is removed is deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv.commands.common import create, read, write
from residentd.apps.kv.commands.registry import command
from residentd.codecs.resp import EMPTY_ARRAY, ONE, ZERO, bulk_array, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


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
    members = read(s, argv[1], set)
    return bulk_array(members) if members else EMPTY_ARRAY


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


@command("scard", 2, "readonly fast", "set", "Returns the number of members in a set.")
def scard(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(read(s, argv[1], set) or ()))
