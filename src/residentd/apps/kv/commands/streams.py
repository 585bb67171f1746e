"""Stream commands (Redis 7.0's ``t_stream.c``): XADD, XRANGE, XREAD, consumer groups, XINFO.

The value is ``Stream`` (stream.py). Argument parsing follows Redis's order, so the same
malformed command gets the same error: IDs are parsed as ``streamGenericParseIDOrReply``
does (``ms`` or ``ms-seq``, unsigned 64-bit; ``-`` and ``+`` where a range allows them,
``(`` for an exclusive bound, ``ms-*`` in XADD).

What a command changed beyond its own words is journaled as Redis propagates it: XREADGROUP,
XCLAIM and XAUTOCLAIM are logged as one ``XCLAIM ... FORCE JUSTID LASTID`` per entry they
delivered or claimed (and ``XGROUP SETID ... ENTRIESREAD`` for a NOACK read), never as
themselves; stream.py's ``effects`` holds those commands for persistence/aof.py's rules
to pick up right after the handler returns.

With BLOCK, a read that finds nothing waits (blocking.py) until an XADD gives one of its
streams an entry past the ID it read from (for XREADGROUP ``>``, past the group's last
delivered ID), and is then answered with that stream alone, as Redis does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.journaling import journal_served
from residentd.apps.kv.store import now_ms
from residentd.apps.kv.stream import (
    MAX_ID,
    MIN_ID,
    U64,
    Consumer,
    Group,
    Pending,
    Stream,
    StreamID,
    effects,
    format_id,
    next_id,
    previous_id,
)
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    NIL,
    NIL_ARRAY,
    OK,
    ZERO,
    array,
    array_header,
    bulk,
    error,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

INVALID_ID = b"-ERR Invalid stream ID specified as stream command argument\r\n"
ID_TOO_SMALL = (
    b"-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"
)
ID_ZERO = b"-ERR The ID specified in XADD must be greater than 0-0\r\n"
EXHAUSTED = b"-ERR The stream has exhausted the last possible ID, unable to add more items\r\n"
MAXLEN_AND_MINID = (
    b"-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n"
)
MAXLEN_NEGATIVE = b"-ERR The MAXLEN argument must be >= 0.\r\n"
LIMIT_NEGATIVE = b"-ERR The LIMIT argument must be >= 0.\r\n"
LIMIT_WITHOUT_STRATEGY = (
    b"-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n"
)
XTRIM_WITHOUT_STRATEGY = b"-ERR syntax error, XTRIM must be called with a trimming strategy\r\n"
LIMIT_WITHOUT_APPROX = b"-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n"
BAD_START = b"-ERR invalid start ID for the interval\r\n"
BAD_END = b"-ERR invalid end ID for the interval\r\n"
NO_SUCH_KEY = b"-ERR no such key\r\n"
NOGROUP_WHILE_BLOCKED = (
    b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
)
DOLLAR_IN_XREADGROUP = (
    b"-ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the "
    b"history of this consumer by specifying a proper ID, or use the > ID to get new "
    b"messages. The $ ID would just return an empty result set.\r\n"
)
GT_IN_XREAD = (
    b"-ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> "
    b"<consumer> option.\r\n"
)
GROUP_IN_XREAD = (
    b"-ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.\r\n"
)
NOACK_IN_XREAD = (
    b"-ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.\r\n"
)
UNBALANCED = (
    b"-ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
    b"specified.\r\n"
)
MISSING_GROUP = b"-ERR Missing GROUP option for XREADGROUP\r\n"
TIMEOUT_NOT_INTEGER = b"-ERR timeout is not an integer or out of range\r\n"
TIMEOUT_NEGATIVE = b"-ERR timeout is negative\r\n"
ENTRIES_ADDED_NEGATIVE = b"-ERR entries_added must be positive\r\n"
SETID_BELOW_MAXDELETED = (
    b"-ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id\r\n"
)
SETID_BELOW_TOP = b"-ERR The ID specified in XSETID is smaller than the target stream top item\r\n"
SETID_BELOW_LENGTH = (
    b"-ERR The entries_added specified in XSETID is smaller than the target stream length\r\n"
)
NODE_LIMIT_DEFAULT = 10_000  # 100 * stream-node-max-entries, as an approximate trim's LIMIT


def _u64(text: bytes) -> int | None:
    """string2ull: a strict integer, or what strtoull takes past the signed range."""
    value = parse_int(text)
    if value is not None:
        return value if value >= 0 else None
    stripped = text.lstrip(b" \t\n\v\f\r")
    sign = stripped[:1]
    digits = stripped[1:] if sign in (b"+", b"-") else stripped
    if not digits.isdigit() or not digits.isascii():
        return None
    number = int(digits)
    if number > U64:
        return None
    return (-number) & U64 if sign == b"-" else number


def parse_id(
    text: bytes, missing_seq: int = 0, strict: bool = False, auto_seq: bool = False
) -> tuple[StreamID, bool]:
    """streamGenericParseIDOrReply: the ID and whether its sequence was given (``ms-*``
    in XADD, ``auto_seq``, leaves it to be generated)."""
    text = text.split(b"\0", 1)[0]
    if len(text) > 127 or (strict and text in (b"-", b"+")):
        raise KvError(INVALID_ID)
    if text == b"-":
        return MIN_ID, True
    if text == b"+":
        return MAX_ID, True
    ms_text, dash, seq_text = text.partition(b"-")
    ms = _u64(ms_text)
    if ms is None:
        raise KvError(INVALID_ID)
    if not dash:
        return (ms, missing_seq), True
    if auto_seq and seq_text == b"*":
        return (ms, 0), False
    seq = _u64(seq_text)
    if seq is None:
        raise KvError(INVALID_ID)
    return (ms, seq), True


def strict_id(text: bytes) -> StreamID:
    return parse_id(text, strict=True)[0]


def interval_start(text: bytes) -> StreamID:
    """A range's start, ``(`` making it exclusive."""
    if len(text) > 1 and text[:1] == b"(":
        found = next_id(parse_id(text[1:], strict=True)[0])
        if found is None:
            raise KvError(BAD_START)
        return found
    return parse_id(text)[0]


def interval_end(text: bytes) -> StreamID:
    if len(text) > 1 and text[:1] == b"(":
        found = previous_id(parse_id(text[1:], U64, strict=True)[0])
        if found is None:
            raise KvError(BAD_END)
        return found
    return parse_id(text, U64)[0]


# -- replies ------------------------------------------------------------------------------------


def id_reply(sid: StreamID) -> bytes:
    return bulk(format_id(sid))


def entry_reply(sid: StreamID, flat: list[bytes]) -> bytes:
    parts = [b"*2\r\n", id_reply(sid), array_header(len(flat))]
    parts.extend(bulk(x) for x in flat)
    return b"".join(parts)


def entries_reply(entries: list[tuple[StreamID, list[bytes]]]) -> bytes:
    return array_header(len(entries)) + b"".join(entry_reply(s, f) for s, f in entries)


# -- lookups --------------------------------------------------------------------------------------


def claim_effect(key: bytes, group_name: bytes, group: Group, sid: bytes, nack: Pending) -> None:
    """streamPropagateXCLAIM: an idempotent XCLAIM that recreates ``nack``."""
    assert nack.consumer is not None
    effects.append(
        [
            b"XCLAIM",
            key,
            group_name,
            nack.consumer.name,
            b"0",
            sid,
            b"TIME",
            b"%d" % nack.time,
            b"RETRYCOUNT",
            b"%d" % nack.count,
            b"FORCE",
            b"JUSTID",
            b"LASTID",
            format_id(group.last_id),
        ]
    )


def group_id_effect(key: bytes, group_name: bytes, group: Group) -> None:
    """streamPropagateGroupID."""
    read_count = -1 if group.entries_read is None else group.entries_read
    effects.append(
        [
            b"XGROUP",
            b"SETID",
            key,
            group_name,
            format_id(group.last_id),
            b"ENTRIESREAD",
            b"%d" % read_count,
        ]
    )


# -- XADD, XTRIM ----------------------------------------------------------------------------------


class TrimArgs:
    """What streamParseAddOrTrimArgsOrReply found."""

    __slots__ = (
        "approx", "id", "id_given", "limit", "maxlen", "minid", "no_mkstream", "seq_given",
        "strategy_at",
    )  # fmt: skip

    def __init__(self) -> None:
        self.maxlen: int | None = None
        self.minid: StreamID | None = None
        self.approx = False
        self.limit = 0
        self.no_mkstream = False
        self.id: StreamID = MIN_ID
        self.id_given = False
        self.seq_given = True
        self.strategy_at = 0  # index of the MAXLEN/MINID threshold in argv

    @property
    def trims(self) -> bool:
        return self.maxlen is not None or self.minid is not None


def _parse_trim(argv: list[bytes], i: int, xadd: bool) -> tuple[TrimArgs, int]:
    args = TrimArgs()
    limit_given = False
    count = len(argv)
    while i < count:
        more = count - 1 - i
        option = argv[i].lower()
        if xadd and argv[i] == b"*":
            break
        if option in (b"maxlen", b"minid") and more:
            if args.trims:
                raise KvError(MAXLEN_AND_MINID)
            args.approx = False
            following = argv[i + 1]
            if more >= 2 and following == b"~":
                args.approx = True
                i += 1
            elif more >= 2 and following == b"=":
                i += 1
            if option == b"maxlen":
                maxlen = int_arg(argv[i + 1])
                if maxlen < 0:
                    raise KvError(MAXLEN_NEGATIVE)
                args.maxlen = maxlen
            else:
                args.minid = strict_id(argv[i + 1])
            i += 1
            args.strategy_at = i
        elif option == b"limit" and more:
            args.limit = int_arg(argv[i + 1])
            if args.limit < 0:
                raise KvError(LIMIT_NEGATIVE)
            limit_given = True
            i += 1
        elif xadd and option == b"nomkstream":
            args.no_mkstream = True
        elif xadd:
            args.id, args.seq_given = parse_id(argv[i], strict=True, auto_seq=True)
            args.id_given = True
            break
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    if args.limit and not args.trims:
        raise KvError(LIMIT_WITHOUT_STRATEGY)
    if not xadd and not args.trims:
        raise KvError(XTRIM_WITHOUT_STRATEGY)
    if limit_given:
        if not args.approx:
            raise KvError(LIMIT_WITHOUT_APPROX)
    else:
        args.limit = NODE_LIMIT_DEFAULT if args.approx else 0
    return args, i


def _trim(stream: Stream, args: TrimArgs, argv: list[bytes]) -> tuple[int, list[bytes]]:
    """Trim as parsed: how many entries went, and the command to journal. An approximate
    trim is journaled as the exact one it amounted to (streamRewriteApproxSpecifier and
    streamRewriteTrimArgument), without its LIMIT."""
    deleted = stream.trim(args.maxlen, args.minid, args.approx, args.limit)
    if not args.approx:
        return deleted, argv
    logged = list(argv)
    at = args.strategy_at
    logged[at - 1] = b"="
    if args.maxlen is not None:
        logged[at] = b"%d" % stream.length
    else:
        logged[at] = format_id(stream.first_id)
    return deleted, _without_limit(logged)


def _without_limit(argv: list[bytes]) -> list[bytes]:
    """``argv`` without its ``LIMIT n`` (once rewritten as an exact trim, a LIMIT would be
    refused on replay; Redis ignores it when loading)."""
    out: list[bytes] = []
    i = 0
    while i < len(argv):
        if argv[i].lower() == b"limit" and i + 1 < len(argv) and i > 1:
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


@command("xadd", -5, "write denyoom fast", "stream", "Appends a new message to a stream.",
         since="5.0.0")  # fmt: skip
def xadd(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    args, i = _parse_trim(argv, 2, xadd=True)
    field_pos = i + 1
    pairs = len(argv) - field_pos
    if pairs < 2 or pairs % 2:
        raise KvError(errors.wrong_arity("xadd"))
    if args.id_given and args.seq_given and args.id == MIN_ID:
        raise KvError(ID_ZERO)
    key = argv[1]
    stream = write(s, key, Stream)
    if stream is None:
        if args.no_mkstream:
            return NIL
        stream = s.db.data[key] = Stream()
    last = stream.last_id
    if last == MAX_ID:
        raise KvError(EXHAUSTED)
    if not args.id_given:
        ms = now_ms()
        sid = (ms, 0) if ms > last[0] else next_id(last)
        assert sid is not None
    elif args.seq_given:
        sid = args.id
    else:
        if args.id[0] == last[0]:
            if last[1] == U64:
                raise KvError(ID_TOO_SMALL)
            sid = (last[0], last[1] + 1)
        else:
            sid = args.id
    if sid <= last:
        raise KvError(ID_TOO_SMALL)
    stream.append(sid, argv[field_pos:])
    logged = list(argv)
    if not args.id_given or not args.seq_given:
        logged[i] = format_id(sid)
    if args.trims:
        logged = _trim(stream, args, logged)[1]
    effects.append(logged)
    return id_reply(sid)


@command("xtrim", -4, "write", "stream", "Deletes messages from the beginning of a stream.",
         since="5.0.0")  # fmt: skip
def xtrim(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    args, _ = _parse_trim(argv, 2, xadd=False)
    stream = write(s, argv[1], Stream)
    if stream is None:
        return ZERO
    deleted, logged = _trim(stream, args, argv)
    if deleted:
        effects.append(logged)
    return integer(deleted)


@command("xlen", 2, "readonly fast", "stream", "Return the number of messages in a stream.",
         since="5.0.0")  # fmt: skip
def xlen(s: Client, argv: list[bytes]) -> bytes:
    stream = read(s, argv[1], Stream)
    return ZERO if stream is None else integer(stream.length)


@command("xdel", -3, "write fast", "stream",
         "Returns the number of messages after removing them from a stream.",
         since="5.0.0")  # fmt: skip
def xdel(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    stream = write(s, argv[1], Stream)
    if stream is None:
        return ZERO
    ids = [strict_id(arg) for arg in argv[2:]]
    deleted = 0
    first = False
    for sid in ids:
        if stream.delete(sid):
            if sid == stream.first_id:
                first = True
            if sid > stream.max_deleted_id:
                stream.max_deleted_id = sid
            deleted += 1
    if deleted:
        if not stream.length:
            stream.first_id = MIN_ID
        elif first:
            stream.first_id = stream.first_valid_id()
        effects.append(argv)
    return integer(deleted)


# -- XRANGE, XREVRANGE ----------------------------------------------------------------------------


def _range(s: Client, argv: list[bytes], reverse: bool) -> bytes:
    start_text, end_text = (argv[3], argv[2]) if reverse else (argv[2], argv[3])
    start = interval_start(start_text)
    end = interval_end(end_text)
    count = -1
    i = 4
    while i < len(argv):
        if argv[i].lower() == b"count" and i + 1 < len(argv):
            count = max(int_arg(argv[i + 1]), 0)
            i += 2
        else:
            raise KvError(errors.SYNTAX)
    stream = read(s, argv[1], Stream)
    if stream is None:
        return EMPTY_ARRAY
    if count == 0:
        return NIL_ARRAY
    return entries_reply(stream.range(start, end, max(count, 0), reverse))


@command("xrange", -4, "readonly", "stream",
         "Returns the messages from a stream within a range of IDs.", since="5.0.0")  # fmt: skip
def xrange(s: Client, argv: list[bytes]) -> bytes:
    return _range(s, argv, False)


@command("xrevrange", -4, "readonly", "stream",
         "Returns the messages from a stream within a range of IDs in reverse order.",
         since="5.0.0")  # fmt: skip
def xrevrange(s: Client, argv: list[bytes]) -> bytes:
    return _range(s, argv, True)


# -- XREAD, XREADGROUP ----------------------------------------------------------------------------


def _deliver(
    key: bytes,
    stream: Stream,
    after: StreamID,
    count: int,
    group_name: bytes,
    group: Group,
    consumer: Consumer,
    noack: bool,
    now: int,
) -> list[tuple[StreamID, list[bytes]]]:
    """New entries to a consumer (``>``): each moves the group on and, unless NOACK, enters
    the PELs (streamReplyWithRange with a group)."""
    start = next_id(after)
    if start is None:
        return []
    served = stream.range(start, MAX_ID, count)
    moved = False
    for sid, _ in served:
        if sid > group.last_id:
            stream.delivered(group, sid)
            moved = noack or moved
        if noack:
            continue
        nack = group.pending.get(sid)
        if nack is None:
            nack = group.pending[sid] = Pending(consumer, now)
            consumer.pending[sid] = nack
        else:
            assert nack.consumer is not None
            del nack.consumer.pending[sid]
            nack.consumer = consumer
            nack.time = now
            nack.count = 1
            consumer.pending[sid] = nack
        claim_effect(key, group_name, group, format_id(sid), nack)
    if moved:
        group_id_effect(key, group_name, group)
    return served


def _history(stream: Stream, consumer: Consumer, after: StreamID, count: int, now: int) -> bytes:
    """A consumer's own pending entries after ``after`` (streamReplyWithRangeFromConsumerPEL);
    one no longer in the stream is its ID and a nil."""
    start = next_id(after)
    parts: list[bytes] = []
    if start is not None:
        for sid in consumer.pending.irange(start):
            if count and len(parts) >= count:
                break
            flat = stream.entries.get(sid)
            if flat is None:
                parts.append(b"*2\r\n" + id_reply(sid) + NIL_ARRAY)
            else:
                nack = consumer.pending[sid]
                nack.time = now
                nack.count += 1
                parts.append(entry_reply(sid, flat))
    return array(parts)


def _xread(s: Client, argv: list[bytes], grouped: bool) -> bytes:
    effects.clear()
    block: int | None = None
    count = 0
    streams_at = 0
    group_name = consumer_name = None
    noack = False
    i = 1
    size = len(argv)
    while i < size:
        more = size - i - 1
        option = argv[i].lower()
        if option == b"block" and more:
            i += 1
            timeout = parse_int(argv[i])
            if timeout is None:
                raise KvError(TIMEOUT_NOT_INTEGER)
            if timeout < 0:
                raise KvError(TIMEOUT_NEGATIVE)
            block = timeout
        elif option == b"count" and more:
            i += 1
            count = max(int_arg(argv[i]), 0)
        elif option == b"streams" and more:
            streams_at = i + 1
            if (size - streams_at) % 2:
                raise KvError(UNBALANCED)
            break
        elif option == b"group" and more >= 2:
            if not grouped:
                raise KvError(GROUP_IN_XREAD)
            group_name, consumer_name = argv[i + 1], argv[i + 2]
            i += 2
        elif option == b"noack":
            if not grouped:
                raise KvError(NOACK_IN_XREAD)
            noack = True
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    if not streams_at:
        raise KvError(errors.SYNTAX)
    if grouped and group_name is None:
        raise KvError(MISSING_GROUP)
    half = (size - streams_at) // 2
    keys = argv[streams_at : streams_at + half]
    targets: list[tuple[Stream | None, Group | None, StreamID]] = []
    for key, id_text in zip(keys, argv[streams_at + half :], strict=True):
        stream = read(s, key, Stream)
        group = None
        if group_name is not None:
            group = None if stream is None else stream.groups.get(group_name)
            if group is None:
                raise KvError(
                    error(
                        b"NOGROUP No such key '%b' or consumer group '%b' in XREADGROUP with "
                        b"GROUP option" % (key, group_name)
                    )
                )
        if id_text == b"$":
            if grouped:
                raise KvError(DOLLAR_IN_XREADGROUP)
            targets.append((stream, group, MIN_ID if stream is None else stream.last_id))
        elif id_text == b">":
            if not grouped:
                raise KvError(GT_IN_XREAD)
            targets.append((stream, group, MAX_ID))
        else:
            targets.append((stream, group, strict_id(id_text)))
    now = now_ms()
    served: list[bytes] = []
    for key, (stream, group, after) in zip(keys, targets, strict=True):
        if stream is None:
            continue
        if group is not None:
            assert group_name is not None and consumer_name is not None
            history = after != MAX_ID
            serve = history
            if not history and stream.length and stream.last_valid_id() > group.last_id:
                serve = True
                after = group.last_id
            if not serve:
                continue
            reply = _serve_group(
                key, stream, group, group_name, consumer_name, after, history, count, noack, now
            )
            served.append(b"*2\r\n" + bulk(key) + reply)
        elif stream.length and stream.last_valid_id() > after:
            start = next_id(after)
            assert start is not None
            served.append(b"*2\r\n" + bulk(key) + entries_reply(stream.range(start, MAX_ID, count)))
    if served:
        return array(served)
    if block is not None:
        after_of: dict[bytes, StreamID] = {}
        for key, (_, _, after) in zip(keys, targets, strict=True):
            after_of.setdefault(key, after)
        _block(s, after_of, block, count, group_name, consumer_name, noack)
    return NIL_ARRAY


def _serve_group(
    key: bytes,
    stream: Stream,
    group: Group,
    group_name: bytes,
    consumer_name: bytes,
    after: StreamID,
    history: bool,
    count: int,
    noack: bool,
    now: int,
) -> bytes:
    """XREADGROUP's entries from one stream: the consumer's own pending ones after ``after``
    (``history``), else the group's new ones."""
    consumer, created = group.consumer(consumer_name, now)
    if created and noack:  # no XCLAIM will create it on replay
        effects.append([b"XGROUP", b"CREATECONSUMER", key, group_name, consumer_name])
    if history:
        return _history(stream, consumer, after, count, now)
    return entries_reply(
        _deliver(key, stream, after, count, group_name, group, consumer, noack, now)
    )


def _block(
    s: Client,
    after_of: dict[bytes, StreamID],
    timeout_ms: int,
    count: int,
    group_name: bytes | None,
    consumer_name: bytes | None,
    noack: bool,
) -> None:
    """Wait (blocking.py) for entries after the IDs read (XREAD) or for new entries of the
    group (XREADGROUP ``>``); served, the reply names the one stream that had them, as
    blocked.c's serveClientsBlockedOnStreamKey answers, and a group read is journaled as it
    would have been at once."""

    def serve(key: bytes) -> bytes | None:
        stream = s.db.get_write(key)
        if stream.__class__ is not Stream:
            return None
        after = after_of[key]
        group = None
        if group_name is not None:
            group = stream.groups.get(group_name)
            if group is None:
                return NOGROUP_WHILE_BLOCKED
            after = group.last_id
        if stream.last_id <= after:
            return None
        if group is None:
            start = next_id(after)
            assert start is not None
            entries = entries_reply(stream.range(start, MAX_ID, count))
        else:
            assert group_name is not None and consumer_name is not None
            effects.clear()
            entries = _serve_group(
                key, stream, group, group_name, consumer_name, after, False, count, noack,
                now_ms(),
            )  # fmt: skip
            block = [[b"MULTI"], *effects, [b"EXEC"]] if len(effects) > 1 else effects
            for logged in block:
                journal_served(s, logged)
        return b"*1\r\n*2\r\n" + bulk(key) + entries

    s.block(list(after_of), timeout_ms / 1000, serve, NIL_ARRAY)


@command("xread", -4, "readonly blocking", "stream",
         "Returns messages from multiple streams with IDs greater than the ones requested.",
         since="5.0.0", keys=(0, 0, 0))  # fmt: skip
def xread(s: Client, argv: list[bytes]) -> bytes:
    return _xread(s, argv, False)


@command("xreadgroup", -7, "write blocking", "stream",
         "Returns new or historical messages from a stream for a consumer in a group.",
         since="5.0.0", keys=(0, 0, 0))  # fmt: skip
def xreadgroup(s: Client, argv: list[bytes]) -> bytes:
    return _xread(s, argv, True)


# -- XSETID -------------------------------------------------------------------------------------


@command("xsetid", -3, "write denyoom fast", "stream",
         "An internal command for replicating stream values.", since="5.0.0")  # fmt: skip
def xsetid(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    sid = strict_id(argv[2])
    entries_added = -1
    max_deleted = MIN_ID
    i = 3
    while i < len(argv):
        more = len(argv) - 1 - i
        option = argv[i].lower()
        if option == b"entriesadded" and more:
            entries_added = int_arg(argv[i + 1])
            if entries_added < 0:
                raise KvError(ENTRIES_ADDED_NEGATIVE)
        elif option == b"maxdeletedid" and more:
            max_deleted = strict_id(argv[i + 1])
            if sid < max_deleted:
                raise KvError(SETID_BELOW_MAXDELETED)
        else:
            raise KvError(errors.SYNTAX)
        i += 2
    stream = write(s, argv[1], Stream)
    if stream is None:
        raise KvError(NO_SUCH_KEY)
    if stream.length:
        if sid < stream.last_valid_id():
            raise KvError(SETID_BELOW_TOP)
        if entries_added != -1 and stream.length > entries_added:
            raise KvError(SETID_BELOW_LENGTH)
    stream.last_id = sid
    if entries_added != -1:
        stream.entries_added = entries_added
    if max_deleted != MIN_ID:
        stream.max_deleted_id = max_deleted
    effects.append(argv)
    return OK
