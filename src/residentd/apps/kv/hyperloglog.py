"""HyperLogLog as Redis 7.0 stores it (hyperloglog.c), byte for byte: an HLL is a string value,
so GET returns these bytes and a client may SET them back or move them between servers.

    "HYLL"  encoding (0 dense, 1 sparse)  3 unused bytes  cached cardinality (8 bytes, LE)

then the registers: 16384 of them, 6 bits each, indexed by the low 14 bits of the element's
MurmurHash64A (seed 0xadc83b19); a register holds the longest run of zeros (plus one) seen in
the other 50 bits. The top bit of the cache's last byte set means the cache is stale.

* dense: the registers packed little-endian, 12288 bytes;
* sparse (every HLL starts so): run-length opcodes, ZERO ``00xxxxxx`` (1 to 64 zero
  registers), XZERO ``01xxxxxx yyyyyyyy`` (1 to 16384 of them) and VAL ``1vvvvvxx`` (1 to 4
  registers of value 1 to 32). An update splits the opcode it lands in and merges equal
  neighbouring VALs as Redis's ``hllSparseSet`` does, step for step, so the bytes stay
  Redis's whatever the order of adds. A value over 32, or a string growing past
  ``SPARSE_MAX_BYTES`` (hll-sparse-max-bytes), promotes it to dense.

The count is Redis 5's estimator (Ertl's, with the tau and sigma corrections), computed in the
same double-precision steps so that PFCOUNT answers Redis's numbers exactly.

``HllError`` says a sparse HLL is corrupted (Redis's INVALIDOBJ).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from residentd.errors import ResidentdError
from residentd.speedups import choose

P = 14
Q = 64 - P
REGISTERS = 1 << P
P_MASK = REGISTERS - 1
HEADER = 16
DENSE_SIZE = HEADER + REGISTERS * 6 // 8
DENSE, SPARSE = 0, 1
SPARSE_MAX_BYTES = 3000  # hll-sparse-max-bytes
VAL_MAX_VALUE = 32
VAL_MAX_LEN = 4
ZERO_MAX_LEN = 64
XZERO_MAX_LEN = 16384
ALPHA_INF = 0.721347520444481703680  # 0.5 / ln(2)
SEED = 0xADC83B19
MASK64 = (1 << 64) - 1
MURMUR_M = 0xC6A4A7935BD1E995

EMPTY = b"HYLL" + bytes((SPARSE,)) + bytes(11) + b"\x7f\xff"  # one XZERO of 16384


class HllError(ResidentdError, ValueError):
    """A sparse HLL whose opcodes do not cover exactly 16384 registers (the C version raises
    a plain ValueError)."""


# -- hashing ------------------------------------------------------------------------------------


def murmurhash64a(data: bytes, seed: int = SEED) -> int:
    """MurmurHash2, 64-bit version, as Redis reads it on any byte order."""
    m = MURMUR_M
    size = len(data)
    h = (seed ^ (size * m)) & MASK64
    tail = size & ~7
    for i in range(0, tail, 8):
        k = int.from_bytes(data[i : i + 8], "little") * m & MASK64
        k ^= k >> 47
        h = (h ^ (k * m & MASK64)) * m & MASK64
    if size & 7:
        h = (h ^ int.from_bytes(data[tail:], "little")) * m & MASK64
    h ^= h >> 47
    h = h * m & MASK64
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple[int, int]:
    """hllPatLen: (register index, length of the 000..1 run in the remaining bits)."""
    h = murmurhash64a(element)
    rest = (h >> P) | (1 << Q)
    return h & P_MASK, (rest & -rest).bit_length()


# -- the header ---------------------------------------------------------------------------------


def is_hll(value: bytes) -> bool:
    """isHLLObjectOrReply's checks: magic, a known encoding, a dense one of the right size."""
    if len(value) < HEADER or value[:4] != b"HYLL" or value[4] > SPARSE:
        return False
    return value[4] != DENSE or len(value) == DENSE_SIZE


def cached_count(hll: bytes | bytearray) -> int | None:
    """The cardinality in the header, or ``None`` when it is stale."""
    if hll[15] & 0x80:
        return None
    return int.from_bytes(hll[8:16], "little")


def set_cache(hll: bytearray, count: int) -> None:
    hll[8:16] = count.to_bytes(8, "little")


def invalidate(hll: bytearray) -> None:
    hll[15] |= 0x80


# -- registers ------------------------------------------------------------------------------------


def dense_registers(hll: bytes | bytearray) -> list[int]:
    """The 16384 registers of a dense HLL, 4 from each 3 bytes."""
    out: list[int] = []
    extend = out.extend
    data = hll[HEADER:DENSE_SIZE]
    for i in range(0, len(data), 3):
        word = data[i] | data[i + 1] << 8 | data[i + 2] << 16
        extend((word & 63, word >> 6 & 63, word >> 12 & 63, word >> 18))
    return out


def sparse_registers(hll: bytes | bytearray) -> list[int]:
    """The registers a sparse HLL encodes; ``HllError`` unless it covers exactly 16384."""
    out: list[int] = []
    p, end = HEADER, len(hll)
    while p < end:
        op = hll[p]
        if op & 0x80:
            run = (op & 3) + 1
            if len(out) + run > REGISTERS:
                break
            out.extend([((op >> 2) & 0x1F) + 1] * run)
            p += 1
        elif op & 0x40:
            if p + 1 >= end:
                raise HllError("XZERO opcode cut short")
            out.extend([0] * ((((op & 0x3F) << 8) | hll[p + 1]) + 1))
            p += 2
        else:
            out.extend([0] * ((op & 0x3F) + 1))
            p += 1
    if len(out) != REGISTERS:
        raise HllError("sparse HLL does not cover every register")
    return out


def registers_python(hll: bytes | bytearray) -> Sequence[int]:
    """The 16384 registers of an HLL (whose header was checked)."""
    return dense_registers(hll) if hll[4] == DENSE else sparse_registers(hll)


registers = choose("residentd.apps.kv._hyperloglog", "registers", registers_python)


def _dense_get(hll: bytearray, index: int) -> int:
    byte = HEADER + index * 6 // 8
    shift = index * 6 & 7
    word = hll[byte] | (hll[byte + 1] << 8 if byte + 1 < DENSE_SIZE else 0)
    return (word >> shift) & 63


def _dense_set(hll: bytearray, index: int, value: int) -> None:
    byte = HEADER + index * 6 // 8
    shift = index * 6 & 7
    hll[byte] = (hll[byte] & ~(63 << shift) | value << shift) & 0xFF
    if shift > 2:
        hll[byte + 1] = hll[byte + 1] & ~(63 >> (8 - shift)) | value >> (8 - shift)


def to_dense(hll: bytearray) -> None:
    """hllSparseToDense, in place: the header (cache included) kept, the encoding changed."""
    if hll[4] == DENSE:
        return
    values = sparse_registers(hll)
    dense = bytearray(hll[:HEADER]) + bytes(DENSE_SIZE - HEADER)
    dense[4] = DENSE
    for index, value in enumerate(values):
        if value:
            _dense_set(dense, index, value)
    hll[:] = dense


def write_dense(hll: bytearray, values: list[int]) -> None:
    """Pack ``values`` as the registers of a dense HLL (its header kept)."""
    packed = bytearray(DENSE_SIZE - HEADER)
    for i in range(0, REGISTERS, 4):
        a, b, c, d = values[i : i + 4]
        word = a | b << 6 | c << 12 | d << 18
        j = i // 4 * 3
        packed[j] = word & 0xFF
        packed[j + 1] = word >> 8 & 0xFF
        packed[j + 2] = word >> 16
    hll[HEADER:] = packed


# -- updating -------------------------------------------------------------------------------------


def _zero_run(length: int) -> bytes:
    if length > ZERO_MAX_LEN:
        length -= 1
        return bytes((length >> 8 | 0x40, length & 0xFF))
    return bytes((length - 1,))


def _val(value: int, length: int) -> int:
    return (value - 1) << 2 | (length - 1) | 0x80


def set_register(hll: bytearray, index: int, count: int) -> bool:
    """Raise register ``index`` to ``count`` if it is lower (hllDenseSet / hllSparseSet);
    returns whether it changed. Sparse HLLs may be promoted to dense on the way."""
    if hll[4] == DENSE:
        if _dense_get(hll, index) >= count:
            return False
        _dense_set(hll, index, count)
        return True
    if count > VAL_MAX_VALUE:
        return _promote(hll, index, count)
    # Step 1: the opcode covering ``index``.
    p, end = HEADER, len(hll)
    first = span = 0
    prev = -1
    while p < end:
        op = hll[p]
        oplen = 1
        if not op & 0xC0:
            span = (op & 0x3F) + 1
        elif op & 0x80:
            span = (op & 3) + 1
        else:
            if p + 1 >= end:
                raise HllError("XZERO opcode cut short")
            span = (((op & 0x3F) << 8) | hll[p + 1]) + 1
            oplen = 2
        if index <= first + span - 1:
            break
        prev = p
        p += oplen
        first += span
    if span == 0 or p >= end:
        raise HllError("sparse HLL does not cover every register")
    op = hll[p]
    is_val = bool(op & 0x80)
    is_xzero = not is_val and bool(op & 0x40)
    is_zero = not is_val and not is_xzero
    # Step 2: the trivial cases.
    if is_val:
        old = ((op >> 2) & 0x1F) + 1
        if old >= count:
            return False
        if span == 1:
            hll[p] = _val(count, 1)
            _merge(hll, prev)
            return True
    if is_zero and span == 1:
        hll[p] = _val(count, 1)
        _merge(hll, prev)
        return True
    # Step 3: split the opcode into up to three.
    last = first + span - 1
    if is_val:
        current = ((op >> 2) & 0x1F) + 1
        seq = bytearray()
        if index != first:
            seq.append(_val(current, index - first))
        seq.append(_val(count, 1))
        if index != last:
            seq.append(_val(current, last - index))
    else:
        seq = bytearray(_zero_run(index - first) if index != first else b"")
        seq.append(_val(count, 1))
        if index != last:
            seq += _zero_run(last - index)
    oldlen = 2 if is_xzero else 1
    if len(seq) - oldlen > 0 and len(hll) + len(seq) - oldlen > SPARSE_MAX_BYTES:
        return _promote(hll, index, count)
    hll[p : p + oldlen] = seq
    _merge(hll, prev)
    return True


def _merge(hll: bytearray, prev: int) -> None:
    """Step 4: merge equal neighbouring VALs, scanning up to 5 opcodes from ``prev``."""
    p = prev if prev >= 0 else HEADER
    scan = 5
    while p < len(hll) and scan:
        scan -= 1
        op = hll[p]
        if not op & 0x80:
            p += 2 if op & 0x40 else 1
            continue
        if p + 1 < len(hll) and hll[p + 1] & 0x80:
            following = hll[p + 1]
            if (op >> 2) & 0x1F == (following >> 2) & 0x1F:
                length = (op & 3) + (following & 3) + 2
                if length <= VAL_MAX_LEN:
                    del hll[p]
                    hll[p] = _val(((op >> 2) & 0x1F) + 1, length)
                    continue
        p += 1
    invalidate(hll)


def _promote(hll: bytearray, index: int, count: int) -> bool:
    to_dense(hll)
    _dense_set(hll, index, count)
    return True


def add(hll: bytearray, element: bytes) -> bool:
    """PFADD of one element; whether a register changed."""
    index, count = pattern(element)
    return set_register(hll, index, count)


def add_all_python(hll: bytearray, elements: list[bytes]) -> bool:
    """PFADD of ``elements``, in order; whether any register changed."""
    changed = False
    for element in elements:
        if add(hll, element):
            changed = True
    return changed


add_all = choose("residentd.apps.kv._hyperloglog", "add_all", add_all_python)


# -- counting -------------------------------------------------------------------------------------


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        z_prime = z
        z += x * y
        y += y
        if z_prime == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        z_prime = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if z_prime == z:
            return z / 3


def estimate(values: Iterable[int]) -> int:
    """hllCount: Ertl's improved estimator over the register histogram."""
    histogram = [0] * 64
    for value in values:
        histogram[value] += 1
    m = float(REGISTERS)
    z = m * _tau((m - histogram[Q + 1]) / m)
    for j in range(Q, 0, -1):
        z += histogram[j]
        z *= 0.5
    z += m * _sigma(histogram[0] / m)
    e = ALPHA_INF * m * m / z
    whole = math.floor(e)
    return int(whole) + (1 if e - whole >= 0.5 else 0)  # llroundl


def count(hll: bytearray) -> int:
    """PFCOUNT of one HLL: the cached value, or a fresh one written to the cache."""
    cached = cached_count(hll)
    if cached is not None:
        return cached
    result = estimate(registers(hll))
    set_cache(hll, result)
    return result
