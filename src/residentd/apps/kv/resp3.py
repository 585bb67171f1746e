"""RESP3 replies for clients that said ``HELLO 3``, made from the RESP2 replies handlers return.

Handlers encode RESP2 (the protocol of every client until it says otherwise, and of the C
fast path). RESP3 differs from it in a few places, which Redis decides reply by reply
(``addReplyMapLen``, ``addReplySetLen``, ``addReplyDouble``, ``addReplyNull``, ...):

- a null is ``_`` wherever RESP2 has a nil bulk (``$-1``) or a nil array (``*-1``);
- some arrays are maps (``%``: HGETALL, CONFIG GET, HELLO), sets (``~``: SMEMBERS) or pushes
  (``>``: pub/sub messages and (un)subscribe confirmations);
- some bulk strings are doubles (``,``: ZSCORE) or verbatim text (``=``: INFO);
- a flat list of member, score, member, score (ZRANGE ... WITHSCORES) is a list of pairs.

``SHAPES`` says, per command, where its reply differs (a ``Shape``, or a function of the
command's words for the commands whose options change it); ``to_resp3`` walks a RESP2 reply
once and writes it again as RESP3 by that shape. A reply with no shape and no nil goes back
as it is, so most replies cost one substring test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Shape:
    """Where a reply differs from RESP2. ``kind``: "array", "map", "set", "push" (an array
    written with that type; ``item`` is each element's shape, or each value's in a map;
    ``values`` a map value's shape by its key, ``at`` an array element's by its position),
    "pairs" (a flat array of x, score, ... written as an array of [x, score] pairs, ``item``
    the shape of the score), "keyed" (an array of [key, value] pairs written as a map,
    ``item`` the values' shape), or the leaves "double" and "verbatim" (a bulk string written as
    that type)."""

    kind: str
    item: Shape | None = None
    values: Mapping[bytes, Shape | None] = field(default_factory=dict)
    at: Mapping[int, Shape | None] = field(default_factory=dict)


DOUBLE = Shape("double")
VERBATIM = Shape("verbatim")
MAP = Shape("map")
SET = Shape("set")
PUSH = Shape("push")
PAIRS = Shape("pairs", DOUBLE)  # member, score, ... as [member, score] pairs
DOUBLES = Shape("array", DOUBLE)

ShapeOf = Shape | None | Callable[[list[bytes]], Shape | None]

#: A reply already in RESP3: EXEC's (each queued command's reply was converted by its own
#: shape), HELLO's (in the protocol it switched to), a script's (written in the caller's
#: protocol: scripting/convert.py).
CONVERTED = Shape("converted")


def to_resp3(reply: bytes, shape: Shape | None) -> bytes:
    """``reply`` (one or more RESP2 values, back to back) as RESP3, by ``shape``."""
    if shape is None and b"-1\r\n" not in reply:
        return reply
    if shape is CONVERTED:
        return reply
    out: list[bytes] = []
    position = 0
    while position < len(reply):
        position = _value(reply, position, shape, out)
    return b"".join(out)


def _value(data: bytes, position: int, shape: Shape | None, out: list[bytes]) -> int:
    """Write the value at ``position`` as RESP3 to ``out``; where the next value starts."""
    kind = data[position]
    end = data.index(b"\r\n", position)
    if kind == 0x24:  # $: bulk string
        size = int(data[position + 1 : end])
        if size < 0:
            out.append(b"_\r\n")
            return end + 2
        stop = end + 2 + size
        if shape is DOUBLE:
            out.append(b"," + data[end + 2 : stop] + b"\r\n")
        elif shape is VERBATIM:
            out.append(b"=%d\r\ntxt:" % (size + 4) + data[end + 2 : stop + 2])
        else:
            out.append(data[position : stop + 2])
        return stop + 2
    if kind != 0x2A:  # +, -, : are the same in both
        out.append(data[position : end + 2])
        return end + 2
    count = int(data[position + 1 : end])
    position = end + 2
    if count < 0:
        out.append(b"_\r\n")
        return position
    if shape is None or shape.kind == "array":
        out.append(b"*%d\r\n" % count)
        for index in range(count):
            item = None if shape is None else shape.at.get(index, shape.item)
            position = _value(data, position, item, out)
        return position
    if shape.kind == "pairs":
        out.append(b"*%d\r\n" % (count // 2))
        for _ in range(count // 2):
            out.append(b"*2\r\n")
            position = _value(data, position, None, out)
            position = _value(data, position, shape.item, out)
        return position
    if shape.kind == "keyed":  # [[key, value], ...] written as a map
        out.append(b"%%%d\r\n" % count)
        for _ in range(count):
            position = data.index(b"\r\n", position) + 2  # the pair's own header
            position = _value(data, position, None, out)
            position = _value(data, position, shape.item, out)
        return position
    if shape.kind == "map":
        out.append(b"%%%d\r\n" % (count // 2))
        for _ in range(count // 2):
            key_at = position
            position = _value(data, position, None, out)
            value_shape = shape.values.get(_bulk_text(data, key_at), shape.item)
            position = _value(data, position, value_shape, out)
        return position
    out.append(b"%c%d\r\n" % (b"~" if shape.kind == "set" else b">", count))
    for _ in range(count):
        position = _value(data, position, shape.item, out)
    return position


def _bulk_text(data: bytes, position: int) -> bytes:
    """The text of the bulk or simple string at ``position`` (a map key)."""
    end = data.index(b"\r\n", position)
    if data[position] != 0x24:
        return data[position + 1 : end]
    size = int(data[position + 1 : end])
    return data[end + 2 : end + 2 + max(size, 0)]


def _subcommand(
    shapes: Mapping[bytes, Shape | None], alone: Shape | None = None
) -> Callable[[list[bytes]], Shape | None]:
    """The shape by the subcommand (``alone``: the command without one)."""
    return lambda argv: shapes.get(argv[1].lower()) if len(argv) > 1 else alone


# COMMAND INFO's entry: name, arity, flags (a set), first, last, step, categories (a set),
# tips, key specifications, subcommands (entries again).
_COMMAND_ENTRY = Shape("array", at={2: SET, 6: SET})
_COMMAND_ENTRY.at = {2: SET, 6: SET, 9: Shape("array", _COMMAND_ENTRY)}
_COMMAND_INFO = Shape("array", _COMMAND_ENTRY)
# COMMAND DOCS: a map of name to a map of its fields, whose "subcommands" is such a map again.
_DOCS = Shape("map")
_DOCS.item = Shape("map", values={b"subcommands": _DOCS})


def _with_scores(argv: list[bytes]) -> Shape | None:
    return PAIRS if any(arg.lower() == b"withscores" for arg in argv[2:]) else None


def _zadd(argv: list[bytes]) -> Shape | None:
    """ZADD's options come before the first score; with INCR it answers the new score."""
    for arg in argv[2:]:
        option = arg.lower()
        if option == b"incr":
            return DOUBLE
        if option not in (b"nx", b"xx", b"gt", b"lt", b"ch"):
            return None
    return None


_POP_ONE = Shape("array", at={1: DOUBLE})  # member, score
_SCORED_RANGES = (
    "zrange", "zrevrange", "zrangebyscore", "zrevrangebyscore", "zunion", "zinter", "zdiff",
    "zrandmember",
)  # fmt: skip
# key, [[member, score], ...]: pairs already in RESP2, their scores doubles in RESP3
_FROM_KEY = Shape("array", at={1: Shape("array", _POP_ONE)})

# Where the options of a geo search start, and how many words each option takes after it.
_GEO_BASE = {b"georadius": 6, b"georadius_ro": 6, b"georadiusbymember": 5}
_GEO_BASE[b"georadiusbymember_ro"] = 5
_GEO_TAKES = {
    b"count": 1,
    b"store": 1,
    b"storedist": 1,
    b"frommember": 1,
    b"fromlonlat": 2,
    b"byradius": 2,
    b"bybox": 3,
}
_COORDINATES = Shape("array", DOUBLE)


def _geo_search(argv: list[bytes]) -> Shape | None:
    """GEOSEARCH and GEORADIUS*: WITHCOORD's longitude and latitude are doubles, after the
    member and the distance and hash when those are asked for too."""
    name = argv[0].lower()
    i = _GEO_BASE.get(name, 2)
    extras: set[bytes] = set()
    while i < len(argv):
        option = argv[i].lower()
        if option in (b"withdist", b"withhash", b"withcoord"):
            extras.add(option)
        takes = _GEO_TAKES.get(option, 0)
        if option == b"storedist" and name == b"geosearch":
            takes = 0
        i += 1 + takes
    if b"withcoord" not in extras:
        return None
    return Shape("array", Shape("array", at={len(extras): _COORDINATES}))


# XINFO STREAM [FULL]: a map; FULL's groups are maps, and so are their consumers.
_XINFO_STREAM = Shape("map", values={b"groups": Shape("array", Shape("map", values={
    b"consumers": Shape("array", MAP)}))})  # fmt: skip
_XINFO = _subcommand(
    {b"stream": _XINFO_STREAM, b"groups": Shape("array", MAP), b"consumers": Shape("array", MAP)}
)

#: The commands whose RESP3 reply is not their RESP2 reply with nulls as ``_``.
SHAPES: dict[str, ShapeOf] = {
    "hgetall": MAP,
    "smembers": SET,
    "sinter": SET,
    "sunion": SET,
    "sdiff": SET,
    "spop": lambda argv: SET if len(argv) > 2 else None,
    "hrandfield": lambda argv: (
        Shape("pairs") if len(argv) > 3 and argv[3].lower() == b"withvalues" else None
    ),
    "hello": CONVERTED,  # it replies in the protocol it chose
    "info": VERBATIM,
    "lcs": lambda argv: MAP if any(arg.lower() == b"idx" for arg in argv[3:]) else None,
    "config": _subcommand({b"get": MAP}),
    "client": _subcommand({b"info": VERBATIM, b"list": VERBATIM}),
    "command": _subcommand({b"docs": _DOCS, b"info": _COMMAND_INFO}, _COMMAND_INFO),
    "subscribe": PUSH,
    "unsubscribe": PUSH,
    "psubscribe": PUSH,
    "punsubscribe": PUSH,
    "ssubscribe": PUSH,
    "sunsubscribe": PUSH,
    "exec": CONVERTED,
    **dict.fromkeys(("eval", "evalsha", "eval_ro", "evalsha_ro"), CONVERTED),  # as scripted
    "zscore": DOUBLE,
    "zincrby": DOUBLE,
    "zadd": _zadd,
    "zmscore": DOUBLES,
    "zpopmin": lambda argv: PAIRS if len(argv) > 2 else _POP_ONE,
    "zpopmax": lambda argv: PAIRS if len(argv) > 2 else _POP_ONE,
    "zmpop": _FROM_KEY,
    "bzmpop": _FROM_KEY,
    "bzpopmin": Shape("array", at={2: DOUBLE}),  # key, member, score
    "bzpopmax": Shape("array", at={2: DOUBLE}),
    **dict.fromkeys(_SCORED_RANGES, _with_scores),
    "geopos": Shape("array", _COORDINATES),
    **dict.fromkeys(
        ("georadius", "georadius_ro", "georadiusbymember", "georadiusbymember_ro", "geosearch"),
        _geo_search,
    ),
    "xread": Shape("keyed"),  # stream name to its entries
    "xreadgroup": Shape("keyed"),
    "xinfo": _XINFO,
}


def shape_of(name: str, argv: list[bytes]) -> Shape | None:
    """The RESP3 shape of command ``name``'s reply to ``argv``."""
    shape = SHAPES.get(name)
    if shape is None or isinstance(shape, Shape):
        return shape
    return shape(argv)


def push(payload: bytes) -> bytes:
    """A pub/sub message, encoded as a RESP2 array, as a RESP3 push."""
    return b">" + payload[1:]
