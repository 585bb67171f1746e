"""Sorted set commands, as in Redis 7.0's ``t_zset.c`` (the blocking BZ* ones aside).

A sorted set is a ``SortedSet`` (zset.py). The handlers follow Redis's order of checks, which
decides which error a bad request gets: options and ranges are parsed before the key is looked
up, so ``ZRANGEBYSCORE wrongtype x 1`` is "min or max is not a float", not WRONGTYPE. Scores
are doubles parsed as Redis's ``getDoubleFromObject`` parses them (zscores.py) and answered as
``addReplyDouble`` formats them (``%.17g``, ``inf``, ``-inf``). A sorted set whose last member
goes is deleted; a STORE command whose result is empty deletes its destination.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import (
    create,
    index_range,
    int_arg,
    mpop_args,
    ranged_int,
    read,
    ready_nonempty,
    write,
)
from residentd.apps.kv.commands.keys import parse_cursor
from residentd.apps.kv.commands.lists import pop_or_wait, timeout_arg
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.journaling import run_served
from residentd.apps.kv.patterns import compile_glob
from residentd.apps.kv.zscores import (
    format_score,
    parse_lex_range,
    parse_score,
    parse_score_range,
    reply_score,
)
from residentd.apps.kv.zset import Entry, SortedSet
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    INT64_MAX,
    NIL,
    NIL_ARRAY,
    ZERO,
    array_header,
    bulk,
    bulk_array,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

EMPTY_SCAN = b"*2\r\n$1\r\n0\r\n*0\r\n"
LONG_MAX = INT64_MAX

RANK, SCORE, LEX = "rank", "score", "lex"


def _entries_reply(entries: list[Entry], withscores: bool) -> bytes:
    if not withscores:
        return bulk_array([member for _, member in entries])
    parts = [array_header(2 * len(entries))]
    for score, member in entries:
        parts.append(bulk(member))
        parts.append(reply_score(score))
    return b"".join(parts)


def _store(s: Client, key: bytes, entries: list[Entry], size_hint: int | None = None) -> bytes:
    """Replace ``key`` by a sorted set of ``entries`` (or delete it if there are none): built
    whole, as ZUNIONSTORE and its kin build theirs, or with ``size_hint`` filled in the order
    given, as ZRANGESTORE fills its own (``SortedSet.filled_in_order``)."""
    if not entries:
        s.db.delete(key)
        return ZERO
    if size_hint is None:
        result = SortedSet(entries)
    else:
        result = SortedSet.filled_in_order(entries, size_hint)
    s.state.blocking.overwrote(s.db, key)
    s.db.set(key, result)
    return integer(len(result))


def _positive(text: bytes) -> int:
    """getPositiveLongFromObjectOrReply."""
    value = parse_int(text)
    if value is None or value < 0:
        raise KvError(errors.MUST_BE_POSITIVE)
    return value


# -- adding and removing -----------------------------------------------------------------------


def _zadd(s: Client, argv: list[bytes], incr: bool) -> bytes:
    """zaddGenericCommand: ZADD, and ZINCRBY as ZADD INCR."""
    nx = xx = gt = lt = ch = False
    i = 2
    while i < len(argv):
        option = argv[i].lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option == b"gt":
            gt = True
        elif option == b"lt":
            lt = True
        elif option == b"ch":
            ch = True
        elif option == b"incr":
            incr = True
        else:
            break
        i += 1
    pairs = len(argv) - i
    if pairs == 0 or pairs % 2:
        raise KvError(errors.SYNTAX)
    if xx and nx:
        raise KvError(errors.XX_AND_NX)
    if (gt and nx) or (lt and nx) or (gt and lt):
        raise KvError(errors.GT_LT_NX)
    if incr and pairs > 2:
        raise KvError(errors.INCR_PAIRS)
    scores = [_score(argv[j]) for j in range(i, len(argv), 2)]
    key = argv[1]
    zset = write(s, key, SortedSet)
    added = updated = processed = 0
    score = 0.0
    if zset is None and not xx:
        zset = create(s, key, SortedSet)
    if zset is not None:
        for n, score in enumerate(scores):
            member = argv[i + 1 + 2 * n]
            current = zset.scores.get(member)
            if current is None:
                if xx:
                    continue
                zset.add(member, score)
                added += 1
            else:
                if nx:
                    continue
                if incr:
                    score += current
                    if score != score:
                        raise KvError(errors.NAN_RESULT)
                if (lt and score >= current) or (gt and score <= current):
                    continue
                if score != current:
                    zset.add(member, score)
                    updated += 1
            processed += 1
    if incr:
        return reply_score(score) if processed else NIL
    return integer(added + updated if ch else added)


def _score(text: bytes) -> float:
    score = parse_score(text)
    if score is None:
        raise KvError(errors.NOT_A_FLOAT)
    return score


@command(
    "zadd",
    -4,
    "write denyoom fast",
    "sorted_set",
    "Adds one or more members to a sorted set, or updates their scores. Creates the key if "
    "it doesn't exist.",
    since="1.2.0",
)
def zadd(s: Client, argv: list[bytes]) -> bytes:
    return _zadd(s, argv, incr=False)


@command(
    "zincrby",
    4,
    "write denyoom fast",
    "sorted_set",
    "Increments the score of a member in a sorted set.",
    since="1.2.0",
)
def zincrby(s: Client, argv: list[bytes]) -> bytes:
    return _zadd(s, argv, incr=True)


@command(
    "zrem",
    -3,
    "write fast",
    "sorted_set",
    "Removes one or more members from a sorted set. Deletes the sorted set if all members "
    "were removed.",
    since="1.2.0",
)
def zrem(s: Client, argv: list[bytes]) -> bytes:
    zset = write(s, argv[1], SortedSet)
    if zset is None:
        return ZERO
    removed = 0
    for member in argv[2:]:
        if zset.remove(member):
            removed += 1
            if not zset:
                break
    s.db.delete_if_empty(argv[1], zset)
    return integer(removed)


def _zremrange(s: Client, argv: list[bytes], kind: str) -> bytes:
    """zremrangeGenericCommand: parse the range, then look the key up."""
    bounds = _parse_range(argv[2], argv[3], kind)
    zset = write(s, argv[1], SortedSet)
    if zset is None:
        return ZERO
    positions = _positions(zset, kind, bounds, reverse=False)
    removed = zset.delete_positions(positions.start, positions.stop)
    s.db.delete_if_empty(argv[1], zset)
    return integer(removed)


@command(
    "zremrangebyrank",
    4,
    "write",
    "sorted_set",
    "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all "
    "members were removed.",
    since="2.0.0",
)
def zremrangebyrank(s: Client, argv: list[bytes]) -> bytes:
    return _zremrange(s, argv, RANK)


@command(
    "zremrangebyscore",
    4,
    "write",
    "sorted_set",
    "Removes members in a sorted set within a range of scores. Deletes the sorted set if all "
    "members were removed.",
    since="1.2.0",
)
def zremrangebyscore(s: Client, argv: list[bytes]) -> bytes:
    return _zremrange(s, argv, SCORE)


@command(
    "zremrangebylex",
    4,
    "write",
    "sorted_set",
    "Removes members in a sorted set within a lexicographical range. Deletes the sorted set "
    "if all members were removed.",
    since="2.8.9",
)
def zremrangebylex(s: Client, argv: list[bytes]) -> bytes:
    return _zremrange(s, argv, LEX)


# -- single members ----------------------------------------------------------------------------


@command(
    "zcard", 2, "readonly fast", "sorted_set", "Returns the number of members in a sorted set."
)
def zcard(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(read(s, argv[1], SortedSet) or ()))


@command(
    "zscore",
    3,
    "readonly fast",
    "sorted_set",
    "Returns the score of a member in a sorted set.",
    since="1.2.0",
)
def zscore(s: Client, argv: list[bytes]) -> bytes:
    zset = read(s, argv[1], SortedSet)
    score = None if zset is None else zset.scores.get(argv[2])
    return NIL if score is None else reply_score(score)


@command(
    "zmscore",
    -3,
    "readonly fast",
    "sorted_set",
    "Returns the score of one or more members in a sorted set.",
    since="6.2.0",
)
def zmscore(s: Client, argv: list[bytes]) -> bytes:
    zset = read(s, argv[1], SortedSet)
    scores = {} if zset is None else zset.scores
    parts = [array_header(len(argv) - 2)]
    for member in argv[2:]:
        score = scores.get(member)
        parts.append(NIL if score is None else reply_score(score))
    return b"".join(parts)


def _zrank(s: Client, argv: list[bytes], reverse: bool) -> bytes:
    zset = read(s, argv[1], SortedSet)
    rank = None if zset is None else zset.rank(argv[2])
    if rank is None:
        return NIL
    assert zset is not None
    return integer(len(zset) - 1 - rank if reverse else rank)


@command(
    "zrank",
    3,
    "readonly fast",
    "sorted_set",
    "Returns the index of a member in a sorted set ordered by ascending scores.",
    since="2.0.0",
)
def zrank(s: Client, argv: list[bytes]) -> bytes:
    return _zrank(s, argv, reverse=False)


@command(
    "zrevrank",
    3,
    "readonly fast",
    "sorted_set",
    "Returns the index of a member in a sorted set ordered by descending scores.",
    since="2.0.0",
)
def zrevrank(s: Client, argv: list[bytes]) -> bytes:
    return _zrank(s, argv, reverse=True)


# -- ranges ------------------------------------------------------------------------------------


def _parse_range(low: bytes, high: bytes, kind: str) -> Any:
    if kind == RANK:
        return int_arg(low), int_arg(high)
    if kind == SCORE:
        bounds = parse_score_range(low, high)
        if bounds is None:
            raise KvError(errors.BAD_SCORE_RANGE)
        return bounds
    lex = parse_lex_range(low, high)
    if lex is None:
        raise KvError(errors.BAD_LEX_RANGE)
    return lex


def _positions(zset: SortedSet, kind: str, bounds: Any, reverse: bool) -> range:
    """The ranks (in ascending order) a parsed range covers; a rank range given for a
    reversed walk counts from the top and is turned into ascending ranks here."""
    size = len(zset)
    if kind == RANK:
        start, stop = bounds
        ranks = index_range(start, stop, size)
        return range(size - ranks.stop, size - ranks.start) if reverse and ranks else ranks
    if kind == SCORE:
        return zset.score_positions(*bounds)
    return zset.lex_positions(*bounds)


def _zrange(
    s: Client,
    argv: list[bytes],
    first: int,
    kind: str | None = None,
    reverse: bool | None = None,
    store: bool = False,
) -> bytes:
    """zrangeGenericCommand: ``argv[first]`` is the source key, then min, max and options;
    ``kind`` and ``reverse`` are fixed by the legacy commands, chosen by options otherwise."""
    withscores = False
    offset, limit = 0, -1
    i = first + 3
    while i < len(argv):
        option = argv[i].lower()
        left = len(argv) - i - 1
        if option == b"withscores" and not store:
            withscores = True
        elif option == b"limit" and left >= 2:
            offset = int_arg(argv[i + 1])
            limit = int_arg(argv[i + 2])
            i += 2
        elif option == b"rev" and reverse is None:
            reverse = True
        elif option == b"bylex" and kind is None:
            kind = LEX
        elif option == b"byscore" and kind is None:
            kind = SCORE
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    reverse = bool(reverse)
    kind = kind or RANK
    if limit != -1 and kind == RANK:
        raise KvError(errors.LIMIT_WITHOUT_BY)
    if withscores and kind == LEX:
        raise KvError(errors.WITHSCORES_BYLEX)
    low, high = argv[first + 1], argv[first + 2]
    if reverse and kind != RANK:
        low, high = high, low  # given as max, min
    bounds = _parse_range(low, high, kind)
    zset = read(s, argv[first], SortedSet)
    if zset is None:
        return _store(s, argv[1], []) if store else EMPTY_ARRAY
    positions = _positions(zset, kind, bounds, reverse)
    start, stop = positions.start, positions.stop
    if kind != RANK:
        if offset < 0:
            start = stop
        else:
            count = stop - start if limit < 0 else limit
            if reverse:
                stop = max(start, stop - offset)
                start = max(start, stop - count)
            else:
                start = min(stop, start + offset)
                stop = min(stop, start + count)
    entries = zset.entries(start, stop)
    if reverse:
        entries.reverse()
    if store:
        # Redis sizes the destination by the range's length when it is a range of ranks,
        # and as empty for a range of scores or of members, whose length it does not know.
        return _store(s, argv[1], entries, len(entries) if kind == RANK else 0)
    return _entries_reply(entries, withscores)


@command(
    "zrange",
    -4,
    "readonly",
    "sorted_set",
    "Returns members in a sorted set within a range of indexes.",
    since="1.2.0",
)
def zrange(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 1)


@command(
    "zrangestore",
    -5,
    "write denyoom",
    "sorted_set",
    "Stores a range of members from sorted set in a key.",
    since="6.2.0",
    keys=(1, 2, 1),
)
def zrangestore(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 2, store=True)


@command(
    "zrevrange",
    -4,
    "readonly",
    "sorted_set",
    "Returns members in a sorted set within a range of indexes in reverse order.",
    since="1.2.0",
)
def zrevrange(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 1, RANK, reverse=True)


@command(
    "zrangebyscore",
    -4,
    "readonly",
    "sorted_set",
    "Returns members in a sorted set within a range of scores.",
    since="1.0.5",
)
def zrangebyscore(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 1, SCORE, reverse=False)


@command(
    "zrevrangebyscore",
    -4,
    "readonly",
    "sorted_set",
    "Returns members in a sorted set within a range of scores in reverse order.",
    since="2.2.0",
)
def zrevrangebyscore(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 1, SCORE, reverse=True)


@command(
    "zrangebylex",
    -4,
    "readonly",
    "sorted_set",
    "Returns members in a sorted set within a lexicographical range.",
    since="2.8.9",
)
def zrangebylex(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 1, LEX, reverse=False)


@command(
    "zrevrangebylex",
    -4,
    "readonly",
    "sorted_set",
    "Returns members in a sorted set within a lexicographical range in reverse order.",
    since="2.8.9",
)
def zrevrangebylex(s: Client, argv: list[bytes]) -> bytes:
    return _zrange(s, argv, 1, LEX, reverse=True)


def _zcount(s: Client, argv: list[bytes], kind: str) -> bytes:
    bounds = _parse_range(argv[2], argv[3], kind)
    zset = read(s, argv[1], SortedSet)
    return ZERO if zset is None else integer(len(_positions(zset, kind, bounds, False)))


@command(
    "zcount",
    4,
    "readonly fast",
    "sorted_set",
    "Returns the count of members in a sorted set that have scores within a range.",
    since="2.0.0",
)
def zcount(s: Client, argv: list[bytes]) -> bytes:
    return _zcount(s, argv, SCORE)


@command(
    "zlexcount",
    4,
    "readonly fast",
    "sorted_set",
    "Returns the number of members in a sorted set within a lexicographical range.",
    since="2.8.9",
)
def zlexcount(s: Client, argv: list[bytes]) -> bytes:
    return _zcount(s, argv, LEX)


# -- popping -----------------------------------------------------------------------------------


def _zpop(s: Client, keys: list[bytes], highest: bool, count: int, emit_key: bool) -> bytes:
    """genericZpopCommand: pop from the first of ``keys`` that exists (count -1: one member
    of ZPOPMIN/ZPOPMAX without a count)."""
    zset = None
    key = b""
    for key in keys:
        zset = write(s, key, SortedSet)
        if zset is not None:
            break
    if zset is None:
        return NIL_ARRAY if emit_key else EMPTY_ARRAY
    if count == 0:
        return EMPTY_ARRAY
    taken = zset.pop(1 if count == -1 else count, highest)
    s.db.delete_if_empty(key, zset)
    if not emit_key:
        return _entries_reply(taken, withscores=True)
    parts = [b"*2\r\n", bulk(key), array_header(len(taken))]
    for score, member in taken:
        parts.append(b"*2\r\n" + bulk(member) + reply_score(score))
    return b"".join(parts)


def _zpop_command(s: Client, argv: list[bytes], highest: bool) -> bytes:
    if len(argv) > 3:
        raise KvError(errors.SYNTAX)
    count = _positive(argv[2]) if len(argv) == 3 else -1
    return _zpop(s, [argv[1]], highest, count, emit_key=False)


@command(
    "zpopmin",
    -2,
    "write fast",
    "sorted_set",
    "Returns the lowest-scoring members from a sorted set after removing them. Deletes the "
    "sorted set if the last member was popped.",
    since="5.0.0",
)
def zpopmin(s: Client, argv: list[bytes]) -> bytes:
    return _zpop_command(s, argv, highest=False)


@command(
    "zpopmax",
    -2,
    "write fast",
    "sorted_set",
    "Returns the highest-scoring members from a sorted set after removing them. Deletes the "
    "sorted set if the last member was popped.",
    since="5.0.0",
)
def zpopmax(s: Client, argv: list[bytes]) -> bytes:
    return _zpop_command(s, argv, highest=True)


@command(
    "zmpop",
    -4,
    "write",
    "sorted_set",
    "Returns the highest- or lowest-scoring members from one or more sorted sets after "
    "removing them. Deletes the sorted set if the last member was popped.",
    since="7.0.0",
    keys=(0, 0, 0),
)
def zmpop(s: Client, argv: list[bytes]) -> bytes:
    keys, lowest, count = mpop_args(argv, 1, (b"MIN", b"MAX"))
    return _zpop(s, keys, not lowest, count, emit_key=True)


# -- blocking pops (blocking.py waits; a served pop is journaled as the ZPOPMIN it did) ---------


def _pop_with_key(s: Client, key: bytes, zset: SortedSet, highest: bool) -> bytes:
    """BZPOPMIN's reply: ``[key, member, score]``."""
    ((score, member),) = zset.pop(1, highest)
    s.db.delete_if_empty(key, zset)
    return b"*3\r\n" + bulk(key) + bulk(member) + reply_score(score)


def _blocking_zpop(s: Client, argv: list[bytes], highest: bool) -> bytes:
    """BZPOPMIN and BZPOPMAX: from the first non-empty sorted set, else wait."""
    name = b"ZPOPMAX" if highest else b"ZPOPMIN"
    return pop_or_wait(
        s, argv, SortedSet, name, lambda key, zset: _pop_with_key(s, key, zset, highest)
    )


@command(
    "bzpopmin",
    -3,
    "write noscript blocking fast",
    "sorted_set",
    "Removes and returns the member with the lowest score from one or more sorted sets. Blocks "
    "until a member is available otherwise. Deletes the sorted set if the last element was "
    "popped.",
    since="5.0.0",
    keys=(1, -2, 1),
)
def bzpopmin(s: Client, argv: list[bytes]) -> bytes:
    return _blocking_zpop(s, argv, highest=False)


@command(
    "bzpopmax",
    -3,
    "write noscript blocking fast",
    "sorted_set",
    "Removes and returns the member with the highest score from one or more sorted sets. "
    "Blocks until a member is available otherwise. Deletes the sorted set if the last element "
    "was popped.",
    since="5.0.0",
    keys=(1, -2, 1),
)
def bzpopmax(s: Client, argv: list[bytes]) -> bytes:
    return _blocking_zpop(s, argv, highest=True)


@command(
    "bzmpop",
    -5,
    "write blocking",
    "sorted_set",
    "Removes and returns a member by score from one or more sorted sets. Blocks until a member "
    "is available otherwise. Deletes the sorted set if the last element was popped.",
    since="7.0.0",
    keys=(0, 0, 0),
)
def bzmpop(s: Client, argv: list[bytes]) -> bytes:
    timeout = timeout_arg(argv[1])
    keys, lowest, count = mpop_args(argv, 2, (b"MIN", b"MAX"))
    for key in keys:
        if write(s, key, SortedSet):
            return _zpop(s, [key], not lowest, count, emit_key=True)
    name = b"ZPOPMIN" if lowest else b"ZPOPMAX"

    def serve(key: bytes) -> bytes | None:
        zset = ready_nonempty(s, key, SortedSet)
        if zset is None:
            return None
        logged = [name, key, b"%d" % min(count, len(zset))]
        return run_served(s, logged, lambda: _zpop(s, [key], not lowest, count, emit_key=True))

    s.block(keys, timeout, serve, NIL_ARRAY)
    return NIL_ARRAY


# -- random members and scanning ---------------------------------------------------------------


@command(
    "zrandmember",
    -2,
    "readonly",
    "sorted_set",
    "Returns one or more random members from a sorted set.",
    since="6.2.0",
)
def zrandmember(s: Client, argv: list[bytes]) -> bytes:
    if len(argv) == 2:
        zset = read(s, argv[1], SortedSet)
        if zset is None:
            return NIL
        return bulk(zset.order[random.randrange(len(zset))][1])
    count = parse_int(argv[2])
    if count is None:
        raise KvError(errors.NOT_AN_INTEGER)
    if count < -LONG_MAX:
        raise KvError(errors.out_of_range(-LONG_MAX, LONG_MAX))
    withscores = False
    if len(argv) > 4 or (len(argv) == 4 and argv[3].lower() != b"withscores"):
        raise KvError(errors.SYNTAX)
    if len(argv) == 4:
        withscores = True
        if count < -LONG_MAX // 2 or count > LONG_MAX // 2:
            raise KvError(errors.OUT_OF_RANGE_PLAIN)
    zset = read(s, argv[1], SortedSet)
    if zset is None or count == 0:
        return EMPTY_ARRAY
    size = len(zset)
    order = zset.order
    if count < 0:  # repeats allowed
        picks = [order[random.randrange(size)] for _ in range(-count)]
    elif count >= size:
        picks = list(order)
    else:
        picks = [order[i] for i in random.sample(range(size), count)]
    return _entries_reply(picks, withscores)


@command(
    "zscan",
    -3,
    "readonly",
    "sorted_set",
    "Iterates over members and scores of a sorted set.",
    since="2.8.0",
)
def zscan(s: Client, argv: list[bytes]) -> bytes:
    """A set in its small encoding comes whole in one step, as Redis answers a listpack; a
    larger one is walked in score order (``SortedSet.scan``)."""
    cursor = parse_cursor(argv[2])
    if cursor is None:
        raise KvError(errors.INVALID_CURSOR)
    zset = read(s, argv[1], SortedSet)
    if zset is None:
        return EMPTY_SCAN
    count = 10
    pattern: bytes | None = None
    i = 3
    while i < len(argv):
        option = argv[i].upper()
        if i + 1 >= len(argv) or option not in (b"COUNT", b"MATCH"):
            raise KvError(errors.SYNTAX)
        if option == b"COUNT":
            count = int_arg(argv[i + 1])
            if count < 1:
                raise KvError(errors.SYNTAX)
        else:
            pattern = None if argv[i + 1] == b"*" else argv[i + 1]
        i += 2
    if not zset.big:
        entries, cursor = list(zset.order), 0
    else:
        cursor, entries = zset.scan(cursor, count)
    if pattern is not None:
        match = compile_glob(pattern)
        entries = [entry for entry in entries if match(entry[1])]
    flat: list[bytes] = []
    for score, member in entries:
        flat.append(member)
        flat.append(format_score(score))
    return b"*2\r\n" + bulk(b"%d" % cursor) + bulk_array(flat)


# -- union, intersection and difference --------------------------------------------------------


def _sources(s: Client, argv: list[bytes], at: int, name: str) -> tuple[list[Any], int]:
    """The input sets of zunionInterDiffGenericCommand (``argv[at]`` is numkeys), and the
    index of the first option. A plain set counts as a sorted set with every score 1."""
    setnum = int_arg(argv[at])
    if setnum < 1:
        raise KvError(errors.no_input_keys(name))
    if setnum > len(argv) - at - 1:
        raise KvError(errors.SYNTAX)
    sources: list[Any] = []
    for key in argv[at + 1 : at + 1 + setnum]:
        value = s.db.get(key)
        if value is not None and value.__class__ not in (SortedSet, set):
            raise KvError(errors.WRONGTYPE)
        sources.append(value)
    return sources, at + 1 + setnum


def _pairs(source: Any) -> dict[bytes, float]:
    if source is None:
        return {}
    if source.__class__ is set:
        return dict.fromkeys(source, 1.0)
    scores: dict[bytes, float] = source.scores
    return scores


def _aggregate(total: float, value: float, how: bytes) -> float:
    """zunionInterAggregate (a NaN sum, inf plus -inf, counts as 0)."""
    if how == b"sum":
        total += value
        return 0.0 if total != total else total
    if how == b"min":
        return value if value < total else total
    return value if value > total else total


def _setop(s: Client, argv: list[bytes], at: int, op: str, name: str, store: bool) -> bytes:
    """zunionInterDiffGenericCommand: ``op`` is "union", "inter", "diff" or "card"
    (ZINTERCARD); ``argv[at]`` is numkeys; a STORE form writes ``argv[1]``. The inputs are
    type-checked before any option is read, as Redis does."""
    sources, i = _sources(s, argv, at, name)
    weights = [1.0] * len(sources)
    how = b"sum"
    withscores = False
    cardinality_only = op == "card"
    limit = 0
    while i < len(argv):
        option = argv[i].lower()
        left = len(argv) - i
        if op in ("union", "inter") and left >= len(sources) + 1 and option == b"weights":
            for n in range(len(sources)):
                weight = parse_score(argv[i + 1 + n])
                if weight is None:
                    raise KvError(errors.WEIGHT_NOT_A_FLOAT)
                weights[n] = weight
            i += 1 + len(sources)
        elif op in ("union", "inter") and left >= 2 and option == b"aggregate":
            how = argv[i + 1].lower()
            if how not in (b"sum", b"min", b"max"):
                raise KvError(errors.SYNTAX)
            i += 2
        elif not store and not cardinality_only and option == b"withscores":
            withscores = True
            i += 1
        elif cardinality_only and left >= 2 and option == b"limit":
            limit = ranged_int(argv[i + 1], 0, errors.LIMIT_NEGATIVE)
            i += 2
        else:
            raise KvError(errors.SYNTAX)
    # Redis sorts the inputs by size (smallest first) before combining them; the order of the
    # additions decides the last bits of a SUM, so it is kept.
    ordered = sorted(
        zip((_pairs(source) for source in sources), weights, strict=True), key=lambda p: len(p[0])
    )
    result: dict[bytes, float] = {}
    if op == "union":
        for pairs, weight in ordered:
            for member, score in pairs.items():
                value = weight * score
                if value != value:
                    value = 0.0
                total = result.get(member)
                result[member] = value if total is None else _aggregate(total, value, how)
    elif op in ("inter", "card"):
        (first, first_weight), rest = ordered[0], ordered[1:]
        for member, score in first.items():
            total = first_weight * score
            if total != total:
                total = 0.0
            for pairs, weight in rest:
                other = pairs.get(member)
                if other is None:
                    break
                total = _aggregate(total, other * weight, how)
            else:
                result[member] = total
                if limit and len(result) >= limit:
                    break
    else:
        first = _pairs(sources[0])
        others = [_pairs(source) for source in sources[1:]]
        for member, score in first.items():
            if not any(member in pairs for pairs in others):
                result[member] = score
    if cardinality_only:
        return integer(len(result))
    entries = sorted((score, member) for member, score in result.items())
    if store:
        return _store(s, argv[1], entries)
    return _entries_reply(entries, withscores)


@command(
    "zunion",
    -3,
    "readonly",
    "sorted_set",
    "Returns the union of multiple sorted sets.",
    since="6.2.0",
    keys=(0, 0, 0),
)
def zunion(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 1, "union", "zunion", store=False)


@command(
    "zinter",
    -3,
    "readonly",
    "sorted_set",
    "Returns the intersect of multiple sorted sets.",
    since="6.2.0",
    keys=(0, 0, 0),
)
def zinter(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 1, "inter", "zinter", store=False)


@command(
    "zdiff",
    -3,
    "readonly",
    "sorted_set",
    "Returns the difference between multiple sorted sets.",
    since="6.2.0",
    keys=(0, 0, 0),
)
def zdiff(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 1, "diff", "zdiff", store=False)


@command(
    "zunionstore",
    -4,
    "write denyoom",
    "sorted_set",
    "Stores the union of multiple sorted sets in a key.",
    since="2.0.0",
)
def zunionstore(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 2, "union", "zunionstore", store=True)


@command(
    "zinterstore",
    -4,
    "write denyoom",
    "sorted_set",
    "Stores the intersect of multiple sorted sets in a key.",
    since="2.0.0",
)
def zinterstore(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 2, "inter", "zinterstore", store=True)


@command(
    "zdiffstore",
    -4,
    "write denyoom",
    "sorted_set",
    "Stores the difference of multiple sorted sets in a key.",
    since="6.2.0",
)
def zdiffstore(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 2, "diff", "zdiffstore", store=True)


@command(
    "zintercard",
    -3,
    "readonly",
    "sorted_set",
    "Returns the number of members of the intersect of multiple sorted sets.",
    since="7.0.0",
    keys=(0, 0, 0),
)
def zintercard(s: Client, argv: list[bytes]) -> bytes:
    return _setop(s, argv, 1, "card", "zintercard", store=False)
