"""The ``bit`` library (LuaBitOp 1.0, which Redis bundles): 32-bit operations on Lua numbers.

Each argument is first made a signed 32-bit integer as LuaBitOp's ``tobit`` does (rounded to
the nearest integer, then taken modulo 2^32), and so is each result.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

from residentd.apps.kv.scripting.sandbox import ScriptError


def tobit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScriptError(b"ERR bad argument to bit operation (number expected)")
    number = round(value) if isinstance(value, float) else value
    number &= 0xFFFFFFFF
    return number - (1 << 32) if number & 0x80000000 else number


def _fold(operation: Callable[[int, int], int]) -> Callable[..., int]:
    def apply(first: Any, *rest: Any) -> int:
        return tobit(reduce(operation, map(tobit, rest), tobit(first)))

    return apply


def _shift(operation: Callable[[int, int], int]) -> Callable[[Any, Any], int]:
    def apply(value: Any, count: Any) -> int:
        return tobit(operation(tobit(value), tobit(count) & 31))

    return apply


def tohex(value: Any, digits: Any = 8) -> bytes:
    count = tobit(digits)
    upper = count < 0
    count = min(abs(count), 8) or 8
    text = b"%0*x" % (count, tobit(value) & ((1 << (4 * count)) - 1))
    return text.upper() if upper else text


def _rol(value: int, count: int) -> int:
    value &= 0xFFFFFFFF
    return (value << count) | (value >> (32 - count)) if count else value


def _ror(value: int, count: int) -> int:
    return _rol(value, (32 - count) & 31)


def bswap(value: Any) -> int:
    return tobit(int.from_bytes((tobit(value) & 0xFFFFFFFF).to_bytes(4, "little"), "big"))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "tobit": tobit,
    "tohex": tohex,
    "bnot": lambda value: tobit(~tobit(value)),
    "band": _fold(lambda a, b: a & b),
    "bor": _fold(lambda a, b: a | b),
    "bxor": _fold(lambda a, b: a ^ b),
    "lshift": _shift(lambda a, n: a << n),
    "rshift": _shift(lambda a, n: (a & 0xFFFFFFFF) >> n),
    "arshift": _shift(lambda a, n: a >> n),
    "rol": _shift(_rol),
    "ror": _shift(_ror),
    "bswap": bswap,
}
