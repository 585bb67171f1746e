"""Redis's ``long double`` arithmetic (INCRBYFLOAT, HINCRBYFLOAT), reproduced exactly.

Redis adds floats as C ``long double``, which on x86-64 is the x87 80-bit extended format: a
64-bit significand, exponents down to 2**-16382 (2**-16445 with subnormals) and up to 2**16383.
Python's ``float`` has a 53-bit significand, so ``10.5 + 0.1`` would print ``10.59999...``
where Redis prints ``10.6``. Here a value is an exact ``Fraction``, rounded to the nearest
extended value (ties to even, as the FPU does) after parsing and after each addition, and
printed as Redis's ``ld2string(..., LD_STR_HUMAN)`` does: glibc's exactly rounded ``%.17Lf``
with the trailing zeros (and a bare point) removed, and ``-0`` written ``0``.

``parse`` follows ``string2ld`` (util.c): ``strtold`` reading every byte (so no NUL), with
no leading space, nothing left over, no NaN, and no result that overflowed or underflowed to
zero; decimal and hexadecimal forms and ``inf``/``infinity`` are accepted, as glibc does.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import TypeGuard

# MAX_LONG_DOUBLE_CHARS: string2ld refuses anything this long or longer.
MAX_CHARS = 5 * 1024

_SIGNIFICAND_BITS = 64
_MIN_EXPONENT = -16445  # the quantum of the subnormals
_LIMIT = Fraction(2**16384)  # the first value past the largest finite one

_DECIMAL = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?")
_INFINITY = re.compile(rb"([+-]?)(?:inf|infinity)", re.IGNORECASE)

INFINITY = float("inf")
ZERO = Fraction(0)

# Python refuses decimal conversions of ints past 4300 digits (sys.get_int_max_str_digits);
# a long double near its largest has 4933, so they go by pieces of this many digits.
_PIECE = 4000

Value = Fraction | float  # a float only for an infinity


def round_extended(exact: Fraction) -> Value:
    """``exact`` rounded to the nearest x87 extended value (an infinity past the largest)."""
    if not exact:
        return exact
    size = abs(exact)
    exponent = size.numerator.bit_length() - size.denominator.bit_length()
    if Fraction(2) ** exponent > size:
        exponent -= 1  # now 2**exponent <= size < 2**(exponent + 1)
    quantum = max(exponent - _SIGNIFICAND_BITS + 1, _MIN_EXPONENT)
    units = round(size / Fraction(2) ** quantum)  # round() on a Fraction: ties to even
    rounded = units * Fraction(2) ** quantum
    if rounded >= _LIMIT:
        return INFINITY if exact > 0 else -INFINITY
    return rounded if exact > 0 else -rounded


def parse(text: bytes) -> Value | None:
    """The value ``string2ld`` reads from ``text``, or ``None`` where it fails."""
    if not text or len(text) >= MAX_CHARS:
        return None
    if b"\0" in text or text[:1].isspace():  # strtold stops at a NUL: not all of it was read
        return None
    if _INFINITY.fullmatch(text):
        return -INFINITY if text[:1] == b"-" else INFINITY
    hexadecimal = _HEX.fullmatch(text)
    if hexadecimal is not None:
        sign, whole, fraction, power = hexadecimal.groups()
        digits, base, scale = whole + (fraction or b""), 16, 2
        shift = int(power or b"0") - 4 * len(fraction or b"")
    else:
        decimal = _DECIMAL.fullmatch(text)
        if decimal is None:
            return None
        sign, whole, fraction, power = decimal.groups()
        digits, base, scale = whole + (fraction or b""), 10, 10
        shift = int(power or b"0") - len(fraction or b"")
    if not digits:
        return None  # a sign, a point or an exponent without any digit
    significand = int(digits, 16) if base == 16 else _from_decimal(digits)
    if not significand:
        return Fraction(0)
    # Far outside the format (where the exact value would be huge to build): an overflow
    # or an underflow to zero, both refused by string2ld.
    magnitude = significand.bit_length() + shift * math.log2(scale)
    if not -16500 < magnitude < 16400:
        return None
    exact = Fraction(significand) * Fraction(scale) ** shift
    value = round_extended(-exact if sign == b"-" else exact)
    if isinstance(value, float) or not value:
        return None
    return value


def add(value: Value, increment: Value) -> Value:
    """``value + increment`` as the FPU gives it (NaN for opposite infinities). A finite
    value beside an infinity is left out: it may be past a float's range (1e400)."""
    if isinstance(value, float):
        return value + increment if isinstance(increment, float) else value
    if isinstance(increment, float):
        return increment
    return round_extended(value + increment)


def is_finite(value: Value) -> TypeGuard[Fraction]:
    return not isinstance(value, float)


def human(value: Fraction) -> bytes:
    """``ld2string(value, LD_STR_HUMAN)``: ``%.17Lf`` without trailing zeros, ``-0`` as 0."""
    units = round(abs(value) * 10**17)
    digits = _to_decimal(units).rjust(18, b"0")
    text = digits[:-17] + b"." + digits[-17:]
    text = text.rstrip(b"0").rstrip(b".")
    if value < 0 and text != b"0":
        text = b"-" + text
    return text


def _from_decimal(digits: bytes) -> int:
    value = 0
    for start in range(0, len(digits), _PIECE):
        piece = digits[start : start + _PIECE]
        value = value * 10 ** len(piece) + int(piece)
    return value


def _to_decimal(value: int) -> bytes:
    if value < 10**_PIECE:
        return b"%d" % value
    high, low = divmod(value, 10**_PIECE)
    return _to_decimal(high) + b"%0*d" % (_PIECE, low)
