"""The ``cjson`` library scripts use (lua-cjson 2.1, which Redis bundles), on Python's json.

``cjson.encode`` writes as lua-cjson does: a table whose keys are all positive integers is an
array (holes as ``null``; "excessively sparse" past lua-cjson's default ratio), any other
table an object in Lua's own key order, the empty table ``{}``, numbers with ``%.14g``, ``/``
escaped as ``\\/``, and bytes past ASCII as they are. ``cjson.decode`` reads JSON into
tables, ``null`` as ``cjson.null``. What differs: decode's error messages are Python's
reading of the error put in lua-cjson's words ("... at character N") and may name another
token; its errors carry no "user_script:N:" prefix; and lua-cjson's configuration functions
(``encode_keep_buffer``, ...) are absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import lupa.lua51 as lupa

from residentd.apps.kv.scripting.sandbox import ScriptError

if TYPE_CHECKING:
    from residentd.apps.kv.scripting.sandbox import Sandbox

MAX_DEPTH = 1000
SPARSE_RATIO = 2
SPARSE_SAFE = 10
_ESCAPES = {i: b"\\u%04x" % i for i in range(32)}
_ESCAPES.update({8: b"\\b", 9: b"\\t", 10: b"\\n", 12: b"\\f", 13: b"\\r"})
_ESCAPES.update({0x22: b'\\"', 0x5C: b"\\\\", 0x2F: b"\\/", 0x7F: b"\\u007f"})
_TABLE = bytes.maketrans(b"", b"")


def _string(data: bytes) -> bytes:
    if not any(byte in _ESCAPES for byte in data):
        return b'"' + data + b'"'
    return b'"' + b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in data) + b'"'


def _number(value: float) -> bytes:
    if value != value or value in (float("inf"), float("-inf")):
        raise ScriptError(b"ERR Cannot serialise number: must not be NaN or Inf")
    return b"%.14g" % value


def library(sandbox: Sandbox) -> dict[str, Callable[..., Any]]:
    null = sandbox.null

    def encode(value: Any) -> bytes:
        return write(value, 0)

    def write(value: Any, depth: int) -> bytes:
        if value is None or value is null:
            return b"null"
        if value is True:
            return b"true"
        if value is False:
            return b"false"
        if isinstance(value, bytes):
            return _string(value)
        if isinstance(value, int | float):
            return _number(value)
        kind = lupa.lua_type(value)
        if kind != "table":
            raise ScriptError(b"ERR Cannot serialise %b: type not supported" % kind.encode())
        if depth >= MAX_DEPTH:
            raise ScriptError(b"ERR Cannot serialise, excessive nesting (%d)" % (depth + 1))
        items = list(value.items())
        length = _array_length(items)
        if length > 0:
            return b"[" + b",".join(write(value[i], depth + 1) for i in range(1, length + 1)) + b"]"
        parts = []
        for key, item in items:
            if isinstance(key, bytes):
                name = _string(key)
            elif isinstance(key, int | float) and not isinstance(key, bool):
                name = b'"%b"' % _number(key)
            else:
                raise ScriptError(
                    b"ERR Cannot serialise table: table key must be a number or string"
                )
            parts.append(name + b":" + write(item, depth + 1))
        return b"{" + b",".join(parts) + b"}"

    def decode(text: Any) -> Any:
        if not isinstance(text, bytes):
            raise ScriptError(b"ERR bad argument #1 to 'decode' (string expected)")
        try:
            data = json.loads(text.decode("utf-8", "surrogateescape"))
        except json.JSONDecodeError as exc:
            raise ScriptError(
                b"ERR Expected value but found invalid token at character %d" % (exc.pos + 1)
            ) from None
        except RecursionError:
            raise ScriptError(b"ERR Found too many nested data structures") from None
        return to_lua(data)

    def to_lua(data: Any) -> Any:
        if data is None:
            return null
        if isinstance(data, str):
            return data.encode("utf-8", "surrogateescape")
        if isinstance(data, int) and not isinstance(data, bool) and abs(data) >= 2**53:
            return float(data)
        if isinstance(data, list):
            return sandbox.table([to_lua(item) for item in data])
        if isinstance(data, dict):
            return sandbox.table_of(
                {key.encode("utf-8", "surrogateescape"): to_lua(item) for key, item in data.items()}
            )
        return data

    return {"encode": encode, "decode": decode}


def _array_length(items: list[tuple[Any, Any]]) -> int:
    """lua-cjson's ``lua_array_length``: the array's length, or -1 for an object."""
    highest = 0
    for key, _ in items:
        if isinstance(key, bool) or not isinstance(key, int | float) or key < 1 or key != int(key):
            return -1
        highest = max(highest, int(key))
    if highest > SPARSE_SAFE and highest > len(items) * SPARSE_RATIO:
        raise ScriptError(b"ERR Cannot serialise table: excessively sparse array")
    return highest
