"""Geo commands, as Redis 7.0's ``geo.c`` has them: GEOADD, GEOPOS, GEODIST, GEOHASH,
GEOSEARCH, GEOSEARCHSTORE, and GEORADIUS and GEORADIUSBYMEMBER (with their _RO forms).

A geo set is a sorted set whose scores are 52-bit geohashes (geohash.py): GEOADD is a ZADD of
the encoded positions, and every sorted-set command works on it. A search scans the score
ranges of the cells around its centre in Redis's order, keeps the members inside the shape,
and sorts them by distance when asked (or when COUNT is given without ANY); unsorted, the
members come in the order Redis finds them. Positions print as Redis's
``addReplyHumanLongDouble`` prints them (17 decimals, trailing zeros dropped), distances with
four decimals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors, geohash
from residentd.apps.kv.commands.common import read
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.commands.zsets import zadd
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.zscores import parse_score
from residentd.apps.kv.zset import SortedSet
from residentd.codecs.resp import (
    EMPTY_ARRAY,
    NIL,
    ZERO,
    array_header,
    bulk,
    integer,
    parse_int,
)

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

UNITS = {b"m": 1.0, b"km": 1000.0, b"ft": 0.3048, b"mi": 1609.34}
NULL_ARRAY = b"*-1\r\n"


def _double(text: bytes, reply: bytes = errors.NOT_A_FLOAT) -> float:
    value = parse_score(text)
    if value is None:
        raise KvError(reply)
    return value


def _position(longitude: bytes, latitude: bytes) -> tuple[float, float]:
    """extractLongLatOrReply."""
    x, y = _double(longitude), _double(latitude)
    if not geohash.valid(x, y):
        raise KvError(errors.invalid_position(x, y))
    return x, y


def _unit(text: bytes) -> float:
    conversion = UNITS.get(text.lower())
    if conversion is None:
        raise KvError(errors.GEO_UNIT)
    return conversion


def _human(value: float) -> bytes:
    """addReplyHumanLongDouble: %.17Lf with the trailing zeros (and dot) dropped."""
    text = b"%.17f" % value
    text = text.rstrip(b"0").rstrip(b".")
    if text == b"-0":
        text = b"0"
    return b"$%d\r\n%b\r\n" % (len(text), text)


def _distance(meters: float) -> bytes:
    """addReplyDoubleDistance."""
    text = b"%.4f" % meters
    return b"$%d\r\n%b\r\n" % (len(text), text)


def _coordinates(score: float) -> bytes:
    longitude, latitude = geohash.decode(score)
    return b"*2\r\n" + _human(longitude) + _human(latitude)


@command(
    "geoadd",
    -5,
    "write denyoom",
    "geo",
    "Adds one or more members to a geospatial index. The key is created if it doesn't exist.",
    since="3.2.0",
)
def geoadd(s: Client, argv: list[bytes]) -> bytes:
    nx = xx = False
    first = 2
    while first < len(argv):
        option = argv[first].lower()
        if option == b"nx":
            nx = True
        elif option == b"xx":
            xx = True
        elif option != b"ch":
            break
        first += 1
    if (len(argv) - first) % 3 or (xx and nx):
        raise KvError(errors.SYNTAX)
    zargv = [b"zadd", *argv[1:first]]
    for i in range(first, len(argv), 3):
        x, y = _position(argv[i], argv[i + 1])
        zargv += (b"%d" % geohash.score(x, y), argv[i + 2])
    return zadd(s, zargv)


@command(
    "geopos",
    -2,
    "readonly",
    "geo",
    "Returns the longitude and latitude of members from a geospatial index.",
    since="3.2.0",
)
def geopos(s: Client, argv: list[bytes]) -> bytes:
    zset = read(s, argv[1], SortedSet)
    parts = [array_header(len(argv) - 2)]
    for member in argv[2:]:
        score = None if zset is None else zset.scores.get(member)
        parts.append(NULL_ARRAY if score is None else _coordinates(score))
    return b"".join(parts)


@command(
    "geodist",
    -4,
    "readonly",
    "geo",
    "Returns the distance between two members of a geospatial index.",
    since="3.2.0",
)
def geodist(s: Client, argv: list[bytes]) -> bytes:
    conversion = 1.0
    if len(argv) == 5:
        conversion = _unit(argv[4])
    elif len(argv) > 5:
        raise KvError(errors.SYNTAX)
    zset = read(s, argv[1], SortedSet)
    if zset is None:
        return NIL
    first, second = zset.scores.get(argv[2]), zset.scores.get(argv[3])
    if first is None or second is None:
        return NIL
    lon1, lat1 = geohash.decode(first)
    lon2, lat2 = geohash.decode(second)
    return _distance(geohash.distance(lon1, lat1, lon2, lat2) / conversion)


@command(
    "geohash",
    -2,
    "readonly",
    "geo",
    "Returns members from a geospatial index as geohash strings.",
    since="3.2.0",
)
def geohash_(s: Client, argv: list[bytes]) -> bytes:
    zset = read(s, argv[1], SortedSet)
    parts = [array_header(len(argv) - 2)]
    for member in argv[2:]:
        score = None if zset is None else zset.scores.get(member)
        parts.append(NIL if score is None else bulk(geohash.geohash_string(score)))
    return b"".join(parts)


# -- searching ----------------------------------------------------------------------------------

# georadiusGeneric's flags
_COORDS, _MEMBER, _NOSTORE, _SEARCH, _SEARCHSTORE = (1 << bit for bit in range(5))

Found = tuple[float, float, bytes]  # distance in meters, score, member


def _members_in(zset: SortedSet, shape: geohash.Shape, limit: int) -> list[Found]:
    """membersOfAllNeighbors: the members inside ``shape``, in the order Redis finds them,
    stopping at ``limit`` (0: no limit)."""
    found: list[Found] = []
    cells = geohash.search_areas(shape)
    last = 0
    for index, cell in enumerate(cells):
        if cell is None:
            continue
        if last and cell == cells[last]:
            continue  # a huge radius: the same cell twice
        if found and limit and len(found) >= limit:
            break
        low, high = geohash.score_range(*cell)
        ranks = zset.score_positions(low, False, high, True)
        for score, member in zset.order.islice(ranks.start, ranks.stop):
            longitude, latitude = geohash.decode(score)
            meters = shape.contains(longitude, latitude)
            if meters is not None:
                found.append((meters, score, member))
                if limit and len(found) >= limit:
                    break
        last = index
    return found


def _member_shape(zset: SortedSet, member: bytes) -> tuple[float, float]:
    score = zset.scores.get(member)
    if score is None:
        raise KvError(errors.GEO_NO_MEMBER)
    return geohash.decode(score)


def _radius(argv: list[bytes], at: int) -> tuple[float, float]:
    """extractDistanceOrReply: (radius, conversion)."""
    radius = _double(argv[at], errors.GEO_NEED_RADIUS)
    if radius < 0:
        raise KvError(errors.GEO_NEGATIVE_RADIUS)
    return radius, _unit(argv[at + 1])


def _search(s: Client, argv: list[bytes], source_at: int, flags: int) -> bytes:
    """georadiusGeneric."""
    zset = read(s, argv[source_at], SortedSet)
    shape = geohash.Shape(0.0, 0.0, 1.0)
    store: bytes | None = None
    storedist = False
    if flags & _COORDS:
        base = 6
        shape.longitude, shape.latitude = _position(argv[2], argv[3])
        shape.radius, shape.conversion = _radius(argv, 4)
    elif flags & _MEMBER:
        base = 5
        if zset is not None:
            shape.longitude, shape.latitude = _member_shape(zset, argv[2])
            shape.radius, shape.conversion = _radius(argv, 3)
    else:
        base = 2
        if flags & _SEARCHSTORE:
            base = 3
            store = argv[1]
    withdist = withhash = withcoord = any_ = False
    frommember = fromlonlat = byradius = bybox = False
    order = 0  # 1 ascending, -1 descending
    count = 0
    i = base
    while i < len(argv):
        option = argv[i].lower()
        left = len(argv) - i - 1
        if option == b"withdist":
            withdist = True
        elif option == b"withhash":
            withhash = True
        elif option == b"withcoord":
            withcoord = True
        elif option == b"any":
            any_ = True
        elif option == b"asc":
            order = 1
        elif option == b"desc":
            order = -1
        elif option == b"count" and left >= 1:
            parsed = parse_int(argv[i + 1])
            if parsed is None:
                raise KvError(errors.NOT_AN_INTEGER)
            if parsed <= 0:
                raise KvError(errors.GEO_COUNT)
            count = parsed
            i += 1
        elif option in (b"store", b"storedist") and left >= 1 and not flags & (_NOSTORE | _SEARCH):
            store = argv[i + 1]
            storedist = option == b"storedist"
            i += 1
        elif option == b"storedist" and flags & _SEARCHSTORE:
            storedist = True
        elif option == b"frommember" and left >= 1 and flags & _SEARCH and not fromlonlat:
            if zset is not None:
                shape.longitude, shape.latitude = _member_shape(zset, argv[i + 1])
            frommember = True
            i += 1
        elif option == b"fromlonlat" and left >= 2 and flags & _SEARCH and not frommember:
            shape.longitude, shape.latitude = _position(argv[i + 1], argv[i + 2])
            fromlonlat = True
            i += 2
        elif option == b"byradius" and left >= 2 and flags & _SEARCH and not bybox:
            shape.radius, shape.conversion = _radius(argv, i + 1)
            shape.box = False
            byradius = True
            i += 2
        elif option == b"bybox" and left >= 3 and flags & _SEARCH and not byradius:
            shape.width = _double(argv[i + 1], errors.GEO_NEED_WIDTH)
            shape.height = _double(argv[i + 2], errors.GEO_NEED_HEIGHT)
            if shape.width < 0 or shape.height < 0:
                raise KvError(errors.GEO_NEGATIVE_BOX)
            shape.conversion = _unit(argv[i + 3])
            shape.box = True
            bybox = True
            i += 3
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    if store is not None and (withdist or withhash or withcoord):
        raise KvError(errors.geo_store_with(bool(flags & _SEARCHSTORE)))
    if flags & _SEARCH and not (frommember or fromlonlat):
        raise KvError(errors.geo_exactly_one(b"FROMMEMBER or FROMLONLAT", argv[0]))
    if flags & _SEARCH and not (byradius or bybox):
        raise KvError(errors.geo_exactly_one(b"BYRADIUS and BYBOX", argv[0]))
    if any_ and not count:
        raise KvError(errors.GEO_ANY)
    if zset is None:
        if store is None:
            return EMPTY_ARRAY
        s.db.delete(store)
        return ZERO
    if count and not order and not any_:
        order = 1
    found = _members_in(zset, shape, count if any_ else 0)
    if not found and store is None:
        return EMPTY_ARRAY
    if order:
        found.sort(key=lambda item: item[0], reverse=order < 0)
    if count:
        del found[count:]
    if store is not None:
        return _store(s, store, found, shape.conversion, storedist)
    extras = withdist + withhash + withcoord
    parts = [array_header(len(found))]
    for meters, score, member in found:
        if extras:
            parts.append(array_header(extras + 1))
        parts.append(bulk(member))
        if withdist:
            parts.append(_distance(meters / shape.conversion))
        if withhash:
            parts.append(integer(int(score)))
        if withcoord:
            parts.append(_coordinates(score))
    return b"".join(parts)


def _store(s: Client, key: bytes, found: list[Found], conversion: float, storedist: bool) -> bytes:
    if not found:
        s.db.delete(key)
        return ZERO
    entries = [
        (meters / conversion if storedist else score, member) for meters, score, member in found
    ]
    s.state.blocking.overwrote(s.db, key)
    s.db.set(key, SortedSet(entries))
    return integer(len(entries))


@command(
    "georadius",
    -6,
    "write denyoom movablekeys",
    "geo",
    "Queries a geospatial index for members within a distance from a coordinate, optionally "
    "stores the result.",
    since="3.2.0",
)
def georadius(s: Client, argv: list[bytes]) -> bytes:
    return _search(s, argv, 1, _COORDS)


@command(
    "georadius_ro",
    -6,
    "readonly",
    "geo",
    "Returns members from a geospatial index that are within a distance from a coordinate.",
    since="3.2.10",
)
def georadius_ro(s: Client, argv: list[bytes]) -> bytes:
    return _search(s, argv, 1, _COORDS | _NOSTORE)


@command(
    "georadiusbymember",
    -5,
    "write denyoom movablekeys",
    "geo",
    "Queries a geospatial index for members within a distance from a member, optionally "
    "stores the result.",
    since="3.2.0",
)
def georadiusbymember(s: Client, argv: list[bytes]) -> bytes:
    return _search(s, argv, 1, _MEMBER)


@command(
    "georadiusbymember_ro",
    -5,
    "readonly",
    "geo",
    "Returns members from a geospatial index that are within a distance from a member.",
    since="3.2.10",
)
def georadiusbymember_ro(s: Client, argv: list[bytes]) -> bytes:
    return _search(s, argv, 1, _MEMBER | _NOSTORE)


@command(
    "geosearch",
    -7,
    "readonly",
    "geo",
    "Queries a geospatial index for members inside an area of a box or a circle.",
    since="6.2.0",
)
def geosearch(s: Client, argv: list[bytes]) -> bytes:
    return _search(s, argv, 1, _SEARCH)


@command(
    "geosearchstore",
    -8,
    "write denyoom",
    "geo",
    "Queries a geospatial index for members inside an area of a box or a circle, optionally "
    "stores the result.",
    since="6.2.0",
    keys=(1, 2, 1),
)
def geosearchstore(s: Client, argv: list[bytes]) -> bytes:
    return _search(s, argv, 2, _SEARCH | _SEARCHSTORE)
