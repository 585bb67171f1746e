"""Redis's conversions between command replies and Lua values (``script_lua.c``).

A reply to ``redis.call`` becomes, in Lua: an integer a number, a bulk string a string, a
nil bulk or nil array ``false``, an array a table (its elements converted the same way), a
status the table ``{ok=...}``, an error the table ``{err=...}``. After ``redis.setresp(3)``
the script gets the RESP3 reply instead: a null is ``nil``, a map ``{map={k=v, ...}}``, a set
``{set={member=true, ...}}``, a double ``{double=n}``, a boolean a boolean, a big number
``{big_number=s}``, verbatim text ``{verbatim_string={format=f, string=s}}``.

A script's result becomes a reply in the caller's protocol: a number an integer (truncated
toward zero), a string a bulk string, ``nil`` a null, ``true`` the integer 1 and ``false`` a
null (after ``setresp(3)``: RESP3's booleans, or 1 and 0 for a RESP2 caller); a table with a
string ``err`` field an error, a string ``ok`` a status (CR and LF turned into spaces), a
number ``double`` a double, a string ``big_number`` a big number, a table ``map`` a map, a
table ``set`` a set, a table ``verbatim_string`` verbatim text (each a plain bulk string or
array for a RESP2 caller); any other table an array of its elements from 1 up to the first
nil.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lupa.lua51 as lupa

Table = Callable[[Any], Any]  # a Lua table from a list or a dict


def to_lua(reply: bytes, table: Table) -> Any:
    """The Lua value of one reply (RESP2 or RESP3)."""
    value, _ = _parse(reply, 0, table)
    return value


def _parse(data: bytes, position: int, table: Table) -> tuple[Any, int]:
    kind = data[position]
    end = data.index(b"\r\n", position)
    line = data[position + 1 : end]
    position = end + 2
    if kind == 0x3A:  # :
        return int(line), position
    if kind in (0x24, 0x3D):  # $, = (verbatim)
        size = int(line)
        if size < 0:
            return False, position
        text = data[position : position + size]
        if kind == 0x3D:
            text = table({b"format": text[:3], b"string": text[4:]})
            text = table({b"verbatim_string": text})
        return text, position + size + 2
    if kind == 0x2B:  # +
        return table({b"ok": line}), position
    if kind == 0x2D:  # -
        return table({b"err": line}), position
    if kind == 0x5F:  # _
        return None, position
    if kind == 0x23:  # #
        return line == b"t", position
    if kind == 0x2C:  # ,
        return table({b"double": float(line)}), position
    if kind == 0x28:  # (
        return table({b"big_number": line}), position
    count = int(line)
    if count < 0:
        return False, position
    if kind == 0x25:  # %: a map
        entries = {}
        for _ in range(count):
            key, position = _parse(data, position, table)
            entries[key], position = _parse(data, position, table)
        return table({b"map": table(entries)}), position
    items = []
    for _ in range(count):
        item, position = _parse(data, position, table)
        items.append(item)
    if kind == 0x7E:  # ~: a set
        return table({b"set": table(dict.fromkeys(items, True))}), position
    return table(items), position  # an array, or a push


def _line(text: bytes) -> bytes:
    return text.replace(b"\r", b" ").replace(b"\n", b" ")


def to_reply(value: Any, resp: int = 2, script_resp: int = 2) -> bytes:
    """The reply of a script's result to a caller speaking ``resp``, from a script whose
    ``redis.setresp`` is ``script_resp``."""
    null = b"$-1\r\n" if resp == 2 else b"_\r\n"
    if value is None:
        return null
    if isinstance(value, bool):
        if script_resp == 2:
            return b":1\r\n" if value else null
        if resp == 2:
            return b":1\r\n" if value else b":0\r\n"
        return b"#t\r\n" if value else b"#f\r\n"
    if isinstance(value, bytes):
        return b"$%d\r\n%b\r\n" % (len(value), value)
    if isinstance(value, int | float):
        return b":%d\r\n" % _integer(value)
    if lupa.lua_type(value) != "table":
        return null
    return _table(value, resp, script_resp)


def _table(value: Any, resp: int, script_resp: int) -> bytes:
    field = value[b"err"]
    if isinstance(field, bytes):
        return b"-" + _line(field) + b"\r\n"
    field = value[b"ok"]
    if isinstance(field, bytes):
        return b"+" + _line(field) + b"\r\n"
    field = value[b"double"]
    if isinstance(field, int | float) and not isinstance(field, bool):
        text = b"%.17g" % field
        return b",%b\r\n" % text if resp == 3 else b"$%d\r\n%b\r\n" % (len(text), text)
    field = value[b"big_number"]
    if isinstance(field, bytes):
        text = _line(field)
        return b"(%b\r\n" % text if resp == 3 else b"$%d\r\n%b\r\n" % (len(text), text)
    for name, marker in ((b"map", b"%"), (b"set", b"~")):
        field = value[name]
        if lupa.lua_type(field) == "table":
            parts = []
            for key, item in field.items():
                parts.append(to_reply(key, resp, script_resp))
                if name == b"map":
                    parts.append(to_reply(item, resp, script_resp))
            count = len(parts) // 2 if name == b"map" and resp == 3 else len(parts)
            return (marker if resp == 3 else b"*") + b"%d\r\n" % count + b"".join(parts)
    field = value[b"verbatim_string"]
    if lupa.lua_type(field) == "table":
        text, kind = field[b"string"], field[b"format"]
        if isinstance(text, bytes) and isinstance(kind, bytes) and len(kind) == 3:
            if resp == 3:
                return b"=%d\r\n%b:%b\r\n" % (len(text) + 4, kind, text)
            return b"$%d\r\n%b\r\n" % (len(text), text)
    parts = []
    index = 1
    while (item := value[index]) is not None:
        parts.append(to_reply(item, resp, script_resp))
        index += 1
    return b"*%d\r\n" % len(parts) + b"".join(parts)


def _integer(number: float) -> int:
    """C's ``(long long)`` of a Lua number (undefined past the range: Redis's x86 gives the
    lowest value, as here)."""
    if number != number or not -(2**63) <= number < 2**63:
        return -(2**63)
    return int(number)
