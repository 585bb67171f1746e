"""Bit commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
BITFIELD_RO, as Redis's ``bitops.c`` has them.

Bits are numbered from the most significant bit of the first byte, and a string reads as if
followed by endless zero bytes. Writes grow the string with zero bytes as far as they reach
and keep the key's time to live (Redis changes the value in place). Ranges are read as one
big integer (``int.from_bytes``), so counting and searching run at C speed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import NIL, ZERO, array_header, integer, parse_int

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

_BAD_OFFSET = b"-ERR bit offset is not an integer or out of range\r\n"
_BAD_BIT = b"-ERR bit is not an integer or out of range\r\n"
_BITPOS_BIT = b"-ERR The bit argument must be 1 or 0.\r\n"
_BITOP_NOT = b"-ERR BITOP NOT must be called with a single source key.\r\n"
_BAD_TYPE = (
    b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported "
    b"but i64 is.\r\n"
)
_BAD_OVERFLOW = b"-ERR Invalid OVERFLOW type specified\r\n"
_READONLY = b"-ERR BITFIELD_RO only supports the GET subcommand\r\n"


def _offset(s: Client, text: bytes, hash_bits: int = 0) -> int:
    """A bit offset (``getBitOffsetFromArgument``); ``#n`` means n fields of ``hash_bits``."""
    if hash_bits and text[:1] == b"#":
        value = parse_int(text[1:])
        if value is not None:
            value *= hash_bits
    else:
        value = parse_int(text)
    if value is None or value < 0 or value >> 3 >= s.state.max_bulk_len:
        raise KvError(_BAD_OFFSET)
    return value


@command(
    "setbit",
    4,
    "write denyoom",
    "bitmap",
    "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
    since="2.2.0",
)
def setbit(s: Client, argv: list[bytes]) -> bytes:
    offset = _offset(s, argv[2])
    bit = parse_int(argv[3])
    if bit is None or bit & ~1:
        raise KvError(_BAD_BIT)
    old = write(s, argv[1], bytes)
    value = bytearray(old or b"")
    byte, shift = offset >> 3, 7 - (offset & 7)
    if byte >= len(value):
        value.extend(bytes(byte + 1 - len(value)))
    previous = value[byte] >> shift & 1
    if bit:
        value[byte] |= 1 << shift
    else:
        value[byte] &= ~(1 << shift) & 0xFF
    s.db.data[argv[1]] = bytes(value)  # in place: the time to live stays
    return integer(previous)


@command("getbit", 3, "readonly fast", "bitmap", "Returns a bit value by offset.", since="2.2.0")
def getbit(s: Client, argv: list[bytes]) -> bytes:
    offset = _offset(s, argv[2])
    value = read(s, argv[1], bytes)
    if value is None or offset >> 3 >= len(value):
        return ZERO
    return integer(value[offset >> 3] >> (7 - (offset & 7)) & 1)


def _unit(text: bytes) -> bool:
    """BYTE or BIT: whether the range counts bits."""
    unit = text.upper()
    if unit not in (b"BIT", b"BYTE"):
        raise KvError(errors.SYNTAX)
    return unit == b"BIT"


def _clamp(start: int, end: int, total: int) -> tuple[int, int]:
    if start < 0:
        start = max(total + start, 0)
    if end < 0:
        end = max(total + end, 0)
    return start, min(end, total - 1)


def _bits(value: bytes | bytearray, first: int, last: int) -> int:
    """Bits ``first`` to ``last`` (inclusive, ``first <= last``) of ``value`` as an integer,
    zeros past its end."""
    size = (last >> 3) - (first >> 3) + 1
    chunk = int.from_bytes(value[first >> 3 : (last >> 3) + 1].ljust(size, b"\0"), "big")
    return chunk >> (7 - (last & 7)) & ((1 << (last - first + 1)) - 1)


@command(
    "bitcount",
    -2,
    "readonly",
    "bitmap",
    "Counts the number of set bits (population counting) in a string.",
    since="2.6.0",
)
def bitcount(s: Client, argv: list[bytes]) -> bytes:
    value = read(s, argv[1], bytes)
    if value is None:
        return ZERO
    if len(argv) == 2:
        return integer(int.from_bytes(value, "big").bit_count())
    if len(argv) not in (4, 5):
        raise KvError(errors.SYNTAX)
    start, end = int_arg(argv[2]), int_arg(argv[3])
    if start < 0 and end < 0 and start > end:
        return ZERO
    in_bits = len(argv) == 5 and _unit(argv[4])
    total = len(value) * 8 if in_bits else len(value)
    start, end = _clamp(start, end, total)
    if start > end:
        return ZERO
    if not in_bits:
        start, end = start * 8, end * 8 + 7
    return integer(_bits(value, start, end).bit_count())


@command(
    "bitpos",
    -3,
    "readonly",
    "bitmap",
    "Finds the first set (1) or clear (0) bit in a string.",
    since="2.8.7",
)
def bitpos(s: Client, argv: list[bytes]) -> bytes:
    bit = int_arg(argv[2])
    if bit not in (0, 1):
        raise KvError(_BITPOS_BIT)
    value = read(s, argv[1], bytes)
    if value is None:
        return integer(-1 if bit else 0)
    if len(argv) > 6:
        raise KvError(errors.SYNTAX)
    in_bits = end_given = False
    start, end = 0, len(value) - 1
    if len(argv) > 3:
        start = int_arg(argv[3])
        in_bits = len(argv) == 6 and _unit(argv[5])
        if len(argv) > 4:
            end = int_arg(argv[4])
            end_given = True
        total = len(value) * 8 if in_bits else len(value)
        start, end = _clamp(start, end, total)
    if start > end:
        return integer(-1)
    if not in_bits:
        start, end = start * 8, end * 8 + 7
    width = end - start + 1
    chunk = _bits(value, start, end)
    if not bit:
        chunk ^= (1 << width) - 1
    if chunk:
        return integer(start + width - chunk.bit_length())
    # No such bit: for a clear bit without an explicit end, the one just past the string.
    return integer(-1 if bit or end_given else end + 1)


@command(
    "bitop",
    -4,
    "write denyoom",
    "bitmap",
    "Performs bitwise operations on multiple strings, and stores the result.",
    since="2.6.0",
    keys=(2, -1, 1),
)
def bitop(s: Client, argv: list[bytes]) -> bytes:
    operation = argv[1].upper()
    if operation not in (b"AND", b"OR", b"XOR", b"NOT"):
        raise KvError(errors.SYNTAX)
    if operation == b"NOT" and len(argv) != 4:
        raise KvError(_BITOP_NOT)
    sources = [read(s, key, bytes) or b"" for key in argv[3:]]
    size = max(len(source) for source in sources)
    db = s.db
    if not size:
        db.delete(argv[2])
        return ZERO
    numbers = [int.from_bytes(source.ljust(size, b"\0"), "big") for source in sources]
    result = numbers[0]
    if operation == b"NOT":
        result ^= (1 << (8 * size)) - 1
    for number in numbers[1:]:
        if operation == b"AND":
            result &= number
        elif operation == b"OR":
            result |= number
        else:
            result ^= number
    db.set(argv[2], result.to_bytes(size, "big"))
    return integer(size)


# -- BITFIELD --------------------------------------------------------------------------------------

_WRAP, _SAT, _FAIL = b"WRAP", b"SAT", b"FAIL"
_UINT64 = 2**64 - 1


def _field_type(text: bytes) -> tuple[bool, int]:
    """``i16`` / ``u8``: whether the field is signed, and its width."""
    signed = text[:1] in (b"i", b"I")
    if not signed and text[:1] not in (b"u", b"U"):
        raise KvError(_BAD_TYPE)
    width = parse_int(text[1:])
    if width is None or width < 1 or width > (64 if signed else 63):
        raise KvError(_BAD_TYPE)
    return signed, width


def _fit(value: int, signed: bool, width: int, overflow: bytes) -> int | None:
    """``value`` made to fit the field by the OVERFLOW rule; ``None`` to FAIL."""
    low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if low <= value <= high:
        return value
    if overflow == _FAIL:
        return None
    if overflow == _SAT:
        return high if value > high else low
    value &= (1 << width) - 1
    return value - (1 << width) if signed and value > high else value


def _bitfield(s: Client, argv: list[bytes], readonly: bool) -> bytes:
    ops: list[tuple[bytes, bool, int, int, int, bytes]] = []
    overflow = _WRAP
    writes = False
    highest = 0
    i = 2
    while i < len(argv):
        name = argv[i].upper()
        left = len(argv) - i - 1
        if name == b"OVERFLOW" and left >= 1:
            overflow = argv[i + 1].upper()
            if overflow not in (_WRAP, _SAT, _FAIL):
                raise KvError(_BAD_OVERFLOW)
            i += 2
            continue
        if not ((name == b"GET" and left >= 2) or (name in (b"SET", b"INCRBY") and left >= 3)):
            raise KvError(errors.SYNTAX)
        signed, width = _field_type(argv[i + 1])
        offset = _offset(s, argv[i + 2], width)
        number = 0
        if name != b"GET":
            writes = True
            highest = max(highest, offset + width - 1)
            number = int_arg(argv[i + 3])
        ops.append((name, signed, width, offset, number, overflow))
        i += 3 if name == b"GET" else 4
    if writes and readonly:
        raise KvError(_READONLY)
    old = (write if writes else read)(s, argv[1], bytes)
    value = bytearray(old or b"")
    if writes and len(value) <= highest >> 3:
        value.extend(bytes((highest >> 3) + 1 - len(value)))
    replies = []
    for name, signed, width, offset, number, rule in ops:
        field = _bits(value, offset, offset + width - 1)
        if signed and field >> (width - 1):
            field -= 1 << width
        if name == b"GET":
            replies.append(integer(field))
            continue
        if name == b"INCRBY":
            new = _fit(field + number, signed, width, rule)
        else:  # an unsigned field reads the number as C's uint64_t
            new = _fit(number if signed else number & _UINT64, signed, width, rule)
        if new is None:
            replies.append(NIL)
            continue
        _store_bits(value, offset, width, new & ((1 << width) - 1))
        replies.append(integer(new if name == b"INCRBY" else field))
    if writes:
        s.db.data[argv[1]] = bytes(value)  # in place: the time to live stays
    return array_header(len(replies)) + b"".join(replies)


def _store_bits(value: bytearray, offset: int, width: int, bits: int) -> None:
    first, last = offset >> 3, (offset + width - 1) >> 3
    size = last - first + 1
    tail = 8 * size - (offset & 7) - width  # bits after the field in its last byte
    chunk = int.from_bytes(value[first : last + 1], "big")
    mask = ((1 << width) - 1) << tail
    chunk = chunk & ~mask | bits << tail
    value[first : last + 1] = chunk.to_bytes(size, "big")


@command(
    "bitfield",
    -2,
    "write denyoom",
    "bitmap",
    "Performs arbitrary bitfield integer operations on strings.",
    since="3.2.0",
)
def bitfield(s: Client, argv: list[bytes]) -> bytes:
    return _bitfield(s, argv, readonly=False)


@command(
    "bitfield_ro",
    -2,
    "readonly fast",
    "bitmap",
    "Performs arbitrary read-only bitfield integer operations on strings.",
    since="6.0.0",
)
def bitfield_ro(s: Client, argv: list[bytes]) -> bytes:
    return _bitfield(s, argv, readonly=True)
