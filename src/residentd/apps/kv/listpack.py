"""Redis's listpack, as far as kv needs it to write one: the size each element takes and the
encoding of a whole listpack (``lpAppend``), for the stream nodes (stream.py) and their RDB
form. Reading one back is persistence/encodings.py's ``listpack``.

An element is an integer (7, 13, 16, 24, 32 or 64 bits) or a string (6, 12 or 32-bit
length), followed by its own length backwards (1 to 5 bytes); a string that is the canonical
text of a 64-bit integer is stored as that integer, as ``lpEncodeGetType`` does.
"""

from __future__ import annotations

import struct

HEADER = 7  # 4 bytes total size, 2 bytes element count, and the 0xFF terminator
_INT64 = (-(1 << 63), (1 << 63) - 1)


def as_int(value: bytes) -> int | None:
    """The integer ``value`` is the canonical text of (lpStringToInt64), if any."""
    if not 0 < len(value) <= 20:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    if b"%d" % n != value or not _INT64[0] <= n <= _INT64[1]:
        return None
    return n


def backlen_size(size: int) -> int:
    """How many bytes an element's back length takes (lpEncodeBacklen)."""
    if size <= 127:
        return 1
    if size < 16383:
        return 2
    if size < 2097151:
        return 3
    return 4 if size < 268435455 else 5


def _int_encoded(n: int) -> int:
    if 0 <= n <= 127:
        return 1
    if -4096 <= n <= 4095:
        return 2
    if -32768 <= n <= 32767:
        return 3
    if -8388608 <= n <= 8388607:
        return 4
    return 5 if -(1 << 31) <= n < (1 << 31) else 9


def int_size(n: int) -> int:
    """Bytes an integer element takes, its back length included."""
    size = _int_encoded(n)
    return size + backlen_size(size)


def string_size(value: bytes) -> int:
    """Bytes a string element takes (as an integer if it is one)."""
    n = as_int(value)
    if n is not None:
        return int_size(n)
    length = len(value)
    size = length + (1 if length < 64 else 2 if length < 4096 else 5)
    return size + backlen_size(size)


def _encode_backlen(size: int) -> bytes:
    out = [size & 127]
    size >>= 7
    while size:
        out.append((size & 127) | 128)
        size >>= 7
    return bytes(reversed(out))


def _encode_int(n: int) -> bytes:
    width = _int_encoded(n)
    if width == 1:
        return bytes((n,))
    if width == 2:
        u = n & 0x1FFF
        return bytes((0xC0 | (u >> 8), u & 0xFF))
    tag = {3: 0xF1, 4: 0xF2, 5: 0xF3, 9: 0xF4}[width]
    return bytes((tag,)) + n.to_bytes(width - 1, "little", signed=True)


def _encode_element(item: bytes | int) -> bytes:
    n = item if isinstance(item, int) else as_int(item)
    if n is not None:
        data = _encode_int(n)
    else:
        assert isinstance(item, bytes)
        length = len(item)
        if length < 64:
            data = bytes((0x80 | length,)) + item
        elif length < 4096:
            data = bytes((0xE0 | (length >> 8), length & 0xFF)) + item
        else:
            data = b"\xf0" + struct.pack("<I", length) + item
    return data + _encode_backlen(len(data))


def encode(items: list[bytes | int]) -> bytes:
    """A whole listpack holding ``items``."""
    body = b"".join(_encode_element(item) for item in items)
    return struct.pack("<IH", len(body) + HEADER, min(len(items), 0xFFFF)) + body + b"\xff"
