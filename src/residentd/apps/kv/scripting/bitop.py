"""The ``bit`` library (LuaBitOp 1.0, which Redis bundles): 32-bit operations on Lua numbers.

Each argument is made a signed 32-bit integer as LuaBitOp's ``tobit`` does (a number, or a
string that reads as one, rounded to the nearest integer, then taken modulo 2^32), and so is
each result. A bad argument is refused in Lua's words: "bad argument #1 to 'band' (number
expected, got string)".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce
from typing import Any

import lupa.lua51 as lupa

from residentd.apps.kv.scripting.sandbox import LibraryError


def lua_type_name(value: Any) -> str:
    """Lua's name of a value's type, as ``type()`` gives it."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, bytes):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return lupa.lua_type(value) or "userdata"


def _number(name: str, args: tuple[Any, ...], index: int) -> int:
    """Argument ``index`` (from 0) of ``name`` as a signed 32-bit integer."""
    value = args[index] if index < len(args) else None
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = value
    elif isinstance(value, bytes):
        try:
            number = float(value) if not value.strip().lower().startswith(b"0x") else int(value, 16)
        except ValueError:
            number = None
    if number is None or number != number:
        got = "no value" if index >= len(args) else lua_type_name(value)
        raise LibraryError(
            b"bad argument #%d to '%b' (number expected, got %b)"
            % (index + 1, name.encode(), got.encode())
        )
    return _wrap(round(number) if isinstance(number, float) else number)


def _wrap(number: int) -> int:
    number &= 0xFFFFFFFF
    return number - (1 << 32) if number & 0x80000000 else number


def _unary(name: str, operation: Callable[[int], int]) -> Callable[..., int]:
    return lambda *args: _wrap(operation(_number(name, args, 0)))


def _fold(name: str, operation: Callable[[int, int], int]) -> Callable[..., int]:
    def apply(*args: Any) -> int:
        values = [_number(name, args, i) for i in range(max(len(args), 1))]
        return _wrap(reduce(operation, values))

    return apply


def _shift(name: str, operation: Callable[[int, int], int]) -> Callable[..., int]:
    def apply(*args: Any) -> int:
        value, count = _number(name, args, 0), _number(name, args, 1) & 31
        return _wrap(operation(value, count))

    return apply


def _tohex(*args: Any) -> bytes:
    value = _number("tohex", args, 0)
    count = _number("tohex", args, 1) if len(args) > 1 and args[1] is not None else 8
    upper = count < 0
    count = min(abs(count), 8)
    text = b"%0*x" % (count, value & ((1 << (4 * count)) - 1)) if count else b""
    return text.upper() if upper else text


def _rol(value: int, count: int) -> int:
    value &= 0xFFFFFFFF
    return (value << count) | (value >> (32 - count)) if count else value


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "tobit": _unary("tobit", lambda value: value),
    "tohex": _tohex,
    "bnot": _unary("bnot", lambda value: ~value),
    "bswap": _unary(
        "bswap", lambda value: int.from_bytes((value & 0xFFFFFFFF).to_bytes(4, "little"), "big")
    ),
    "band": _fold("band", lambda a, b: a & b),
    "bor": _fold("bor", lambda a, b: a | b),
    "bxor": _fold("bxor", lambda a, b: a ^ b),
    "lshift": _shift("lshift", lambda a, n: a << n),
    "rshift": _shift("rshift", lambda a, n: (a & 0xFFFFFFFF) >> n),
    "arshift": _shift("arshift", lambda a, n: a >> n),
    "rol": _shift("rol", _rol),
    "ror": _shift("ror", lambda a, n: _rol(a, (32 - n) & 31)),
}
