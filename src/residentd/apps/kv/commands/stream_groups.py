"""Consumer groups of streams (Redis 7.0's ``t_stream.c``): XGROUP, XACK, XPENDING, XCLAIM,
XAUTOCLAIM, and XINFO, which reports on a stream and its groups.

The groups themselves are stream.py's ``Group``, ``Consumer`` and ``Pending``; XREADGROUP,
which delivers to them, is with XREAD in streams.py, whose ID parsing, replies and
``effects`` (what a command is journaled as) these commands share. XCLAIM and XAUTOCLAIM are
journaled as one idempotent ``XCLAIM ... FORCE JUSTID LASTID`` per entry they claimed or
dropped (an entry deleted from the stream leaves the PELs), never as themselves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg, read, write
from residentd.apps.kv.commands.registry import command, container, help_subcommand, subcommand
from residentd.apps.kv.commands.streams import (
    NO_SUCH_KEY,
    claim_effect,
    entries_reply,
    entry_reply,
    group_id_effect,
    id_reply,
    interval_end,
    interval_start,
    parse_id,
    strict_id,
)
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.store import now_ms
from residentd.apps.kv.stream import (
    MAX_ID,
    MIN_ID,
    Consumer,
    Group,
    Pending,
    Stream,
    StreamID,
    effects,
    format_id,
)
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    NIL,
    NIL_ARRAY,
    OK,
    ONE,
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

XGROUP_NEEDS_KEY = (
    b"-ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may "
    b"want to use the MKSTREAM option to create an empty stream automatically.\r\n"
)
BUSYGROUP = b"-BUSYGROUP Consumer Group name already exists\r\n"
ENTRIESREAD_NEGATIVE = b"-ERR value for ENTRIESREAD must be positive or -1\r\n"
AUTOCLAIM_COUNT = b"-ERR COUNT must be > 0\r\n"


def _map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A RESP2 map (a flat array), whose values are already encoded."""
    return array_header(2 * len(pairs)) + b"".join(bulk(k) + v for k, v in pairs)


def _optional(value: int | None) -> bytes:
    return NIL if value is None else integer(value)


def _group_of(s: Client, key: bytes, name: bytes) -> tuple[Stream, Group]:
    stream = read(s, key, Stream)
    group = None if stream is None else stream.groups.get(name)
    if stream is None or group is None:
        raise KvError(error(b"NOGROUP No such key '%b' or consumer group '%b'" % (key, name)))
    return stream, group


# -- XACK, XPENDING, XCLAIM, XAUTOCLAIM -----------------------------------------------------------


@command("xack", -4, "write fast", "stream",
         "Returns the number of messages that were successfully acknowledged by the consumer "
         "group member of a stream.", since="5.0.0")  # fmt: skip
def xack(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    stream = read(s, argv[1], Stream)
    group = None if stream is None else stream.groups.get(argv[2])
    if group is None:
        return ZERO
    ids = [strict_id(arg) for arg in argv[3:]]
    acknowledged = sum(group.acknowledge(sid) for sid in ids)
    if acknowledged:
        effects.append(argv)
    return integer(acknowledged)


@command("xpending", -3, "readonly", "stream",
         "Returns the information and entries from a stream consumer group's pending entries "
         "list.", since="5.0.0")  # fmt: skip
def xpending(s: Client, argv: list[bytes]) -> bytes:
    size = len(argv)
    if size != 3 and not 6 <= size <= 9:
        raise KvError(errors.SYNTAX)
    min_idle = 0
    count = 0
    start, end = MIN_ID, MAX_ID
    consumer_name = None
    if size >= 6:
        at = 3
        if argv[3].lower() == b"idle":
            min_idle = int_arg(argv[4])
            if size < 8:
                raise KvError(errors.SYNTAX)
            at = 5
        count = max(int_arg(argv[at + 2]), 0)
        start = interval_start(argv[at])
        end = interval_end(argv[at + 1])
        if at + 3 < size:
            consumer_name = argv[at + 3]
    _, group = _group_of(s, argv[1], argv[2])
    pel = group.pending
    if size == 3:
        if not pel:
            return b"*4\r\n" + ZERO + NIL + NIL + NIL_ARRAY
        owners = [
            b"*2\r\n" + bulk(name) + bulk(b"%d" % len(c.pending))
            for name, c in sorted(group.consumers.items())
            if c.pending
        ]
        return (
            b"*4\r\n" + integer(len(pel)) + id_reply(pel.peekitem(0)[0])
            + id_reply(pel.peekitem(-1)[0]) + array(owners)
        )  # fmt: skip
    if consumer_name is not None:
        owner = group.consumers.get(consumer_name)
        if owner is None:
            return EMPTY_ARRAY
        pel = owner.pending
    now = now_ms()
    rows: list[bytes] = []
    if start <= end:
        for sid in pel.irange(start, end):
            if not count:
                break
            nack = pel[sid]
            if min_idle and now - nack.time < min_idle:
                continue
            count -= 1
            assert nack.consumer is not None
            rows.append(
                b"*4\r\n" + id_reply(sid) + bulk(nack.consumer.name)
                + integer(max(now - nack.time, 0)) + integer(nack.count)
            )  # fmt: skip
    return array(rows)


@command("xclaim", -6, "write fast", "stream",
         "Changes, or acquires, ownership of a message in a consumer group, as if the message "
         "was delivered a consumer group member.", since="5.0.0")  # fmt: skip
def xclaim(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    key, group_name = argv[1], argv[2]
    stream, group = _group_of(s, key, group_name)
    min_idle = _int_or(argv[4], b"Invalid min-idle-time argument for XCLAIM")
    min_idle = max(min_idle, 0)
    ids: list[StreamID] = []
    j = 5
    while j < len(argv):
        try:
            ids.append(strict_id(argv[j]))
        except KvError:
            break
        j += 1
    now = now_ms()
    delivery = -1
    retry = -1
    force = justid = False
    last_id = MIN_ID
    while j < len(argv):
        more = len(argv) - 1 - j
        option = argv[j].lower()
        if option == b"force":
            force = True
        elif option == b"justid":
            justid = True
        elif option == b"idle" and more:
            j += 1
            delivery = now - _int_or(argv[j], b"Invalid IDLE option argument for XCLAIM")
        elif option == b"time" and more:
            j += 1
            delivery = _int_or(argv[j], b"Invalid TIME option argument for XCLAIM")
        elif option == b"retrycount" and more:
            j += 1
            retry = _int_or(argv[j], b"Invalid RETRYCOUNT option argument for XCLAIM")
        elif option == b"lastid" and more:
            j += 1
            last_id = strict_id(argv[j])
        else:
            raise KvError(error(b"ERR Unrecognized XCLAIM option '%b'" % argv[j]))
        j += 1
    moved_last = False
    if last_id > group.last_id:
        group.last_id = last_id
        moved_last = True
    if delivery == -1 or delivery < 0 or delivery > now:
        delivery = now
    consumer: Consumer | None = None
    replies: list[bytes] = []
    for sid, text in zip(ids, argv[5:], strict=False):
        nack = group.pending.get(sid)
        flat = stream.entries.get(sid)
        if flat is None:
            if nack is not None:
                claim_effect(key, group_name, group, text, nack)
                moved_last = False
                group.acknowledge(sid)
            continue
        if force and nack is None:
            nack = group.pending[sid] = Pending(None, now)
        if nack is None:
            continue
        if nack.consumer is not None and min_idle and now - nack.time < min_idle:
            continue
        if consumer is None:
            consumer, _ = group.consumer(argv[3], now)
        group.claim(sid, nack, consumer)
        nack.time = delivery
        if retry >= 0:
            nack.count = retry
        elif not justid:
            nack.count += 1
        replies.append(id_reply(sid) if justid else entry_reply(sid, flat))
        claim_effect(key, group_name, group, text, nack)
        moved_last = False
    if moved_last:
        group_id_effect(key, group_name, group)
    return array(replies)


def _int_or(text: bytes, message: bytes) -> int:
    value = parse_int(text)
    if value is None:
        raise KvError(error(b"ERR " + message))
    return value


@command("xautoclaim", -6, "write fast", "stream",
         "Changes, or acquires, ownership of messages in a consumer group, as if the messages "
         "were delivered to as consumer group member.", since="6.2.0")  # fmt: skip
def xautoclaim(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    key, group_name = argv[1], argv[2]
    min_idle = max(_int_or(argv[4], b"Invalid min-idle-time argument for XAUTOCLAIM"), 0)
    start = interval_start(argv[5])
    count = 100
    justid = False
    j = 6
    while j < len(argv):
        option = argv[j].lower()
        if option == b"count" and j + 1 < len(argv):
            value = parse_int(argv[j + 1])
            if value is None or not 1 <= value <= ((1 << 63) - 1) // 16:
                raise KvError(AUTOCLAIM_COUNT)
            count = value
            j += 1
        elif option == b"justid":
            justid = True
        else:
            raise KvError(errors.SYNTAX)
        j += 1
    stream, group = _group_of(s, key, group_name)
    attempts = count * 10
    now = now_ms()
    consumer: Consumer | None = None
    claimed: list[bytes] = []
    deleted: list[bytes] = []
    pel = group.pending
    cursor_at = pel.bisect_left(start)
    while attempts and count and cursor_at < len(pel):
        attempts -= 1
        sid, nack = pel.peekitem(cursor_at)
        flat = stream.entries.get(sid)
        if flat is None:
            claim_effect(key, group_name, group, format_id(sid), nack)
            group.acknowledge(sid)
            deleted.append(id_reply(sid))
            count -= 1
            continue
        cursor_at += 1
        if min_idle and now - nack.time < min_idle:
            continue
        if consumer is None:
            consumer, _ = group.consumer(argv[3], now)
        group.claim(sid, nack, consumer)
        nack.time = now
        if not justid:
            nack.count += 1
        claimed.append(id_reply(sid) if justid else entry_reply(sid, flat))
        count -= 1
        claim_effect(key, group_name, group, format_id(sid), nack)
    cursor = pel.peekitem(cursor_at)[0] if cursor_at < len(pel) else MIN_ID
    return b"*3\r\n" + id_reply(cursor) + array(claimed) + array(deleted)


# -- XGROUP -------------------------------------------------------------------------------------

container("xgroup", "", "stream", "A container for consumer groups commands.", since="5.0.0")


def _group_args(argv: list[bytes], create: bool) -> tuple[bool, int | None]:
    """MKSTREAM (CREATE only) and ENTRIESREAD after the ID."""
    mkstream = False
    entries_read: int | None = None
    i = 5
    while i < len(argv):
        if create and argv[i].lower() == b"mkstream":
            mkstream = True
            i += 1
        elif argv[i].lower() == b"entriesread" and i + 1 < len(argv):
            value = int_arg(argv[i + 1])
            if value < 0 and value != -1:
                raise KvError(ENTRIESREAD_NEGATIVE)
            entries_read = None if value == -1 else value
            i += 2
        else:
            raise KvError(_subcommand_syntax(argv[1]))
    return mkstream, entries_read


def _subcommand_syntax(name: bytes, container: str = "XGROUP") -> bytes:
    """addReplySubcommandSyntaxError."""
    return error(
        b"ERR unknown subcommand or wrong number of arguments for '%b'. Try %b HELP."
        % (name[:128], container.encode())
    )


def _xgroup_target(s: Client, argv: list[bytes]) -> Stream:
    """The stream an XGROUP subcommand names, which must exist."""
    stream = write(s, argv[2], Stream)
    if stream is None:
        raise KvError(XGROUP_NEEDS_KEY)
    return stream


def _existing_group(s: Client, argv: list[bytes]) -> Group:
    """The group an XGROUP subcommand names, which must exist."""
    group = _xgroup_target(s, argv).groups.get(argv[3])
    if group is None:
        raise KvError(
            error(b"NOGROUP No such consumer group '%b' for key name '%b'" % (argv[3], argv[2]))
        )
    return group


@subcommand("xgroup", "create", -5, "write denyoom", "Creates a consumer group.",
            since="5.0.0")  # fmt: skip
def xgroup_create(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    mkstream, entries_read = _group_args(argv, True)
    stream = write(s, argv[2], Stream)
    if stream is None and not mkstream:
        raise KvError(XGROUP_NEEDS_KEY)
    if len(argv) > 8:
        raise KvError(_subcommand_syntax(argv[1]))
    last = MIN_ID if stream is None else stream.last_id
    sid = last if argv[4] == b"$" else strict_id(argv[4])
    if stream is None:
        stream = s.db.data[argv[2]] = Stream()
    if argv[3] in stream.groups:
        raise KvError(BUSYGROUP)
    stream.groups[argv[3]] = Group(sid, entries_read)
    effects.append(argv)
    return OK


@subcommand("xgroup", "setid", -5, "write",
            "Sets the last-delivered ID of a consumer group.", since="5.0.0")  # fmt: skip
def xgroup_setid(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    _, entries_read = _group_args(argv, False)
    group = _existing_group(s, argv)
    if len(argv) not in (5, 7):
        raise KvError(_subcommand_syntax(argv[1]))
    sid = _xgroup_target(s, argv).last_id if argv[4] == b"$" else parse_id(argv[4])[0]
    group.last_id = sid
    group.entries_read = entries_read
    effects.append(argv)
    return OK


@subcommand("xgroup", "destroy", 4, "write", "Destroys a consumer group.",
            since="5.0.0")  # fmt: skip
def xgroup_destroy(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    if _xgroup_target(s, argv).groups.pop(argv[3], None) is None:
        return ZERO
    effects.append(argv)
    return ONE


@subcommand("xgroup", "createconsumer", 5, "write denyoom",
            "Creates a consumer in a consumer group.", since="6.2.0")  # fmt: skip
def xgroup_createconsumer(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    group = _existing_group(s, argv)
    if argv[4] in group.consumers:
        return ZERO
    group.consumers[argv[4]] = Consumer(argv[4], now_ms())
    effects.append(argv)
    return ONE


@subcommand("xgroup", "delconsumer", 5, "write",
            "Deletes a consumer from a consumer group.", since="5.0.0")  # fmt: skip
def xgroup_delconsumer(s: Client, argv: list[bytes]) -> bytes:
    effects.clear()
    group = _existing_group(s, argv)
    consumer = group.consumers.get(argv[4])
    if consumer is None:
        return ZERO
    pending = len(consumer.pending)
    group.delete_consumer(consumer)
    effects.append(argv)
    return integer(pending)


help_subcommand(
    "xgroup",
    [
        "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
        "HELP",
        "    Prints this help.",
    ],
)


# -- XINFO ----------------------------------------------------------------------------------------

container("xinfo", "", "stream", "A container for stream introspection commands.",
          since="5.0.0")  # fmt: skip


def _info_stream(s: Client, key: bytes) -> Stream:
    stream = read(s, key, Stream)
    if stream is None:
        raise KvError(NO_SUCH_KEY)
    return stream


@subcommand("xinfo", "stream", -3, "readonly",
            "Returns information about a stream.", since="5.0.0")  # fmt: skip
def xinfo_stream(s: Client, argv: list[bytes]) -> bytes:
    stream = _info_stream(s, argv[2])
    full = len(argv) > 3
    count = 10
    if full:
        if (
            len(argv) not in (4, 6)
            or argv[3].lower() != b"full"
            or (len(argv) == 6 and argv[4].lower() != b"count")
        ):
            raise KvError(_subcommand_syntax(b"stream", "XINFO"))
        if len(argv) == 6:
            count = int_arg(argv[5])
            if count < 0:
                count = 10
    fields: list[tuple[bytes, bytes]] = [
        (b"length", integer(stream.length)),
        (b"radix-tree-keys", integer(len(stream.nodes))),
        (b"radix-tree-nodes", integer(stream.radix_tree_nodes())),
        (b"last-generated-id", id_reply(stream.last_id)),
        (b"max-deleted-entry-id", id_reply(stream.max_deleted_id)),
        (b"entries-added", integer(stream.entries_added)),
        (b"recorded-first-entry-id", id_reply(stream.first_id)),
    ]
    if not full:
        first = stream.range(MIN_ID, MAX_ID, 1)
        last = stream.range(MIN_ID, MAX_ID, 1, reverse=True)
        fields += [
            (b"groups", integer(len(stream.groups))),
            (b"first-entry", entry_reply(*first[0]) if first else NIL),
            (b"last-entry", entry_reply(*last[0]) if last else NIL),
        ]
        return _map(fields)
    fields.append((b"entries", entries_reply(stream.range(MIN_ID, MAX_ID, count))))
    groups = [_full_group(stream, name, group, count) for name, group in _sorted(stream.groups)]
    fields.append((b"groups", array(groups)))
    return _map(fields)


def _sorted(groups: dict[bytes, Group]) -> list[tuple[bytes, Group]]:
    return sorted(groups.items())


def _full_group(stream: Stream, name: bytes, group: Group, count: int) -> bytes:
    pending: list[bytes] = []
    for sid, nack in group.pending.items():
        if count and len(pending) >= count:
            break
        assert nack.consumer is not None
        pending.append(
            b"*4\r\n" + id_reply(sid) + bulk(nack.consumer.name) + integer(nack.time)
            + integer(nack.count)
        )  # fmt: skip
    consumers = []
    for consumer_name, consumer in sorted(group.consumers.items()):
        own: list[bytes] = []
        for sid, nack in consumer.pending.items():
            if count and len(own) >= count:
                break
            own.append(b"*3\r\n" + id_reply(sid) + integer(nack.time) + integer(nack.count))
        consumers.append(
            _map(
                [
                    (b"name", bulk(consumer_name)),
                    (b"seen-time", integer(consumer.seen)),
                    (b"pel-count", integer(len(consumer.pending))),
                    (b"pending", array(own)),
                ]
            )
        )
    return _map(
        [
            (b"name", bulk(name)),
            (b"last-delivered-id", id_reply(group.last_id)),
            (b"entries-read", _optional(group.entries_read)),
            (b"lag", _optional(stream.lag(group))),
            (b"pel-count", integer(len(group.pending))),
            (b"pending", array(pending)),
            (b"consumers", array(consumers)),
        ]
    )


@subcommand("xinfo", "groups", 3, "readonly",
            "Returns a list of the consumer groups of a stream.", since="5.0.0")  # fmt: skip
def xinfo_groups(s: Client, argv: list[bytes]) -> bytes:
    stream = _info_stream(s, argv[2])
    return array(
        [
            _map(
                [
                    (b"name", bulk(name)),
                    (b"consumers", integer(len(group.consumers))),
                    (b"pending", integer(len(group.pending))),
                    (b"last-delivered-id", id_reply(group.last_id)),
                    (b"entries-read", _optional(group.entries_read)),
                    (b"lag", _optional(stream.lag(group))),
                ]
            )
            for name, group in _sorted(stream.groups)
        ]
    )


@subcommand("xinfo", "consumers", 4, "readonly",
            "Returns a list of the consumers in a consumer group.", since="5.0.0")  # fmt: skip
def xinfo_consumers(s: Client, argv: list[bytes]) -> bytes:
    stream = _info_stream(s, argv[2])
    group = stream.groups.get(argv[3])
    if group is None:
        raise KvError(
            error(b"NOGROUP No such consumer group '%b' for key name '%b'" % (argv[3], argv[2]))
        )
    now = now_ms()
    return array(
        [
            _map(
                [
                    (b"name", bulk(name)),
                    (b"pending", integer(len(consumer.pending))),
                    (b"idle", integer(now - consumer.seen)),
                ]
            )
            for name, consumer in sorted(group.consumers.items())
        ]
    )


help_subcommand(
    "xinfo",
    [
        "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
        "HELP",
        "    Prints this help.",
    ],
)
