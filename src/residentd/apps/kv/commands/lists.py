"""List commands: LPUSH, RPUSH, LPOP, RPOP, LLEN and LRANGE, as in Redis's ``t_list.c``.

A list is a ``collections.deque``: pushes and pops at either end are O(1), and LRANGE walks
from the nearer end with ``itertools.islice``, O(start + count) like Redis's quicklist. A list
whose last element is popped is deleted.
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import create, index_range, int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import EMPTY_ARRAY, NIL, NIL_ARRAY, bulk, bulk_array, integer, parse_int

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


@command(
    "lpush",
    -3,
    "write denyoom fast",
    "list",
    "Prepends one or more elements to a list.",
)
def lpush(s: Client, argv: list[bytes]) -> bytes:
    items = create(s, argv[1], deque)
    items.extendleft(argv[2:])
    return integer(len(items))


@command(
    "rpush",
    -3,
    "write denyoom fast",
    "list",
    "Appends one or more elements to a list.",
)
def rpush(s: Client, argv: list[bytes]) -> bytes:
    items = create(s, argv[1], deque)
    items.extend(argv[2:])
    return integer(len(items))


def _pop(s: Client, argv: list[bytes], name: str, left: bool) -> bytes:
    """Redis's ``popGenericCommand``: one element, or up to COUNT of them as an array."""
    if len(argv) > 3:
        raise KvError(errors.wrong_arity(name))
    count = None
    if len(argv) == 3:
        count = parse_int(argv[2])
        if count is None or count < 0:
            raise KvError(errors.MUST_BE_POSITIVE)
    items = write(s, argv[1], deque)
    if items is None:
        return NIL if count is None else NIL_ARRAY
    if count == 0:
        return EMPTY_ARRAY
    pop = items.popleft if left else items.pop
    if count is None:
        reply = bulk(pop())
    else:
        reply = bulk_array([pop() for _ in range(min(count, len(items)))])
    s.db.delete_if_empty(argv[1], items)
    return reply


@command(
    "lpop",
    -2,
    "write fast",
    "list",
    "Returns the first elements in a list after removing it.",
)
def lpop(s: Client, argv: list[bytes]) -> bytes:
    return _pop(s, argv, "lpop", left=True)


@command(
    "rpop",
    -2,
    "write fast",
    "list",
    "Returns and removes the last elements of a list.",
)
def rpop(s: Client, argv: list[bytes]) -> bytes:
    return _pop(s, argv, "rpop", left=False)


@command("llen", 2, "readonly fast", "list", "Returns the length of a list.")
def llen(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(read(s, argv[1], deque) or ()))


@command("lrange", 4, "readonly", "list", "Returns a range of elements from a list.")
def lrange(s: Client, argv: list[bytes]) -> bytes:
    start = int_arg(argv[2])
    stop = int_arg(argv[3])
    items = read(s, argv[1], deque)
    if items is None:
        return EMPTY_ARRAY
    size = len(items)
    positions = index_range(start, stop, size)
    if not positions:
        return EMPTY_ARRAY
    start, stop = positions.start, positions.stop
    if start > size - stop:  # nearer the tail: walk from there
        tail = list(islice(reversed(items), size - stop, size - start))
        tail.reverse()
        return bulk_array(tail)
    return bulk_array(islice(items, start, stop))
