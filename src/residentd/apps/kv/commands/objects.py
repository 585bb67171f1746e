"""OBJECT ENCODING, FREQ, IDLETIME and REFCOUNT: what Redis 7.0's ``object.c`` reports about
a key's value.

kv keeps values as plain Python objects, so the encodings are the ones Redis would pick for
the same value with its default thresholds (``int``/``embstr``/``raw`` strings, ``intset``
sets of at most 512 integers, ``listpack`` hashes of at most 128 short fields, ``quicklist``
lists). FREQ and IDLETIME read the access stamps eviction.py keeps while an LFU or an LRU
policy and a ``maxmemory`` are set; FREQ is refused unless the policy is LFU, and IDLETIME if
it is, with Redis's errors. Without a limit kv keeps no stamps: FREQ answers Redis's initial
counter (5) and IDLETIME 0.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from residentd.apps.kv.commands.registry import container, help_subcommand, subcommand
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.eviction import LFU_INIT_VAL
from residentd.apps.kv.stream import Stream
from residentd.apps.kv.zset import SortedSet
from residentd.codecs.resp import NIL, ZERO, bulk, integer, parse_int

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

_SET_MAX_INTSET_ENTRIES = 512
_HASH_MAX_LISTPACK_ENTRIES = 128
_HASH_MAX_LISTPACK_VALUE = 64
_EMBSTR_SIZE_LIMIT = 44
_SHARED_INTEGERS = 10000
_SHARED_REFCOUNT = 2**31 - 1
_NO_LFU = (
    b"-ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
    b"that when switching between policies at runtime LRU and LFU data will take some time to "
    b"adjust.\r\n"
)
_NO_LRU = (
    b"-ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when "
    b"switching between policies at runtime LRU and LFU data will take some time to adjust.\r\n"
)


def _stamp(s: Client, key: bytes) -> int | None:
    """The key's access stamp while eviction.py keeps them (OBJECT does not renew it)."""
    access = s.db.access
    return access.get(key) if access is not None else None


def _as_long(value: bytes) -> int | None:
    """The integer a string value is kept as (Redis's ``int`` encoding), if any."""
    return parse_int(value) if len(value) <= 20 else None


def encoding(value: Any) -> bytes:
    if value.__class__ is bytes:
        if _as_long(value) is not None:
            return b"int"
        return b"embstr" if len(value) <= _EMBSTR_SIZE_LIMIT else b"raw"
    if value.__class__ is deque:
        return b"quicklist"
    if value.__class__ is set:
        small = len(value) <= _SET_MAX_INTSET_ENTRIES
        return b"intset" if small and all(parse_int(m) is not None for m in value) else b"hashtable"
    if value.__class__ is dict:
        small = len(value) <= _HASH_MAX_LISTPACK_ENTRIES and all(
            len(f) <= _HASH_MAX_LISTPACK_VALUE and len(v) <= _HASH_MAX_LISTPACK_VALUE
            for f, v in value.items()
        )
        return b"listpack" if small else b"hashtable"
    if value.__class__ is SortedSet:
        return value.encoding  # listpack or skiplist, by Redis's thresholds
    if value.__class__ is Stream:
        return b"stream"
    return b"raw"


container("object", "", "keyspace", "A container for object introspection commands.", since="2.2.3")


@subcommand("object", "encoding", 3, "readonly", "Returns the internal encoding of a Redis object.")
def object_encoding(s: Client, argv: list[bytes]) -> bytes:
    value = s.db.get_write(argv[2])
    return NIL if value is None else bulk(encoding(value))


@subcommand(
    "object",
    "freq",
    3,
    "readonly",
    "Returns the logarithmic access frequency counter of a Redis object.",
    since="4.0.0",
)
def object_freq(s: Client, argv: list[bytes]) -> bytes:
    if s.db.get_write(argv[2]) is None:
        return NIL
    if not s.state.options["maxmemory_policy"].endswith("lfu"):
        raise KvError(_NO_LFU)
    stamp = _stamp(s, argv[2])
    eviction = s.state.eviction
    if stamp is None or eviction is None:
        return integer(LFU_INIT_VAL)
    return integer(eviction.frequency(stamp))


@subcommand(
    "object", "idletime", 3, "readonly", "Returns the time since the last access to a Redis object."
)
def object_idletime(s: Client, argv: list[bytes]) -> bytes:
    if s.db.get_write(argv[2]) is None:
        return NIL
    if s.state.options["maxmemory_policy"].endswith("lfu"):
        raise KvError(_NO_LRU)
    stamp = _stamp(s, argv[2])
    eviction = s.state.eviction
    if stamp is None or eviction is None:
        return ZERO
    return integer(eviction.idle_seconds(stamp))


@subcommand("object", "refcount", 3, "readonly", "Returns the reference count of a value of a key.")
def object_refcount(s: Client, argv: list[bytes]) -> bytes:
    value = s.db.get_write(argv[2])
    if value is None:
        return NIL
    number = _as_long(value) if value.__class__ is bytes else None
    shared = number is not None and 0 <= number < _SHARED_INTEGERS
    return integer(_SHARED_REFCOUNT if shared else 1)


help_subcommand(
    "object",
    [
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ],
)
