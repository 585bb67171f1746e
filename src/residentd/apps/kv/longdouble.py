"""x86 ``long double`` arithmetic, exactly, for INCRBYFLOAT (and HINCRBYFLOAT).

Redis parses these operands with ``strtold``, adds them in the 80-bit extended format (a
64-bit significand) and prints the sum with ``"%.17Lf"`` less its trailing zeros. Python's
``float`` has a 53-bit significand, so sums would differ in the last digits; instead each value
is an exact ``Fraction`` rounded to the extended format's precision, the way the FPU rounds
(to nearest, ties to even), and printed by rounding the exact value to 17 decimals, as glibc's
``printf`` does.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_SIGNIFICAND = 64
_MIN_EXPONENT = -16382  # of the smallest normal number; below it precision shrinks
_MAX = Fraction((1 << _SIGNIFICAND) - 1) * 2 ** (16383 - 63)
_MAX_CHARS = 5 * 1024  # MAX_LONG_DOUBLE_CHARS
_DECIMAL = re.compile(rb"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\Z")
_HEX = re.compile(rb"([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?\d+))?\Z")
_INFINITY = re.compile(rb"[+-]?(inf|infinity)\Z", re.IGNORECASE)


def round_extended(value: Fraction) -> Fraction | None:
    """``value`` rounded to the nearest long double, or ``None`` past the largest."""
    if value == 0:
        return value
    size = abs(value)
    exponent = size.numerator.bit_length() - size.denominator.bit_length()
    if Fraction(2) ** exponent > size:
        exponent -= 1
    exponent = max(exponent, _MIN_EXPONENT)
    scale = Fraction(2) ** (_SIGNIFICAND - 1 - exponent)
    rounded = Fraction(round(size * scale)) / scale
    if rounded > _MAX:
        return None
    return rounded if value > 0 else -rounded


def parse(text: bytes) -> Fraction | float | None:
    """``text`` as Redis's ``getLongDoubleFromObject`` reads it: a long double, a float
    infinity, or ``None`` if it is not one (spaces, junk, NaN, out of range)."""
    if len(text) > _MAX_CHARS:
        return None
    if _INFINITY.match(text):
        return -math.inf if text[:1] == b"-" else math.inf
    match = _DECIMAL.match(text)
    base, digit_bits = 10, 0
    if match is None:
        match = _HEX.match(text)
        base, digit_bits = 2, 4
    if match is None:
        return None
    sign, whole, fraction, exponent = match.groups()
    if not whole and not fraction:
        return None
    digits = (whole + (fraction or b"")).lstrip(b"0")
    if not digits:
        return Fraction(0)
    # A decimal's power of ten, or a hexadecimal's power of two.
    power = _exponent(exponent or b"0") - len(fraction or b"") * (digit_bits or 1)
    # Beyond these the result is out of range either way (ERANGE): no need to build it.
    magnitude = power + len(digits) * (digit_bits or 1)
    limit = 4940 if base == 10 else 16400
    if not -limit - 30 < magnitude < limit:
        return None
    number = int(digits, 16) if digit_bits else _from_decimal(digits)
    value = round_extended(Fraction(number) * Fraction(base) ** power)
    if value is None or value == 0:
        return None  # overflow or underflow to zero: ERANGE
    return -value if sign == b"-" else value


def add(a: Fraction | float, b: Fraction | float) -> Fraction | None:
    """The long double sum, or ``None`` if it is infinite or NaN."""
    if isinstance(a, float) or isinstance(b, float):
        return None
    return round_extended(a + b)


def format_fixed(value: Fraction) -> bytes:
    """``"%.17Lf"`` with the trailing zeros (and a bare point) removed, ``-0`` as ``0``."""
    scaled = abs(round(value * 10**17))
    whole, fraction = divmod(scaled, 10**17)
    sign = b"-" if value < 0 else b""
    text = (b"%s%b.%017d" % (sign, _decimal(whole), fraction)).rstrip(b"0").rstrip(b".")
    return b"0" if text == b"-0" else text


_CHUNK = 10**4000  # Python prints at most 4300 digits at a time


def _decimal(number: int) -> bytes:
    """``number`` (not negative) in decimal, however long."""
    if number < _CHUNK:
        return b"%d" % number
    high, low = divmod(number, _CHUNK)
    return _decimal(high) + (b"%d" % low).rjust(4000, b"0")


def _from_decimal(digits: bytes) -> int:
    """The integer of a decimal digit string, however long."""
    if len(digits) <= 4000:
        return int(digits)
    return _from_decimal(digits[:-4000]) * _CHUNK + int(digits[-4000:])


def _exponent(text: bytes) -> int:
    """An exponent's digits, capped far beyond any long double's range."""
    digits = text.lstrip(b"+-").lstrip(b"0")
    value = int(digits) if 0 < len(digits) <= 9 else (10**9 if digits else 0)
    return -value if text[:1] == b"-" else value
