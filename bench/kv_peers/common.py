"""What the Python peers of bench/peers.py share: a minimal Redis, the same for all of them.

Each peer is one I/O framework's idiomatic server around these pieces, so the bench compares
the frameworks, not the data structures: requests are read with hiredis's ``Reader``, and
``execute`` runs the commands redis-benchmark sends for its SET, GET, INCR, LPUSH, RPUSH,
LPOP, RPOP, SADD, HSET and MSET tests (plus PING, and CONFIG GET answered with nothing)
on dicts, deques and sets. Errors are short; there is no expiry, no pub/sub, no limits.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis

OK = b"+OK\r\n"
NIL = b"$-1\r\n"
data: dict[bytes, Any] = {}


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _set(argv: list[bytes]) -> bytes:
    data[argv[1]] = argv[2]
    return OK


def _get(argv: list[bytes]) -> bytes:
    value = data.get(argv[1])
    return NIL if value is None else _bulk(value)


def _incr(argv: list[bytes]) -> bytes:
    value = int(data.get(argv[1], b"0")) + 1
    data[argv[1]] = b"%d" % value
    return b":%d\r\n" % value


def _push(argv: list[bytes], left: bool) -> bytes:
    items = data.setdefault(argv[1], deque())
    if left:
        items.extendleft(argv[2:])
    else:
        items.extend(argv[2:])
    return b":%d\r\n" % len(items)


def _pop(argv: list[bytes], left: bool) -> bytes:
    items = data.get(argv[1])
    if not items:
        return NIL
    return _bulk(items.popleft() if left else items.pop())


def _sadd(argv: list[bytes]) -> bytes:
    members = data.setdefault(argv[1], set())
    before = len(members)
    members.update(argv[2:])
    return b":%d\r\n" % (len(members) - before)


def _hset(argv: list[bytes]) -> bytes:
    fields = data.setdefault(argv[1], {})
    before = len(fields)
    for i in range(2, len(argv), 2):
        fields[argv[i]] = argv[i + 1]
    return b":%d\r\n" % (len(fields) - before)


def _mset(argv: list[bytes]) -> bytes:
    for i in range(1, len(argv), 2):
        data[argv[i]] = argv[i + 1]
    return OK


COMMANDS: dict[bytes, Callable[[list[bytes]], bytes]] = {
    b"SET": _set,
    b"GET": _get,
    b"INCR": _incr,
    b"LPUSH": lambda argv: _push(argv, left=True),
    b"RPUSH": lambda argv: _push(argv, left=False),
    b"LPOP": lambda argv: _pop(argv, left=True),
    b"RPOP": lambda argv: _pop(argv, left=False),
    b"SADD": _sadd,
    b"HSET": _hset,
    b"MSET": _mset,
    b"PING": lambda argv: b"+PONG\r\n",
    b"CONFIG": lambda argv: b"*0\r\n",
}


def execute(argv: list[bytes]) -> bytes:
    command = COMMANDS.get(argv[0]) or COMMANDS.get(argv[0].upper())
    if command is None:
        return b"-ERR unknown command\r\n"
    try:
        return command(argv)
    except (IndexError, ValueError, TypeError, AttributeError):
        return b"-ERR bad request\r\n"


def answer(reader: Any, chunk: bytes) -> bytes:
    """Feed a chunk, run every command it completes, return all their replies."""
    reader.feed(chunk)
    replies = []
    command = reader.gets()
    while command is not False:
        replies.append(execute(command))
        command = reader.gets()
    return b"".join(replies)


def new_reader() -> Any:
    return hiredis.Reader()


def port_from_args(description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    return int(parser.parse_args().port)
