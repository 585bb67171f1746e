"""The compact encodings Redis packs small values in inside an RDB file, read back into
Python values: listpack (Redis 7 lists, hashes), ziplist (the same, before 7.0), intset
(sets of integers) and LZF (compressed strings). kv writes plain encodings (rdb.py) and
needs these only to load a dump that redis-server wrote.

Each reader takes the blob and returns the list of its elements as ``bytes`` (integers as
their decimal text, which is how kv holds them); a malformed blob raises ``ValueError``.
"""

from __future__ import annotations

import struct

from residentd.apps.kv.listpack import backlen_size


def lzf_decompress(data: bytes, expected: int) -> bytes:
    """liblzf's lzf_decompress: literal runs and back references."""
    out = bytearray()
    i = 0
    size = len(data)
    while i < size:
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            end = i + ctrl + 1
            if end > size:
                raise ValueError("LZF literal runs past the end")
            out += data[i:end]
            i = end
            continue
        length = ctrl >> 5
        if length == 7:
            if i >= size:
                raise ValueError("LZF back reference truncated")
            length += data[i]
            i += 1
        if i >= size:
            raise ValueError("LZF back reference truncated")
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        if ref < 0:
            raise ValueError("LZF back reference before the start")
        for _ in range(length + 2):  # may overlap what it copies, byte by byte
            out.append(out[ref])
            ref += 1
    if len(out) != expected:
        raise ValueError(f"LZF gave {len(out)} bytes, expected {expected}")
    return bytes(out)


def intset(blob: bytes) -> list[bytes]:
    if len(blob) < 8:
        raise ValueError("intset header truncated")
    width, count = struct.unpack_from("<II", blob)
    codes = {2: "h", 4: "i", 8: "q"}
    if width not in codes or len(blob) != 8 + width * count:
        raise ValueError("bad intset")
    return [b"%d" % n for n in struct.unpack_from(f"<{count}{codes[width]}", blob, 8)]


def listpack(blob: bytes) -> list[bytes]:
    if len(blob) < 7:
        raise ValueError("listpack header truncated")
    total, count = struct.unpack_from("<IH", blob)
    if total != len(blob) or blob[-1] != 0xFF:
        raise ValueError("bad listpack size or terminator")
    items: list[bytes] = []
    i = 6
    end = total - 1
    while i < end:
        b = blob[i]
        if b < 0x80:  # 7-bit unsigned integer
            items.append(b"%d" % b)
            size = 1
        elif b < 0xC0:  # string, 6-bit length
            length = b & 0x3F
            items.append(blob[i + 1 : i + 1 + length])
            size = 1 + length
        elif b < 0xE0:  # 13-bit signed integer
            n = ((b & 0x1F) << 8) | blob[i + 1]
            items.append(b"%d" % (n - (1 << 13) if n >= 1 << 12 else n))
            size = 2
        elif b < 0xF0:  # string, 12-bit length
            length = ((b & 0x0F) << 8) | blob[i + 1]
            items.append(blob[i + 2 : i + 2 + length])
            size = 2 + length
        elif b == 0xF0:  # string, 32-bit length
            (length,) = struct.unpack_from("<I", blob, i + 1)
            items.append(blob[i + 5 : i + 5 + length])
            size = 5 + length
        elif 0xF1 <= b <= 0xF4:
            width = {0xF1: 2, 0xF2: 3, 0xF3: 4, 0xF4: 8}[b]
            items.append(b"%d" % int.from_bytes(blob[i + 1 : i + 1 + width], "little", signed=True))
            size = 1 + width
        else:
            raise ValueError(f"bad listpack entry encoding {b:#x} at {i}")
        i += size + backlen_size(size)
    if i != end or (count != 0xFFFF and count != len(items)):
        raise ValueError("listpack entries do not match its header")
    return items


def ziplist(blob: bytes) -> list[bytes]:
    if len(blob) < 11:
        raise ValueError("ziplist header truncated")
    total, _tail, count = struct.unpack_from("<IIH", blob)
    if total != len(blob) or blob[-1] != 0xFF:
        raise ValueError("bad ziplist size or terminator")
    items: list[bytes] = []
    i = 10
    end = total - 1
    while i < end:
        i += 5 if blob[i] == 0xFE else 1  # the previous entry's length
        b = blob[i]
        top = b >> 6
        if top == 0:
            length = b & 0x3F
            i += 1
        elif top == 1:
            length = ((b & 0x3F) << 8) | blob[i + 1]
            i += 2
        elif top == 2:
            (length,) = struct.unpack_from(">I", blob, i + 1)
            i += 5
        else:
            width = {0xC0: 2, 0xD0: 4, 0xE0: 8, 0xF0: 3, 0xFE: 1}.get(b)
            if width is not None:
                raw = blob[i + 1 : i + 1 + width]
                items.append(b"%d" % int.from_bytes(raw, "little", signed=True))
                i += 1 + width
            elif 0xF1 <= b <= 0xFD:
                items.append(b"%d" % ((b & 0x0F) - 1))
                i += 1
            else:
                raise ValueError(f"bad ziplist entry encoding {b:#x} at {i}")
            continue
        items.append(blob[i : i + length])
        i += length
    if i != end or (count != 0xFFFF and count != len(items)):
        raise ValueError("ziplist entries do not match its header")
    return items
