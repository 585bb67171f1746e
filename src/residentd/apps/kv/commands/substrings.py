"""Commands on parts of a string: GETRANGE (and its old name SUBSTR), SETRANGE and LCS, as
Redis's ``t_string.c`` has them.

Ranges take Redis's inclusive, negative-from-the-end indexes. SETRANGE pads with zero bytes
and keeps the key's time to live, since it changes the value in place. LCS is the textbook
dynamic programme over the two strings (computed a row of bits at a time), walked back from
the end exactly as Redis walks it, so that IDX reports the same ranges in the same order;
like Redis it refuses inputs whose table would exceed ``proto-max-bulk-len`` bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.common import int_arg, read, write
from residentd.apps.kv.commands.registry import command
from residentd.apps.kv.errors import KvError
from residentd.codecs.resp import EMPTY_BULK, ZERO, array_header, bulk, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client


def _getrange(s: Client, argv: list[bytes]) -> bytes:
    start = int_arg(argv[2])
    end = int_arg(argv[3])
    value = read(s, argv[1], bytes)
    if value is None:
        return EMPTY_BULK
    size = len(value)
    if start < 0 and end < 0 and start > end:
        return EMPTY_BULK
    if start < 0:
        start = max(size + start, 0)
    if end < 0:
        end = max(size + end, 0)
    end = min(end, size - 1)
    if start > end or size == 0:
        return EMPTY_BULK
    return bulk(value[start : end + 1])


@command(
    "getrange",
    4,
    "readonly",
    "string",
    "Returns a substring of the string stored at a key.",
    since="2.4.0",
)
def getrange(s: Client, argv: list[bytes]) -> bytes:
    return _getrange(s, argv)


@command(
    "substr", 4, "readonly", "string", "Returns a substring from a string value.", since="1.0.0"
)
def substr(s: Client, argv: list[bytes]) -> bytes:
    return _getrange(s, argv)


_OFFSET_OUT_OF_RANGE = b"-ERR offset is out of range\r\n"


@command(
    "setrange",
    4,
    "write denyoom",
    "string",
    "Overwrites a part of a string value with another by an offset. Creates the key if it "
    "doesn't exist.",
    since="2.2.0",
)
def setrange(s: Client, argv: list[bytes]) -> bytes:
    offset = int_arg(argv[2])
    if offset < 0:
        raise KvError(_OFFSET_OUT_OF_RANGE)
    db = s.db
    key, patch = argv[1], argv[3]
    old = write(s, key, bytes)
    if not patch:
        return ZERO if old is None else integer(len(old))
    if offset + len(patch) > s.state.max_bulk_len:
        raise KvError(errors.STRING_TOO_LONG)
    old = old or b""
    if offset > len(old):
        old += bytes(offset - len(old))
    value = old[:offset] + patch + old[offset + len(patch) :]
    db.data[key] = value  # in place: the time to live stays
    return integer(len(value))


# -- LCS -------------------------------------------------------------------------------------------

_LCS_NOT_STRINGS = b"-ERR The specified keys must contain string values\r\n"
_LCS_IDX_AND_LEN = b"-ERR If you want both the length and indexes, please just use IDX.\r\n"
_LCS_TOO_LONG = b"-ERR String too long for LCS\r\n"
_LCS_TABLE_TOO_BIG = (
    b"-ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len\r\n"
)
_UINT32_MAX = 2**32 - 1


class _LcsTable:
    """The lengths of the longest common subsequences of ``a[:i]`` and ``b[:j]``, for all
    ``i`` and ``j``, kept as one bit vector per ``i`` (Allison and Dix's bit-parallel
    algorithm): bit ``j`` of row ``i`` is clear where the length grows from ``b[:j]`` to
    ``b[:j + 1]``. Python's big integers do a row in a few machine operations per 64 bytes."""

    def __init__(self, a: bytes, b: bytes) -> None:
        full = (1 << len(b)) - 1
        matches: dict[int, int] = {}
        for j, char in enumerate(b):
            matches[char] = matches.get(char, 0) | 1 << j
        row = full
        self.rows = [row]
        for char in a:
            same = row & matches.get(char, 0)
            row = ((row + same) | (row - same)) & full
            self.rows.append(row)

    def __call__(self, i: int, j: int) -> int:
        return j - (self.rows[i] & ((1 << j) - 1)).bit_count()


@command(
    "lcs",
    -3,
    "readonly",
    "string",
    "Finds the longest common substring.",
    since="7.0.0",
    keys=(1, 2, 1),
)
def lcs(s: Client, argv: list[bytes]) -> bytes:
    db = s.db
    a, b = db.get(argv[1]), db.get(argv[2])
    if (a is not None and a.__class__ is not bytes) or (b is not None and b.__class__ is not bytes):
        raise KvError(_LCS_NOT_STRINGS)
    a, b = a or b"", b or b""
    get_idx = get_len = with_match_len = False
    min_match_len = 0
    i = 3
    while i < len(argv):
        option = argv[i].upper()
        if option == b"IDX":
            get_idx = True
        elif option == b"LEN":
            get_len = True
        elif option == b"WITHMATCHLEN":
            with_match_len = True
        elif option == b"MINMATCHLEN" and i + 1 < len(argv):
            min_match_len = max(int_arg(argv[i + 1]), 0)
            i += 1
        else:
            raise KvError(errors.SYNTAX)
        i += 1
    if get_idx and get_len:
        raise KvError(_LCS_IDX_AND_LEN)
    if len(a) >= _UINT32_MAX - 1 or len(b) >= _UINT32_MAX - 1:
        raise KvError(_LCS_TOO_LONG)
    if (len(a) + 1) * (len(b) + 1) * 4 > s.state.max_bulk_len:
        raise KvError(_LCS_TABLE_TOO_BIG)
    table = _LcsTable(a, b)
    length = table(len(a), len(b))
    if get_len:
        return integer(length)
    common = bytearray(length)
    matches: list[bytes] = []
    i, j, k = len(a), len(b), length
    a_start = a_end = b_start = b_end = -1  # a_start == -1: no range open
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            common[k - 1] = a[i - 1]
            if a_start == -1:
                a_start = a_end = i - 1
                b_start = b_end = j - 1
            elif a_start == i and b_start == j:
                a_start -= 1
                b_start -= 1
            else:
                emit = True
            if a_start == 0 or b_start == 0:
                emit = True
            i, j, k = i - 1, j - 1, k - 1
        else:
            if table(i - 1, j) > table(i, j - 1):
                i -= 1
            else:
                j -= 1
            if a_start != -1:
                emit = True
        if emit:
            match_len = a_end - a_start + 1
            if get_idx and match_len >= min_match_len:
                match = [
                    b"*2\r\n" + integer(a_start) + integer(a_end),
                    b"*2\r\n" + integer(b_start) + integer(b_end),
                ]
                if with_match_len:
                    match.append(integer(match_len))
                matches.append(array_header(len(match)) + b"".join(match))
            a_start = -1
    if not get_idx:
        return bulk(bytes(common))
    return (
        b"*4\r\n"
        + bulk(b"matches")
        + array_header(len(matches))
        + b"".join(matches)
        + bulk(b"len")
        + integer(length)
    )
