"""kv's journal is a Redis AOF: each change is the RESP array of a command that makes it,
the way Redis's ``propagate`` writes its AOF.

What a write command logs (``propagate``) follows Redis 7.0:

- a command that changed nothing is not logged (an error reply, ``DEL`` of missing keys,
  ``SADD`` of members already there, ``SET ... NX`` on an existing key, ``LPOP`` of an empty
  list, ``ZREM`` of absent members, ``ZPOPMIN`` of a missing key, ...; a ``ZADD`` that
  changed no score is logged, which a replay does not notice);
- relative expiry becomes absolute, so that a replay at any later time gives the same
  deadline: ``SET k v EX 10`` is logged as ``SET k v PXAT <ms>``, ``EXPIRE``/``PEXPIRE`` as
  ``PEXPIREAT``, and one whose time is already past as ``DEL``;
- ``SETEX``/``PSETEX`` likewise become ``SET ... PXAT``, ``GETEX`` with a time
  ``PEXPIREAT`` (or ``DEL`` when past, ``PERSIST`` with PERSIST);
- ``RESTORE`` with a relative time to live is logged with the absolute one and ``ABSTTL``
  (Redis 7.0's ``restoreCommand`` rewrites it so), one already past as the ``DEL`` of the
  key its ``REPLACE`` removed, or not at all;
- ``GETSET`` is logged as ``SET`` (what it does to the key), ``GETDEL`` as ``DEL``;
- what is random or computed is logged as its outcome, so that a replay repeats it: ``SPOP``
  as the ``SREM`` of the members it popped (in commands of at most 1024 members), or as
  ``DEL`` when it popped the whole set, ``INCRBYFLOAT`` as ``SET key value KEEPTTL`` and
  ``HINCRBYFLOAT`` as the ``HSET`` of its result (the sum as kv printed it, so a replay
  cannot round differently);
- the blocking list commands as the non-blocking ones Redis propagates: ``BLPOP`` as
  ``LPOP key``, ``BLMOVE`` as ``LMOVE``, ``BRPOPLPUSH`` as ``RPOPLPUSH``, and ``LMPOP`` and
  ``BLMPOP`` as ``LPOP key count`` (or ``RPOP``), with the count that was popped; a blocked
  client served later is logged the same way when it is served (commands/lists.py);
- a key deleted because its time passed (on lookup or by the active expiry cycle) is logged
  as ``DEL`` when it goes (``on_expired``), as Redis propagates expiries; a replay in Redis,
  which does not expire keys while loading, then sees the same keys as kv;
- a stream command logs what it did (stream.py's ``effects``): ``XADD`` with the
  ID it generated, an approximate trim as the exact one it made (``MAXLEN = <length>``,
  ``MINID = <first ID>``, no LIMIT), and ``XREADGROUP``, ``XCLAIM`` and ``XAUTOCLAIM`` as
  one ``XCLAIM ... FORCE JUSTID LASTID`` per entry delivered or claimed (plus ``XGROUP SETID
  ... ENTRIESREAD`` when a NOACK read or LASTID moved the group), as Redis 7.0 does;
- the commands of a ``MULTI``/``EXEC`` that changed something are wrapped in ``MULTI`` and
  ``EXEC``, so a journal torn inside the block loads without any of them; so are the
  commands one command is logged as when there are several (the session does both);
- a record made in another database than the journal's last one follows a ``SELECT n``, as
  in Redis's ``feedAppendOnlyFile``; each journal file's first record does too (state.py
  ``journal_select``).

The plain hot commands the C fast path runs (``SET k v``, ``INCR``, ``LPUSH``, ``SADD``,
``ZADD``, ...) append their request as it came (_fastpath.c), which is what Redis logs for
them; those logged otherwise write what ``propagate`` gives here (a pop, DEL or SREM only when
it changed something, EXPIRE as PEXPIREAT, SPOP as the SREM of its member), and
tests/kv/test_fastpath.py compares the two byte for byte.

``RespRecords`` reads a journal back for replay: one record per command, or per
``MULTI``...``EXEC`` block; it stops quietly before a record the file ends inside (a torn
tail) and raises ``BadRecord`` at anything that is not RESP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from residentd.apps.kv import stream
from residentd.codecs.resp import NIL, OK
from residentd.errors import ResidentdError
from residentd.speedups import choose
from residentd.state.api import BadRecord

if TYPE_CHECKING:
    from residentd.apps.kv.store import Keyspace

Rule = Callable[["Keyspace", list[bytes], bytes, bool], "list[list[bytes]]"]

ZERO = b":0\r\n"
MINUS_ONE = b":-1\r\n"
NULL_ARRAY = b"*-1\r\n"
EMPTY_ARRAY = b"*0\r\n"
SPOP_BATCH = 1024  # members per SREM an SPOP is logged as (Redis's batch)
SELECT_0 = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n"
MULTI = b"*1\r\n$5\r\nMULTI\r\n"
EXEC = b"*1\r\n$4\r\nEXEC\r\n"


def encode(argv: list[bytes]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(argv)]
    for arg in argv:
        parts.append(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(parts)


_MARKERS = (b"SELECT", b"MULTI", b"EXEC")


def count_records_python(journal: bytearray, start: int) -> int:
    """The commands journaled in ``journal[start:]`` (RESP arrays of bulk strings, as kv
    writes them), leaving out SELECT, MULTI and EXEC: the changes they made, which the save
    points count (Redis's ``dirty``, but one per command: Redis counts some commands by their
    elements, ``LPUSH k a b c`` as 3)."""
    count = 0
    at = start
    size = len(journal)
    while at < size:
        line = journal.index(b"\r\n", at)
        argc = int(journal[at + 1 : line])
        at = line + 2
        first = b""
        for i in range(argc):
            line = journal.index(b"\r\n", at)
            length = int(journal[at + 1 : line])
            if i == 0:
                first = bytes(journal[line + 2 : line + 2 + length]).upper()
            at = line + 2 + length + 2
        count += first not in _MARKERS
    return count


count_records = choose("residentd.apps.kv._fastpath", "count_records", count_records_python)


def delete(key: bytes) -> bytes:
    return b"*2\r\n$3\r\nDEL\r\n$%d\r\n%b\r\n" % (len(key), key)


# -- what each write command logs -----------------------------------------------------------------


def _as_is(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [argv]


def _unless_zero(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [] if reply == ZERO else [argv]


def _unless_nil(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [] if reply in (NIL, NULL_ARRAY) else [argv]


def _unless_nothing_popped(
    db: Keyspace, argv: list[bytes], reply: bytes, existed: bool
) -> list[list[bytes]]:
    """LPOP and RPOP: not when the key was missing, nor with a count of 0 (Redis's fast exit
    changes nothing, so it propagates nothing)."""
    return [] if reply in (NIL, NULL_ARRAY, EMPTY_ARRAY) else [argv]


def _unless_empty(
    db: Keyspace, argv: list[bytes], reply: bytes, existed: bool
) -> list[list[bytes]]:
    return [] if reply == EMPTY_ARRAY else [argv]


def _key_state(db: Keyspace, key: bytes, value: bytes) -> list[bytes]:
    """``SET key value``, with the key's deadline if it has one."""
    when = db.expires.get(key) if db.expires else None
    return [b"SET", key, value] if when is None else [b"SET", key, value, b"PXAT", b"%d" % when]


def _set(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    key, value = argv[1], argv[2]
    if len(argv) == 3:
        return [argv]
    if not _set_stored(argv, reply):
        return []  # NX / XX refused
    return [_key_state(db, key, value)]


def _set_stored(argv: list[bytes], reply: bytes) -> bool:
    """Whether a SET with options stored its value, told by its reply: +OK without GET; with
    GET, the old value (nil when there was none), stored unless NX found one or XX none."""
    options = {option.upper() for option in argv[3:]}
    if b"GET" not in options:
        return reply == OK
    if b"NX" in options:
        return reply == NIL
    return b"XX" not in options or reply != NIL


def _getset(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [[b"SET", argv[1], argv[2]]]


def _expire(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    if reply == ZERO:
        return []
    key = argv[1]
    when = db.expires.get(key)
    if when is None:  # a time already past deleted the key
        return [[b"DEL", key]]
    return [[b"PEXPIREAT", key, b"%d" % when]]


def _setex(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [_key_state(db, argv[1], argv[3])]


_TIMES = (b"EX", b"PX", b"EXAT", b"PXAT")


def _getex(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    if reply == NIL:
        return []
    options = [option.upper() for option in argv[2:]]
    key = argv[1]
    if b"PERSIST" in options:
        return [[b"PERSIST", key]]
    if not any(option in _TIMES for option in options):
        return []
    when = db.expires.get(key)
    return [[b"DEL", key]] if when is None else [[b"PEXPIREAT", key, b"%d" % when]]


def _getdel(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [] if reply == NIL else [[b"DEL", argv[1]]]


def _incrbyfloat(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [[b"SET", argv[1], db.data[argv[1]], b"KEEPTTL"]]


def _setrange(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    return [argv] if argv[3] else []


def _stored(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    """A command that stores what it found (``existed``: whether the key it stores to was
    there): nothing found and nothing there before changed nothing, as Redis's ``dbDelete`` of
    the destination then deletes nothing; SORT or GEORADIUS without STORE changed nothing."""
    return [] if reply[:1] == b"*" or (reply == ZERO and not existed) else [argv]


def _spop(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    key = argv[1]
    if reply in (NIL, EMPTY_ARRAY):
        return []
    if reply[:1] == b"$":  # SPOP key: one member
        size, start = _line(reply, 0, 0x24)
        return [[b"SREM", key, reply[start : start + size]]]
    if key not in db.data:  # the count took the whole set
        return [[b"DEL", key]]
    members = _command(reply, 0)[0]  # an array of bulk strings reads as a command does
    return [
        [b"SREM", key, *members[i : i + SPOP_BATCH]] for i in range(0, len(members), SPOP_BATCH)
    ]


def _stream(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    """What the stream command just run recorded (taken, so that it is logged once; XGROUP
    HELP, the one handler of these that records nothing, logs nothing)."""
    if argv[0].lower() == b"xgroup" and argv[1].lower() == b"help":
        return []
    logged = list(stream.effects)
    stream.effects.clear()
    return logged


def _hincrbyfloat(
    db: Keyspace, argv: list[bytes], reply: bytes, existed: bool
) -> list[list[bytes]]:
    return [[b"HSET", argv[1], argv[2], db.data[argv[1]][argv[2]]]]


def _unless_no_change(
    db: Keyspace, argv: list[bytes], reply: bytes, existed: bool
) -> list[list[bytes]]:
    return [] if reply in (ZERO, MINUS_ONE) else [argv]


def _popped_key(reply: bytes) -> tuple[bytes, int]:
    """The key of a ``[key, ...]`` reply (BLPOP, LMPOP, BZPOPMIN), and where what follows it
    starts."""
    size, start = _line(reply, 4, 0x24)  # after "*2\r\n", the key's "$N"
    return reply[start : start + size], start + size + 2


def _as_pop(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    """BLPOP and BRPOP as the LPOP or RPOP they did."""
    if reply == NULL_ARRAY:
        return []
    key, _ = _popped_key(reply)
    return [[b"LPOP" if argv[0].lower() == b"blpop" else b"RPOP", key]]


def _as_counted_pop(
    db: Keyspace, argv: list[bytes], reply: bytes, existed: bool
) -> list[list[bytes]]:
    """LMPOP and BLMPOP as ``LPOP key count`` (or RPOP), the count that was popped."""
    if reply == NULL_ARRAY:
        return []
    key, rest = _popped_key(reply)
    count = b"%d" % _line(reply, rest, 0x2A)[0]  # the "*N" of the elements
    first = 2 if argv[0].lower() == b"blmpop" else 1
    where = argv[first + int(argv[first]) + 1].upper()
    return [[b"LPOP" if where == b"LEFT" else b"RPOP", key, count]]


def _as_zpop(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    """BZPOPMIN and BZPOPMAX as the ZPOPMIN or ZPOPMAX they did."""
    if reply == NULL_ARRAY:
        return []
    key, _ = _popped_key(reply)
    return [[b"ZPOPMAX" if argv[0].lower() == b"bzpopmax" else b"ZPOPMIN", key]]


def _as_counted_zpop(
    db: Keyspace, argv: list[bytes], reply: bytes, existed: bool
) -> list[list[bytes]]:
    """BZMPOP as ``ZPOPMIN key count`` (or ZPOPMAX), the count that was popped."""
    if reply == NULL_ARRAY:
        return []
    key, rest = _popped_key(reply)
    count = b"%d" % _line(reply, rest, 0x2A)[0]
    where = argv[2 + int(argv[2]) + 1].upper()
    return [[b"ZPOPMIN" if where == b"MIN" else b"ZPOPMAX", key, count]]


def _as_move(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    """BLMOVE as LMOVE, BRPOPLPUSH as RPOPLPUSH."""
    if reply == NIL:
        return []
    if len(argv) == 4:
        return [[b"RPOPLPUSH", argv[1], argv[2]]]
    return [[b"LMOVE", *argv[1:5]]]


def _restore(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    key = argv[1]
    if key not in db.data:  # its time to live had passed: REPLACE deleted the old value
        return [[b"DEL", key]] if existed else []
    when = db.expires.get(key)
    if when is None or any(option.upper() == b"ABSTTL" for option in argv[4:]):
        return [argv]
    return [[*argv[:2], b"%d" % when, *argv[3:], b"ABSTTL"]]


RULES: dict[bytes, Rule] = {
    b"set": _set,
    b"setex": _setex,
    b"psetex": _setex,
    b"getex": _getex,
    b"getdel": _getdel,
    b"incrbyfloat": _incrbyfloat,
    b"setrange": _setrange,
    b"sort": _stored,
    b"msetnx": _unless_zero,
    b"unlink": _unless_zero,
    b"renamenx": _unless_zero,
    b"copy": _unless_zero,
    b"move": _unless_zero,
    b"getset": _getset,
    b"expire": _expire,
    b"pexpire": _expire,
    b"expireat": _expire,
    b"pexpireat": _expire,
    b"setnx": _unless_zero,
    b"del": _unless_zero,
    b"hdel": _unless_zero,
    b"hsetnx": _unless_zero,
    b"hincrbyfloat": _hincrbyfloat,
    b"spop": _spop,
    b"smove": _unless_zero,
    b"srem": _unless_zero,
    b"sadd": _unless_zero,
    b"persist": _unless_zero,
    b"lpop": _unless_nothing_popped,
    b"rpop": _unless_nothing_popped,
    b"zadd": _unless_nil,  # ZADD XX INCR of a missing member
    b"zrem": _unless_zero,
    b"zremrangebyrank": _unless_zero,
    b"zremrangebyscore": _unless_zero,
    b"zremrangebylex": _unless_zero,
    b"zpopmin": _unless_empty,
    b"zpopmax": _unless_empty,
    b"zmpop": _unless_nil,
    b"lpushx": _unless_zero,
    b"rpushx": _unless_zero,
    b"lrem": _unless_zero,
    b"linsert": _unless_no_change,
    b"lmove": _unless_nil,
    b"rpoplpush": _unless_nil,
    b"blpop": _as_pop,
    b"brpop": _as_pop,
    b"lmpop": _as_counted_pop,
    b"blmpop": _as_counted_pop,
    b"blmove": _as_move,
    b"bzpopmin": _as_zpop,
    b"bzpopmax": _as_zpop,
    b"bzmpop": _as_counted_zpop,
    b"brpoplpush": _as_move,
    b"pfadd": _unless_zero,  # no register changed
    b"restore": _restore,
    **dict.fromkeys(
        (
            b"georadius",
            b"georadiusbymember",
            b"geosearchstore",
            b"sinterstore",
            b"sunionstore",
            b"sdiffstore",
            b"zinterstore",
            b"zunionstore",
            b"zdiffstore",
            b"zrangestore",
            b"bitop",
        ),
        _stored,
    ),
    **dict.fromkeys(
        (
            b"xadd",
            b"xtrim",
            b"xdel",
            b"xack",
            b"xgroup",
            b"xsetid",
            b"xreadgroup",
            b"xclaim",
            b"xautoclaim",
        ),
        _stream,
    ),
}


def propagate(db: Keyspace, argv: list[bytes], reply: bytes, existed: bool) -> list[list[bytes]]:
    """The commands to log for a write command that ran with this reply; ``existed`` says
    whether the key it writes (the destination of one that stores a result: watch.py's
    ``destination``; else its first key) was in the keyspace before it ran."""
    if reply[:1] == b"-":
        return []
    rule = RULES.get(argv[0].lower(), _as_is)
    return rule(db, argv, reply, existed)


# -- reading a journal back -----------------------------------------------------------------------


class Torn(ResidentdError):
    """The data ends inside a record."""


def _line(data: bytes, pos: int, marker: int) -> tuple[int, int]:
    """The integer of a ``*N`` or ``$N`` line at ``pos``, and where the next line starts."""
    end = data.find(b"\r\n", pos)
    if end < 0:
        if len(data) - pos > 24:
            raise ValueError("header line too long")
        raise Torn
    if data[pos] != marker:
        raise ValueError(f"expected {chr(marker)!r}, found {data[pos : pos + 1]!r}")
    text = data[pos + 1 : end]
    if not text.isdigit() or len(text) > 19:
        raise ValueError(f"bad length {text[:20]!r}")
    return int(text), end + 2


def _command(data: bytes, pos: int) -> tuple[list[bytes], int]:
    if pos >= len(data):
        raise Torn
    count, pos = _line(data, pos, 0x2A)  # '*'
    if count < 1:
        raise ValueError("empty command")
    argv = []
    for _ in range(count):
        if pos >= len(data):
            raise Torn
        size, pos = _line(data, pos, 0x24)  # '$'
        end = pos + size
        if end + 2 > len(data):
            raise Torn
        if data[end : end + 2] != b"\r\n":
            raise ValueError("bulk string not followed by CRLF")
        argv.append(data[pos:end])
        pos = end + 2
    return argv, pos


class RespRecords:
    """The journal's framing for residentd.state: records are lists of commands."""

    def scan(self, data: bytes, start: int = 0) -> Iterator[tuple[list[list[bytes]], int]]:
        pos = start
        size = len(data)
        while pos < size:
            record_start = pos
            try:
                argv, pos = _command(data, pos)
                if argv[0].upper() != b"MULTI":
                    yield [argv], pos
                    continue
                block: list[list[bytes]] = []
                while True:
                    argv, pos = _command(data, pos)
                    if argv[0].upper() == b"EXEC":
                        break
                    block.append(argv)
                yield block, pos
            except Torn:
                return
            except ValueError as exc:
                raise BadRecord(record_start, str(exc)) from None
