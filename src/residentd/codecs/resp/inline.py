"""Inline requests (``GET k\\r\\n``, what people type into telnet), split into arguments as
Redis's ``sdssplitargs`` does, quotes and escapes included."""

from __future__ import annotations

_SPACE = frozenset(b" \t\n\r\v\f")  # C isspace
_TOKEN_END = frozenset(b" \n\r\t\0")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_PLAIN_SPECIALS = frozenset(b"\"'\v\f\0")


def _hex_pair(line: bytes, i: int) -> bool:
    return i + 1 < len(line) and line[i] in _HEX and line[i + 1] in _HEX


def split_args(line: bytes) -> list[bytes] | None:
    """Split an inline request into arguments as Redis's ``sdssplitargs`` does, or ``None``
    for unbalanced quotes. Quotes may hold ``\\xHH``, ``\\n`` and the like (double quotes) or
    ``\\'`` (single quotes); a closing quote must be followed by a space or the end."""
    if _PLAIN_SPECIALS.isdisjoint(line):
        return line.split()
    line = line.split(b"\0", 1)[0]  # a C string: it ends at the first NUL
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0  # the quote we are inside: 0x22 ("), 0x27 (') or none
        while True:
            c = line[i] if i < n else 0
            nxt = line[i + 1] if i + 1 < n else 0
            if not quote:
                if c in _TOKEN_END:
                    break
                if c in (0x22, 0x27):
                    quote = c
                else:
                    current.append(c)
            elif c == 0x5C and quote == 0x22 and nxt == 0x78 and _hex_pair(line, i + 2):
                current.append(int(line[i + 2 : i + 4], 16))  # "\xHH"
                i += 3
            elif c == 0x5C and quote == 0x22 and nxt:
                current.append(_ESCAPES.get(nxt, nxt))  # "\n", "\"", ...
                i += 1
            elif c == 0x5C and quote == 0x27 and nxt == 0x27:
                current.append(0x27)  # '\''
                i += 1
            elif c == quote:
                if nxt and nxt not in _SPACE:
                    return None  # a closing quote must end the argument
                i += 1
                break
            elif not c:
                return None  # the line ended inside quotes
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))
