"""Redis's conversions between command replies and Lua values (``script_lua.c``).

A reply to ``redis.call`` becomes, in Lua: an integer a number, a bulk string a string, a
nil bulk or nil array ``false``, an array a table (its elements converted the same way), a
status the table ``{ok=...}``, an error the table ``{err=...}``.

A script's result becomes a reply: a number an integer (truncated toward zero), a string a
bulk string, ``true`` the integer 1, ``false`` and ``nil`` a nil bulk, a table with a string
``err`` field an error and one with a string ``ok`` field a status (their CR and LF turned
into spaces), any other table an array of its elements from 1 up to the first nil.
"""

from __future__ import annotations

from typing import Any

import lupa.lua51 as lupa

NIL = b"$-1\r\n"


def to_lua(reply: bytes, table: Any) -> Any:
    """The Lua value of one RESP2 reply; ``table`` makes a Lua table from a list or dict."""
    value, _ = _parse(reply, 0, table)
    return value


def _parse(data: bytes, position: int, table: Any) -> tuple[Any, int]:
    kind = data[position]
    end = data.index(b"\r\n", position)
    line = data[position + 1 : end]
    position = end + 2
    if kind == 0x3A:  # :
        return int(line), position
    if kind == 0x24:  # $
        size = int(line)
        if size < 0:
            return False, position
        return data[position : position + size], position + size + 2
    if kind == 0x2B:  # +
        return table({b"ok": line}), position
    if kind == 0x2D:  # -
        return table({b"err": line}), position
    count = int(line)
    if count < 0:
        return False, position
    items = []
    for _ in range(count):
        item, position = _parse(data, position, table)
        items.append(item)
    return table(items), position


def _line(text: bytes) -> bytes:
    return text.replace(b"\r", b" ").replace(b"\n", b" ")


def to_reply(value: Any) -> bytes:
    """The RESP2 reply of a script's result."""
    if value is None or value is False:
        return NIL
    if value is True:
        return b":1\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if isinstance(value, int | float):
        return b":%d\r\n" % _integer(value)
    if lupa.lua_type(value) != "table":
        return NIL
    error = value[b"err"]
    if isinstance(error, bytes):
        return b"-" + _line(error) + b"\r\n"
    status = value[b"ok"]
    if isinstance(status, bytes):
        return b"+" + _line(status) + b"\r\n"
    parts = []
    index = 1
    while True:
        item = value[index]
        if item is None:
            break
        parts.append(to_reply(item))
        index += 1
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def _integer(number: float) -> int:
    """C's ``(long long)`` of a Lua number (undefined past the range: Redis's x86 gives the
    lowest value, as here)."""
    if number != number or not -(2**63) <= number < 2**63:
        return -(2**63)
    return int(number)
