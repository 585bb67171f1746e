"""The ``cjson`` library scripts use: lua-cjson 2.1 as Redis bundles it, with its defaults.

``cjson.encode`` writes as lua-cjson does: a table whose keys are all positive integers is an
array (holes as ``null``; "excessively sparse" past lua-cjson's ratio), any other table an
object in Lua's own key order, the empty table ``{}``, numbers with ``%.14g``, ``/`` escaped
as ``\\/``, bytes past ASCII as they are. ``cjson.decode`` is lua-cjson's parser: its tokens,
its errors ("Expected value but found T_END at character 4"), numbers read by C's ``strtod``
(so ``0x10``, ``+5``, ``inf`` and leading zeros pass, as lua-cjson lets them), ``\\u`` escapes
(surrogate pairs included) written as UTF-8, ``null`` as ``cjson.null``, 1000 levels deep at
most. Errors are raised as a Lua library raises them (``LibraryError``). Left out: the
configuration functions (``encode_keep_buffer``, ``decode_max_depth``, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from residentd.apps.kv.scripting.bitop import lua_type_name
from residentd.apps.kv.scripting.sandbox import LibraryError

if TYPE_CHECKING:
    from residentd.apps.kv.scripting.sandbox import Sandbox

MAX_DEPTH = 1000
SPARSE_RATIO = 2
SPARSE_SAFE = 10
_ESCAPES = {i: b"\\u%04x" % i for i in range(32)}
_ESCAPES.update({8: b"\\b", 9: b"\\t", 10: b"\\n", 12: b"\\f", 13: b"\\r"})
_ESCAPES.update({0x22: b'\\"', 0x5C: b"\\\\", 0x2F: b"\\/", 0x7F: b"\\u007f"})

# -- encode ---------------------------------------------------------------------------------------


def _string(data: bytes) -> bytes:
    if not any(byte in _ESCAPES for byte in data):
        return b'"' + data + b'"'
    return b'"' + b"".join(_ESCAPES.get(byte, bytes((byte,))) for byte in data) + b'"'


def _number(value: float) -> bytes:
    if value != value or value in (float("inf"), float("-inf")):
        raise LibraryError(b"Cannot serialise number: must not be NaN or Inf")
    return b"%.14g" % value


def _array_length(items: list[tuple[Any, Any]]) -> int:
    """lua-cjson's ``lua_array_length``: the array's length, or -1 for an object."""
    highest = 0
    for key, _ in items:
        if isinstance(key, bool) or not isinstance(key, int | float) or key < 1 or key != int(key):
            return -1
        highest = max(highest, int(key))
    if highest > SPARSE_SAFE and highest > len(items) * SPARSE_RATIO:
        raise LibraryError(b"Cannot serialise table: excessively sparse array")
    return highest


def _encoder(null: object) -> Callable[..., bytes]:
    def write(value: Any, depth: int) -> bytes:
        if value is None or value is null:
            return b"null"
        if isinstance(value, bool):
            return b"true" if value else b"false"
        if isinstance(value, bytes):
            return _string(value)
        if isinstance(value, int | float):
            return _number(value)
        kind = lua_type_name(value)
        if kind != "table":
            raise LibraryError(b"Cannot serialise %b: type not supported" % kind.encode())
        if depth >= MAX_DEPTH:
            raise LibraryError(b"Cannot serialise, excessive nesting (%d)" % (depth + 1))
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
                raise LibraryError(
                    b"Cannot serialise %b: table key must be a number or string"
                    % lua_type_name(key).encode()
                )
            parts.append(name + b":" + write(item, depth + 1))
        return b"{" + b",".join(parts) + b"}"

    def encode(*args: Any) -> bytes:
        if len(args) != 1:
            raise LibraryError(b"bad argument #1 to 'encode' (expected 1 argument)")
        return write(args[0], 0)

    return encode


# -- decode ---------------------------------------------------------------------------------------

# C's strtod: a decimal or hexadecimal number, inf, infinity or nan, after an optional sign.
_STRTOD = re.compile(
    rb"[+-]?(?:0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
    rb"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rb"|(?i:infinity|inf|nan(?:\([0-9A-Za-z_]*\))?))"
)
_SINGLE = {ord("{"): "T_OBJ_BEGIN", ord("}"): "T_OBJ_END", ord("["): "T_ARR_BEGIN"}
_SINGLE.update({ord("]"): "T_ARR_END", ord(","): "T_COMMA", ord(":"): "T_COLON"})
_UNKNOWN = frozenset(b'"+-0123456789fiInNt')
_ESCAPED = {ord('"'): 0x22, ord("\\"): 0x5C, ord("/"): 0x2F, ord("b"): 8, ord("t"): 9}
_ESCAPED.update({ord("n"): 10, ord("f"): 12, ord("r"): 13})


def _strtod(text: bytes) -> float:
    sign = -1.0 if text[:1] == b"-" else 1.0
    body = text.lstrip(b"+-")
    if body[:2].lower() == b"0x":
        return sign * float.fromhex(body.decode())
    lowered = body.lower()
    if lowered.startswith(b"inf"):
        return sign * float("inf")
    if lowered.startswith(b"nan"):
        return float("nan")
    return sign * float(body)


def _invalid_number(data: bytes, at: int) -> bool:
    """lua-cjson's ``json_is_invalid_number``: what strtod reads but JSON does not allow."""
    rest = data[at : at + 4]
    if rest[:1] == b"+":
        return True
    if rest[:1] == b"-":
        rest = rest[1:]
    if rest[:1] == b"0":
        return len(rest) > 1 and (rest[1] | 0x20 == ord("x") or rest[1:2].isdigit())
    if rest[:1] and rest[0] <= ord("9"):
        return False
    return rest[:3].lower() in (b"inf", b"nan")


class _Parser:
    """lua-cjson's tokenizer and parser over one input (a NUL byte ends it, as in C)."""

    def __init__(self, data: bytes, null: object, table: Callable[[Any], Any]) -> None:
        end = data.find(b"\0")
        self.data = data if end < 0 else data[:end]
        self.position = 0
        self.null = null
        self.table = table

    def token(self) -> tuple[str, Any, int]:
        """The next token: (type, value, index); an error's type is T_ERROR, its text the
        value."""
        data = self.data
        at = self.position
        while at < len(data) and data[at] in b" \t\n\r":
            at += 1
        self.position = at
        if at >= len(data):
            return "T_END", None, at
        char = data[at]
        if char in _SINGLE:
            self.position = at + 1
            return _SINGLE[char], None, at
        if char not in _UNKNOWN:
            return "T_ERROR", "invalid token", at
        if char == 0x22:
            return self._string(at)
        if char == 0x2D or 0x30 <= char <= 0x39:
            return self._number(at)
        for word, value in ((b"true", True), (b"false", False), (b"null", self.null)):
            if data.startswith(word, at):
                self.position = at + len(word)
                return ("T_NULL" if word == b"null" else "T_BOOLEAN"), value, at
        if _invalid_number(data, at):
            return self._number(at)
        return "T_ERROR", "invalid token", at

    def _number(self, at: int) -> tuple[str, Any, int]:
        match = _STRTOD.match(self.data, at)
        if match is None:
            return "T_ERROR", "invalid number", at
        self.position = match.end()
        return "T_NUMBER", _strtod(match.group()), at

    def _string(self, at: int) -> tuple[str, Any, int]:
        data = self.data
        out = bytearray()
        position = at + 1
        while True:
            if position >= len(data):
                return "T_ERROR", "unexpected end of string", position
            char = data[position]
            if char == 0x22:
                break
            if char == 0x5C:
                code = data[position + 1] if position + 1 < len(data) else 0
                if code == ord("u"):
                    decoded = _unicode_escape(data, position)
                    if decoded is None:
                        return "T_ERROR", "invalid unicode escape code", position
                    text, length = decoded
                    out += text
                    position += length
                    continue
                if code not in _ESCAPED:
                    return "T_ERROR", "invalid escape code", position
                out.append(_ESCAPED[code])
                position += 2
                continue
            out.append(char)
            position += 1
        self.position = position + 1
        return "T_STRING", bytes(out), at

    def fail(self, expected: str, token: tuple[str, Any, int]) -> LibraryError:
        kind, value, index = token
        found = value if kind == "T_ERROR" else kind
        return LibraryError(
            b"Expected %b but found %b at character %d"
            % (expected.encode(), found.encode(), index + 1)
        )

    def parse(self) -> Any:
        """The document's value (lua-cjson's parse, without recursion: a stack of the open
        arrays and objects)."""
        stack: list[tuple[Any, int, Any]] = []  # (table, next array index or 0, pending key)
        token = self.token()
        while True:
            kind, value, _ = token
            if kind in ("T_OBJ_BEGIN", "T_ARR_BEGIN"):
                if len(stack) >= MAX_DEPTH:
                    raise LibraryError(
                        b"Found too many nested data structures (%d) at character %d"
                        % (len(stack) + 1, self.position)
                    )
                container = self.table({})
                closing = "T_OBJ_END" if kind == "T_OBJ_BEGIN" else "T_ARR_END"
                token = self.token()
                if token[0] != closing:
                    stack.append((container, 1 if kind == "T_ARR_BEGIN" else 0, None))
                    if kind == "T_OBJ_BEGIN":
                        token = self._key(stack, token)
                    continue
                value = container
            elif kind not in ("T_STRING", "T_NUMBER", "T_BOOLEAN", "T_NULL"):
                raise self.fail("value", token)
            # A value is complete: store it in the enclosing container, or finish.
            while True:
                if not stack:
                    end = self.token()
                    if end[0] != "T_END":
                        raise self.fail("the end", end)
                    return value
                container, index, key = stack[-1]
                if index:
                    container[index] = value
                    stack[-1] = (container, index + 1, None)
                else:
                    container[key] = value
                token = self.token()
                closing = "T_ARR_END" if index else "T_OBJ_END"
                if token[0] == closing:
                    stack.pop()
                    value = container
                    continue
                if token[0] != "T_COMMA":
                    raise self.fail("comma or array end" if index else "comma or object end", token)
                token = self.token()
                if not index:
                    token = self._key(stack, token)
                break

    def _key(self, stack: list[tuple[Any, int, Any]], token: tuple[str, Any, int]) -> Any:
        """Read ``key :`` in the object on top of ``stack``; the token of its value."""
        if token[0] != "T_STRING":
            raise self.fail("object key string", token)
        container, _, _ = stack[-1]
        stack[-1] = (container, 0, token[1])
        colon = self.token()
        if colon[0] != "T_COLON":
            raise self.fail("colon", colon)
        return self.token()


def _unicode_escape(data: bytes, at: int) -> tuple[bytes, int] | None:
    """The UTF-8 of the ``\\uXXXX`` escape at ``at`` (a surrogate pair takes two), and its
    length; None if it is not a valid one."""
    code = _hex4(data, at + 2)
    length = 6
    if code is None:
        return None
    if code & 0xFC00 == 0xD800:
        if data[at + 6 : at + 8] != b"\\u":
            return None
        low = _hex4(data, at + 8)
        if low is None or low & 0xFC00 != 0xDC00:
            return None
        code = (((code & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000
        length = 12
    elif code & 0xFC00 == 0xDC00:
        return None
    return chr(code).encode("utf-8"), length


def _hex4(data: bytes, at: int) -> int | None:
    digits = data[at : at + 4]
    if len(digits) != 4 or not all(chr(c) in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)


def library(sandbox: Sandbox) -> dict[str, Callable[..., Any]]:
    null = sandbox.null

    def decode(*args: Any) -> Any:
        if len(args) != 1:
            raise LibraryError(b"bad argument #1 to 'decode' (expected 1 argument)")
        text = args[0]
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = b"%.14g" % text
        if not isinstance(text, bytes):
            raise LibraryError(
                b"bad argument #1 to 'decode' (string expected, got %b)"
                % lua_type_name(text).encode()
            )
        if len(text) >= 2 and (not text[0] or not text[1]):
            raise LibraryError(b"JSON parser does not support UTF-16 or UTF-32")
        return _Parser(text, null, sandbox.table).parse()

    return {"encode": _encoder(null), "decode": decode}
