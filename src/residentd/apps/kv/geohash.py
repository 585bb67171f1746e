"""Redis's geohash (geohash.c and geohash_helper.c): positions as 52-bit sorted-set scores,
and the areas a radius or box search looks in.

A position is encoded at 26 steps: longitude (-180..180) and latitude (-85.05112878..
85.05112878, what Web Mercator can show) each become a 26-bit fraction of their range, and
the two are interleaved, latitude in the even bits. The score is that integer, so members
near each other sort near each other. Decoding gives back the centre of the 26-step cell.

A search picks a step at which the shape fits in a cell and its eight neighbours
(``search_areas``), drops the neighbours the shape's bounding box cannot reach, and scans each
remaining cell's score range; a point in range is kept if it is within the radius (haversine
distance) or the box. Every computation is done in the same double-precision steps as Redis,
with the same libm functions, so that scores, positions and distances are Redis's to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LONG_MIN, LONG_MAX = -180.0, 180.0
LAT_MIN, LAT_MAX = -85.05112878, 85.05112878
STEP_MAX = 26
EARTH_RADIUS = 6372797.560856  # meters
MERCATOR_MAX = 20037726.37
D_R = math.pi / 180.0
_EVEN = 0x5555555555555555
_ODD = 0xAAAAAAAAAAAAAAAA

Area = tuple[float, float, float, float]  # longitude min, max, latitude min, max
_UINT64 = 2**64 - 1


def _spread(value: int) -> int:
    value &= 0xFFFFFFFF
    value = (value | value << 16) & 0x0000FFFF0000FFFF
    value = (value | value << 8) & 0x00FF00FF00FF00FF
    value = (value | value << 4) & 0x0F0F0F0F0F0F0F0F
    value = (value | value << 2) & 0x3333333333333333
    return (value | value << 1) & _EVEN


def _squeeze(value: int) -> int:
    value &= _EVEN
    value = (value | value >> 1) & 0x3333333333333333
    value = (value | value >> 2) & 0x0F0F0F0F0F0F0F0F
    value = (value | value >> 4) & 0x00FF00FF00FF00FF
    value = (value | value >> 8) & 0x0000FFFF0000FFFF
    return (value | value >> 16) & 0xFFFFFFFF


def encode(
    longitude: float, latitude: float, step: int = STEP_MAX, lat_range: float = LAT_MAX
) -> int:
    """geohashEncode: the interleaved bits of a position (``lat_range``: 90 for the
    standard geohash GEOHASH prints)."""
    lat_offset = (latitude + lat_range) / (lat_range * 2) * (1 << step)
    long_offset = (longitude - LONG_MIN) / (LONG_MAX - LONG_MIN) * (1 << step)
    return _spread(int(lat_offset)) | _spread(int(long_offset)) << 1


def decode_area(bits: int, step: int = STEP_MAX) -> Area:
    """geohashDecode: the cell ``bits`` names."""
    lat_cell = _squeeze(bits)
    long_cell = _squeeze(bits >> 1)
    lat_scale = LAT_MAX - LAT_MIN
    long_scale = LONG_MAX - LONG_MIN
    cells = 1 << step
    return (
        LONG_MIN + (long_cell * 1.0 / cells) * long_scale,
        LONG_MIN + ((long_cell + 1) * 1.0 / cells) * long_scale,
        LAT_MIN + (lat_cell * 1.0 / cells) * lat_scale,
        LAT_MIN + ((lat_cell + 1) * 1.0 / cells) * lat_scale,
    )


def _truncated(value: float) -> int:
    """x86-64's ``cvttsd2si``: ``value`` truncated to a 64-bit integer, and the "integer
    indefinite" -2**63 for one out of range or not a number."""
    if math.isfinite(value) and -(2.0**63) <= value < 2.0**63:
        return int(value)
    return -(2**63)


def c_uint64(value: float) -> int:
    """``(uint64_t)value`` as a C compiler writes it for x86-64 (Redis's ``decodeGeohash`` of a
    score): below 2**63 truncated (a negative one wraps), else truncated from ``value - 2**63``
    with the top bit flipped; past the range (2**64 and up, the infinities) that is 0 or 2**63,
    not an error."""
    if value >= 2.0**63:
        return (_truncated(value - 2.0**63) ^ 1 << 63) & _UINT64
    return _truncated(value) & _UINT64


def decode(score: float) -> tuple[float, float]:
    """The position a member's score stands for: its cell's centre, clamped. A score that is
    no geohash (a sorted set's own) is read as Redis reads it: ``c_uint64``."""
    bits = c_uint64(score)
    long_min, long_max, lat_min, lat_max = decode_area(bits)
    longitude = min(max((long_min + long_max) / 2, LONG_MIN), LONG_MAX)
    latitude = min(max((lat_min + lat_max) / 2, LAT_MIN), LAT_MAX)
    return longitude, latitude


def score(longitude: float, latitude: float) -> int:
    """The sorted-set score of a position (GEOADD)."""
    return encode(longitude, latitude)


def valid(longitude: float, latitude: float) -> bool:
    return LONG_MIN <= longitude <= LONG_MAX and LAT_MIN <= latitude <= LAT_MAX


# -- distances --------------------------------------------------------------------------------


def lat_distance(lat1: float, lat2: float) -> float:
    return EARTH_RADIUS * abs(lat2 * D_R - lat1 * D_R)


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """geohashGetDistance: the haversine great-circle distance in meters."""
    v = math.sin((lon2 * D_R - lon1 * D_R) / 2)
    if v == 0.0:
        return lat_distance(lat1, lat2)
    lat1r = lat1 * D_R
    lat2r = lat2 * D_R
    u = math.sin((lat2r - lat1r) / 2)
    a = u * u + math.cos(lat1r) * math.cos(lat2r) * v * v
    return 2.0 * EARTH_RADIUS * math.asin(math.sqrt(a))


# -- searching ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Shape:
    """What a search covers: around (longitude, latitude), a radius or a width and height,
    in a unit of ``conversion`` meters."""

    longitude: float
    latitude: float
    conversion: float
    radius: float = 0.0
    width: float = 0.0
    height: float = 0.0
    box: bool = False

    def contains(self, longitude: float, latitude: float) -> float | None:
        """The distance in meters to a point inside the shape, or ``None``."""
        if not self.box:
            found = distance(self.longitude, self.latitude, longitude, latitude)
            return None if found > self.radius * self.conversion else found
        if lat_distance(latitude, self.latitude) > self.height * self.conversion / 2:
            return None
        if (
            distance(longitude, latitude, self.longitude, latitude)
            > self.width * self.conversion / 2
        ):
            return None
        return distance(self.longitude, self.latitude, longitude, latitude)

    def bounds(self) -> Area:
        """geohashBoundingBox: (longitude min, max, latitude min, max)."""
        half_height = self.conversion * (self.height / 2 if self.box else self.radius)
        half_width = self.conversion * (self.width / 2 if self.box else self.radius)
        lat_delta = half_height / EARTH_RADIUS / D_R
        top = half_width / EARTH_RADIUS / math.cos((self.latitude + lat_delta) * D_R) / D_R
        bottom = half_width / EARTH_RADIUS / math.cos((self.latitude - lat_delta) * D_R) / D_R
        long_delta = bottom if self.latitude < 0 else top
        return (
            self.longitude - long_delta,
            self.longitude + long_delta,
            self.latitude - lat_delta,
            self.latitude + lat_delta,
        )


def estimate_steps(range_meters: float, latitude: float) -> int:
    """geohashEstimateStepsByRadius."""
    if range_meters == 0:
        return 26
    step = 1
    while range_meters < MERCATOR_MAX:
        range_meters *= 2
        step += 1
    step -= 2
    if latitude > 66 or latitude < -66:
        step -= 1
        if latitude > 80 or latitude < -80:
            step -= 1
    return min(max(step, 1), 26)


def _move(bits: int, step: int, d: int, odd: bool) -> int:
    """geohash_move_x (``odd``: the longitude bits) and geohash_move_y."""
    if d == 0:
        return bits
    shift = 64 - step * 2
    mine, other = (bits & _ODD, bits & _EVEN) if odd else (bits & _EVEN, bits & _ODD)
    zz = (_EVEN if odd else _ODD) >> shift
    # The mask also wraps a negative difference as C's unsigned arithmetic does.
    mine = mine + (zz + 1) if d > 0 else (mine | zz) - (zz + 1)
    mine &= (_ODD if odd else _EVEN) >> shift
    return mine | other


def _neighbour(bits: int, step: int, dx: int, dy: int) -> int:
    return _move(_move(bits, step, dx, odd=True), step, dy, odd=False)


# The order membersOfAllNeighbors visits the cells in: self, N, S, E, W, NE, NW, SE, SW.
_AROUND = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))


def search_areas(shape: Shape) -> list[tuple[int, int] | None]:
    """geohashCalculateAreasByShapeWGS84: the nine cells (bits, step) in the order Redis scans
    them, ``None`` for the ones the shape cannot reach."""
    long_min, long_max, lat_min, lat_max = shape.bounds()
    if shape.box:
        half_width, half_height = shape.width / 2, shape.height / 2
        radius = math.sqrt(half_width * half_width + half_height * half_height)
    else:
        radius = shape.radius
    steps = estimate_steps(radius * shape.conversion, shape.latitude)
    bits = encode(shape.longitude, shape.latitude, steps)
    north = decode_area(_neighbour(bits, steps, 0, 1), steps)
    south = decode_area(_neighbour(bits, steps, 0, -1), steps)
    east = decode_area(_neighbour(bits, steps, 1, 0), steps)
    west = decode_area(_neighbour(bits, steps, -1, 0), steps)
    if steps > 1 and (
        north[3] < lat_max or south[2] > lat_min or east[1] < long_max or west[0] > long_min
    ):
        steps -= 1
        bits = encode(shape.longitude, shape.latitude, steps)
    cells: list[tuple[int, int] | None] = [
        (_neighbour(bits, steps, dx, dy), steps) for dx, dy in _AROUND
    ]
    if steps >= 2:
        area = decode_area(bits, steps)
        dropped: set[tuple[int, int]] = set()
        if area[2] < lat_min:
            dropped |= {(0, -1), (-1, -1), (1, -1)}
        if area[3] > lat_max:
            dropped |= {(0, 1), (1, 1), (-1, 1)}
        if area[0] < long_min:
            dropped |= {(-1, 0), (-1, -1), (-1, 1)}
        if area[1] > long_max:
            dropped |= {(1, 0), (1, -1), (1, 1)}
        for index, around in enumerate(_AROUND):
            if around in dropped:
                cells[index] = None
    return cells


def score_range(bits: int, step: int) -> tuple[int, int]:
    """scoresOfGeoHashBox: the scores [min, max) of the members inside a cell."""
    shift = 52 - step * 2
    return bits << shift, (bits + 1) << shift


GEOALPHABET = b"0123456789bcdefghjkmnpqrstuvwxyz"


def geohash_string(score: float) -> bytes:
    """GEOHASH's 11 characters: the position re-encoded on the standard -90..90 range."""
    longitude, latitude = decode(score)
    bits = encode(longitude, latitude, STEP_MAX, lat_range=90.0)
    chars = [GEOALPHABET[(bits >> (52 - (i + 1) * 5)) & 0x1F] for i in range(10)]
    return bytes(chars) + b"0"
