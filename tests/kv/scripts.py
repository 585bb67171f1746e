"""Scripts of several clients for the differential tests: the same steps, each sent by one of
the clients, go to kv and to a real redis-server, and the replies must be the same byte for
byte.

A step is ``(client, *command)``; ``(client, [command, command, ...])`` sends a pipeline in
one write; a bare number waits that many seconds (for a key's time to pass); a step whose
client is negative (``-1 - client``) is sent but its reply is not compared (HELLO's, which
names the server's id and version).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeAlias

from .helpers import Raw, resp

Command: TypeAlias = tuple[str | bytes | int, ...]


def run_script(port: int, steps: Sequence[object], clients: int = 2) -> list[bytes]:
    """The compared replies of ``steps`` sent to the server on ``port``, after a FLUSHALL."""
    connections = [Raw(port) for _ in range(clients)]
    try:
        connections[0].call("FLUSHALL")
        out: list[bytes] = []
        for step in steps:
            if isinstance(step, int | float):
                time.sleep(step)
                continue
            assert isinstance(step, tuple)
            who, *rest = step
            compared = who >= 0
            client = connections[who if compared else -1 - who]
            commands: list[Command] = rest[0] if isinstance(rest[0], list) else [tuple(rest)]
            client.send(b"".join(resp(*command) for command in commands))
            replies = client.replies(len(commands))
            if compared:
                out.extend(replies)
        return out
    finally:
        for connection in connections:
            connection.close()


def compare(kv_port: int, redis_port: int, steps: Sequence[object], clients: int = 2) -> None:
    """kv's replies to ``steps`` are redis-server's."""
    theirs = run_script(redis_port, steps, clients)
    ours = run_script(kv_port, steps, clients)
    assert ours == theirs, "\n".join(
        f"{'  ' if a == b else '!!'} redis {b!r} kv {a!r}"
        for a, b in zip(ours, theirs, strict=False)
    )
