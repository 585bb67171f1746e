"""List commands, as in Redis 7.0's ``t_list.c``: the pushes and pops, LRANGE, LINDEX, LSET,
LINSERT, LREM, LTRIM, LPOS, LMOVE/RPOPLPUSH, LMPOP, and the blocking BLPOP, BRPOP, BLMOVE,
BRPOPLPUSH and BLMPOP.

A list is a ``collections.deque``: pushes and pops at either end are O(1), indexing walks from
the nearer end, and LRANGE walks from the nearer end with ``itertools.islice``, O(start +
count) like Redis's quicklist. A list whose last element is popped is deleted.

Arguments are checked in Redis's order, which decides which error a bad request gets (LINDEX
looks the key up before it parses the index, LREM parses its count first, ...).

A blocking command first does what its non-blocking form does on the first non-empty list;
when every list is empty it calls ``client.block`` with a ``serve`` closure that does the
same from the key that becomes ready (blocking.py), and journals itself as Redis propagates
it: BLPOP as LPOP, BLMOVE as LMOVE, BRPOPLPUSH as RPOPLPUSH, BLMPOP as LPOP key count. Inside
MULTI it does not block and answers nil at once.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import (
    create,
    first_nonempty,
    index_range,
    int_arg,
    mpop_args,
    ranged_int,
    read,
    ready_nonempty,
    write,
)
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.journaling import run_served
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    NIL,
    NIL_ARRAY,
    OK,
    ZERO,
    array_header,
    bulk,
    bulk_array,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

T = TypeVar("T")

MINUS_ONE = b":-1\r\n"
INDEX_OUT_OF_RANGE = b"-ERR index out of range\r\n"
RANK_ZERO = (
    b"-ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or "
    b"use negative to start from the end of the list\r\n"
)
COUNT_NEGATIVE = b"-ERR COUNT can't be negative\r\n"
MAXLEN_NEGATIVE = b"-ERR MAXLEN can't be negative\r\n"
TIMEOUT_NOT_FLOAT = b"-ERR timeout is not a float or out of range\r\n"
TIMEOUT_NEGATIVE = b"-ERR timeout is negative\r\n"

LLONG_MAX = 2**63 - 1
LEFT, RIGHT = b"LEFT", b"RIGHT"

# What strtold reads whole (Redis's string2ld): decimal, hexadecimal and infinity, no spaces.
_FLOAT = re.compile(
    rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?"
    rb"|0x(?:[0-9a-f]+\.?[0-9a-f]*|\.[0-9a-f]+)(?:p[+-]?\d+)?|inf(?:inity)?)",
    re.IGNORECASE,
)


# -- argument parsing -----------------------------------------------------------------------------


def _end(word: bytes) -> bool | None:
    """LEFT (True) or RIGHT (False), any case; None for anything else."""
    word = word.upper()
    return True if word == LEFT else False if word == RIGHT else None


def _end_arg(word: bytes) -> bool:
    left = _end(word)
    if left is None:
        raise KvError(errors.SYNTAX)
    return left


def timeout_arg(text: bytes) -> float:
    """A blocking command's timeout in seconds, as Redis 7.0 reads it: a float, truncated to
    whole milliseconds (so below one it means 0, forever); past the 64-bit range it is
    negative, as the C conversion makes it."""
    if len(text) > 5 * 1024 or not _FLOAT.fullmatch(text):
        raise KvError(TIMEOUT_NOT_FLOAT)
    word = text.decode()
    value = float.fromhex(word) if "x" in word.lower() else float(word)
    millis = value * 1000.0
    if not math.isfinite(millis) or not -(2.0**63) < millis < 2.0**63:
        raise KvError(TIMEOUT_NEGATIVE)
    whole = int(millis)
    if whole < 0:
        raise KvError(TIMEOUT_NEGATIVE)
    return whole / 1000.0


def _index(size: int, index: int) -> int | None:
    """A list index (negative from the tail) as an offset, None if out of range."""
    if index < 0:
        index += size
    return index if 0 <= index < size else None


# -- pushes ---------------------------------------------------------------------------------------


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


@command(
    "lpushx",
    -3,
    "write denyoom fast",
    "list",
    "Prepends one or more elements to a list only when the list exists.",
    since="2.2.0",
)
def lpushx(s: Client, argv: list[bytes]) -> bytes:
    return _pushx(s, argv, left=True)


def _pushx(s: Client, argv: list[bytes], left: bool) -> bytes:
    items = write(s, argv[1], deque)
    if items is None:
        return ZERO
    if left:
        items.extendleft(argv[2:])
    else:
        items.extend(argv[2:])
    return integer(len(items))


@command(
    "rpushx",
    -3,
    "write denyoom fast",
    "list",
    "Appends an element to a list only when the list exists.",
    since="2.2.0",
)
def rpushx(s: Client, argv: list[bytes]) -> bytes:
    return _pushx(s, argv, left=False)


# -- pops -----------------------------------------------------------------------------------------


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


def _pop_range(s: Client, key: bytes, items: deque[bytes], left: bool, count: int) -> bytes:
    """LMPOP's reply for one list: ``[key, [elements]]``, the list deleted if emptied."""
    pop = items.popleft if left else items.pop
    popped = [pop() for _ in range(min(count, len(items)))]
    s.db.delete_if_empty(key, items)
    return b"*2\r\n" + bulk(key) + bulk_array(popped)


@command(
    "lmpop",
    -4,
    "write",
    "list",
    "Returns multiple elements from a list after removing them. Deletes the list if the last "
    "element was popped.",
    since="7.0.0",
    keys=(0, 0, 0),
)
def lmpop(s: Client, argv: list[bytes]) -> bytes:
    keys, left, count = mpop_args(argv, 1, (LEFT, RIGHT))
    found = first_nonempty(s, keys, deque)
    if found is None:
        return NIL_ARRAY
    return _pop_range(s, found[0], found[1], left, count)


# -- reads ----------------------------------------------------------------------------------------


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


@command("lindex", 3, "readonly", "list", "Returns an element from a list by its index.")
def lindex(s: Client, argv: list[bytes]) -> bytes:
    items = read(s, argv[1], deque)
    if items is None:
        return NIL
    offset = _index(len(items), int_arg(argv[2]))
    return NIL if offset is None else bulk(items[offset])


@command(
    "lpos",
    -3,
    "readonly",
    "list",
    "Returns the index of matching elements in a list.",
    since="6.0.6",
)
def lpos(s: Client, argv: list[bytes]) -> bytes:
    rank, count, maxlen = 1, -1, 0
    index = 3
    while index < len(argv):
        option = argv[index].upper()
        more = index + 1 < len(argv)
        if option == b"RANK" and more:
            rank = int_arg(argv[index + 1])
            if rank == 0:
                raise KvError(RANK_ZERO)
        elif option == b"COUNT" and more:
            count = ranged_int(argv[index + 1], 0, COUNT_NEGATIVE)
        elif option == b"MAXLEN" and more:
            maxlen = ranged_int(argv[index + 1], 0, MAXLEN_NEGATIVE)
        else:
            raise KvError(errors.SYNTAX)
        index += 2
    items = read(s, argv[1], deque)
    if items is None:
        return NIL if count == -1 else EMPTY_ARRAY
    size = len(items)
    from_tail = rank < 0
    # -LLONG_MIN wraps to itself in C: a rank that every match reaches, as -1's does, and
    # Redis's stop test (matches - rank + 1 >= count) then overflows and never holds: COUNT
    # takes every match.
    wrapped = rank == -(2**63)
    rank = 1 if wrapped else abs(rank)
    if wrapped and count > 0:
        count = 0
    walk = reversed(items) if from_tail else iter(items)
    if maxlen:
        walk = islice(walk, maxlen)
    element = argv[2]
    matches = 0
    found: list[int] = []
    for position, item in enumerate(walk):
        if item == element:
            matches += 1
            if matches >= rank:
                found.append(size - 1 - position if from_tail else position)
                if count == -1 or (count and len(found) >= count):
                    break
    if count == -1:
        return integer(found[0]) if found else NIL
    return array_header(len(found)) + b"".join(integer(index) for index in found)


# -- changes in place -----------------------------------------------------------------------------


@command("lset", 4, "write denyoom", "list", "Sets the value of an element in a list by its index.")
def lset(s: Client, argv: list[bytes]) -> bytes:
    items = write(s, argv[1], deque)
    if items is None:
        raise KvError(errors.NO_SUCH_KEY)
    offset = _index(len(items), int_arg(argv[2]))
    if offset is None:
        raise KvError(INDEX_OUT_OF_RANGE)
    items[offset] = argv[3]
    return OK


@command(
    "linsert",
    5,
    "write denyoom",
    "list",
    "Inserts an element before or after another element in a list.",
    since="2.2.0",
)
def linsert(s: Client, argv: list[bytes]) -> bytes:
    where = argv[2].upper()
    if where not in (b"BEFORE", b"AFTER"):
        raise KvError(errors.SYNTAX)
    items = write(s, argv[1], deque)
    if items is None:
        return ZERO
    try:
        offset = items.index(argv[3])
    except ValueError:
        return MINUS_ONE
    items.insert(offset + (where == b"AFTER"), argv[4])
    return integer(len(items))


@command("lrem", 4, "write", "list", "Removes elements from a list.")
def lrem(s: Client, argv: list[bytes]) -> bytes:
    count = int_arg(argv[2])
    items = write(s, argv[1], deque)
    if items is None:
        return ZERO
    element = argv[3]
    limit = abs(count) or len(items)
    kept: list[bytes] = []
    removed = 0
    for item in reversed(items) if count < 0 else items:
        if removed < limit and item == element:
            removed += 1
        else:
            kept.append(item)
    if removed:
        if count < 0:
            kept.reverse()
        items.clear()
        items.extend(kept)
        s.db.delete_if_empty(argv[1], items)
    return integer(removed)


@command("ltrim", 4, "write", "list", "Removes elements from both ends a list.")
def ltrim(s: Client, argv: list[bytes]) -> bytes:
    start = int_arg(argv[2])
    stop = int_arg(argv[3])
    items = write(s, argv[1], deque)
    if items is None:
        return OK
    size = len(items)
    kept = index_range(start, stop, size)
    for _ in range(size - kept.stop if kept else 0):
        items.pop()
    for _ in range(kept.start if kept else size):
        items.popleft()
    s.db.delete_if_empty(argv[1], items)
    return OK


# -- moves ----------------------------------------------------------------------------------------


def _move(s: Client, source: bytes, target: bytes, left_from: bool, left_to: bool) -> bytes:
    """Redis's ``lmoveGenericCommand`` on a source that exists: pop from one end of it, push
    to one end of ``target`` (created if missing, WRONGTYPE if another type)."""
    items = write(s, source, deque)
    if not items:
        return NIL
    destination = write(s, target, deque)
    value = items.popleft() if left_from else items.pop()
    if destination is None:
        destination = create(s, target, deque)
    if left_to:
        destination.appendleft(value)
    else:
        destination.append(value)
    s.db.delete_if_empty(source, items)
    return bulk(value)


@command(
    "lmove",
    5,
    "write denyoom",
    "list",
    "Returns an element after popping it from one list and pushing it to another. Deletes the "
    "list if the last element was moved.",
    since="6.2.0",
    keys=(1, 2, 1),
)
def lmove(s: Client, argv: list[bytes]) -> bytes:
    left_from = _end_arg(argv[3])
    left_to = _end_arg(argv[4])
    return _move(s, argv[1], argv[2], left_from, left_to)


@command(
    "rpoplpush",
    3,
    "write denyoom",
    "list",
    "Returns the last element of a list after removing and pushing it to another list. Deletes "
    "the list if the last element was popped.",
    since="1.2.0",
    keys=(1, 2, 1),
)
def rpoplpush(s: Client, argv: list[bytes]) -> bytes:
    return _move(s, argv[1], argv[2], False, True)


# -- blocking -------------------------------------------------------------------------------------


def pop_or_wait(
    s: Client, argv: list[bytes], kind: type[T], name: bytes, pop: Callable[[bytes, T], bytes]
) -> bytes:
    """BLPOP, BRPOP, BZPOPMIN and BZPOPMAX (``KEY... TIMEOUT``): ``pop`` from the first key
    holding a non-empty ``kind``, else wait on them all; a key that becomes ready serves the
    wait as the command Redis propagates for it, ``name`` (LPOP, ZPOPMIN, ...)."""
    timeout = timeout_arg(argv[-1])
    keys = argv[1:-1]
    found = first_nonempty(s, keys, kind)
    if found is not None:
        return pop(*found)

    def serve(key: bytes) -> bytes | None:
        value = ready_nonempty(s, key, kind)
        if value is None:
            return None
        return run_served(s, [name, key], lambda: pop(key, value))

    s.block(keys, timeout, serve, NIL_ARRAY)
    return NIL_ARRAY


def _blocking_pop(s: Client, argv: list[bytes], left: bool) -> bytes:
    """BLPOP and BRPOP: ``[key, element]`` from the first non-empty list, else wait."""

    def pop(key: bytes, items: deque[bytes]) -> bytes:
        value = items.popleft() if left else items.pop()
        s.db.delete_if_empty(key, items)
        return b"*2\r\n" + bulk(key) + bulk(value)

    return pop_or_wait(s, argv, deque, b"LPOP" if left else b"RPOP", pop)


@command(
    "blpop",
    -3,
    "write noscript blocking",
    "list",
    "Removes and returns the first element in a list. Blocks until an element is available "
    "otherwise. Deletes the list if the last element was popped.",
    since="2.0.0",
    keys=(1, -2, 1),
)
def blpop(s: Client, argv: list[bytes]) -> bytes:
    return _blocking_pop(s, argv, True)


@command(
    "brpop",
    -3,
    "write noscript blocking",
    "list",
    "Removes and returns the last element in a list. Blocks until an element is available "
    "otherwise. Deletes the list if the last element was popped.",
    since="2.0.0",
    keys=(1, -2, 1),
)
def brpop(s: Client, argv: list[bytes]) -> bytes:
    return _blocking_pop(s, argv, False)


def _blocking_move(
    s: Client, argv: list[bytes], left_from: bool, left_to: bool, timeout: float
) -> bytes:
    """BLMOVE and BRPOPLPUSH: LMOVE if the source has elements, else wait on it."""
    source, target = argv[1], argv[2]
    if write(s, source, deque) is not None:
        return _move(s, source, target, left_from, left_to)
    if len(argv) == 4:  # BRPOPLPUSH
        logged = [b"RPOPLPUSH", source, target]
    else:
        logged = [b"LMOVE", source, target, LEFT if left_from else RIGHT]
        logged.append(LEFT if left_to else RIGHT)

    def serve(key: bytes) -> bytes | None:
        if ready_nonempty(s, key, deque) is None:
            return None
        try:
            reply = run_served(s, logged, lambda: _move(s, source, target, left_from, left_to))
        except KvError as exc:  # the destination has another type: the waiter hears it
            return exc.reply
        s.state.blocking.signal(s.db.index, target)
        return reply

    # Redis answers a timed-out BLMOVE with a null array, but one inside MULTI with a null.
    s.block([source], timeout, serve, NIL_ARRAY)
    return NIL


@command(
    "blmove",
    6,
    "write denyoom noscript blocking",
    "list",
    "Pops an element from a list, pushes it to another list and returns it. Blocks until an "
    "element is available otherwise. Deletes the list if the last element was moved.",
    since="6.2.0",
    keys=(1, 2, 1),
)
def blmove(s: Client, argv: list[bytes]) -> bytes:
    left_from = _end_arg(argv[3])
    left_to = _end_arg(argv[4])
    return _blocking_move(s, argv, left_from, left_to, timeout_arg(argv[5]))


@command(
    "brpoplpush",
    4,
    "write denyoom noscript blocking",
    "list",
    "Pops an element from a list, pushes it to another list and returns it. Block until an "
    "element is available otherwise. Deletes the list if the last element was popped.",
    since="2.2.0",
    keys=(1, 2, 1),
)
def brpoplpush(s: Client, argv: list[bytes]) -> bytes:
    return _blocking_move(s, argv, False, True, timeout_arg(argv[3]))


@command(
    "blmpop",
    -5,
    "write blocking",
    "list",
    "Pops the first element from one of multiple lists. Blocks until an element is available "
    "otherwise. Deletes the list if the last element was popped.",
    since="7.0.0",
    keys=(0, 0, 0),
)
def blmpop(s: Client, argv: list[bytes]) -> bytes:
    keys, left, count = mpop_args(argv, 2, (LEFT, RIGHT))
    timeout = timeout_arg(argv[1])
    found = first_nonempty(s, keys, deque)
    if found is not None:
        return _pop_range(s, found[0], found[1], left, count)
    name = b"LPOP" if left else b"RPOP"

    def serve(key: bytes) -> bytes | None:
        items = ready_nonempty(s, key, deque)
        if items is None:
            return None
        logged = [name, key, b"%d" % min(count, len(items))]
        return run_served(s, logged, lambda: _pop_range(s, key, items, left, count))

    s.block(keys, timeout, serve, NIL_ARRAY)
    return NIL_ARRAY
