"""What kv's journaling costs per command, in process, without sockets or a load generator.

    python bench/kv_journal_inprocess.py

Sessions on a fake connection each run one pipeline (16 or 1 SET, INCR or LPUSH on random
keys) per loop iteration, then the server's flush queue runs: the commit point (the journal's
write to a real file) and the flushes. A pipeline goes in as the connection hands it over: as
RESP bytes to the session class's ``serve_chunk`` (the C fast path's ``serve``) when the C
speedups are built, else as commands to ``on_messages``. Persistence off, ``everysec`` and
``no``; the figure is the CPU time per command (best of 3), which the neighbours of a shared
machine disturb far less than redis-benchmark's rates. ``always`` is left out: its fsync is
the disk's time.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import uvloop

from residentd.apps.kv.persistence.aof import encode
from residentd.apps.kv.persistence.backend import KvPersistence
from residentd.apps.kv.persistence.machine import KvMachine
from residentd.apps.kv.session import KvSession
from residentd.apps.kv.state import KvState
from residentd.codecs.resp.codec import RespCodec
from residentd.net.flushing import FlushQueue
from residentd.state.journal import Journal


class Conn:
    """What a session uses of a connection; output is dropped at the flush."""

    def __init__(self, loop: asyncio.AbstractEventLoop, flushes: FlushQueue, app: Any) -> None:
        self.server = SimpleNamespace(loop=loop, flushes=flushes, app=app)
        self.app = app
        self.out: list[bytes] = []
        self.id = id(self)

    def send_bytes(self, data: bytes, count: int = 1, /) -> None:
        self.out.append(data)

    def _flush(self) -> None:
        self.out.clear()


def pipeline(command: str, size: int, rnd: random.Random) -> list[list[bytes]]:
    if command == "set":
        return [[b"SET", b"key:%06d" % rnd.randrange(100000), b"xxx"] for _ in range(size)]
    if command == "incr":
        return [[b"INCR", b"counter:%06d" % rnd.randrange(100000)] for _ in range(size)]
    return [[b"LPUSH", b"mylist", b"xxx"] for _ in range(size)]


def run(policy: str, command: str, size: int, clients: int, iterations: int) -> float:
    """CPU µs per command."""
    loop = uvloop.new_event_loop()
    flushes = FlushQueue(loop)
    app = SimpleNamespace(options={"proto_max_bulk_len": 512 << 20})
    state = app.state = KvState(app)  # type: ignore[arg-type]
    folder = tempfile.TemporaryDirectory()
    if policy != "off":
        persistence = KvPersistence(KvMachine(state))
        persistence.loop, persistence.flushes = loop, flushes
        path = os.path.join(folder.name, "journal.aof")
        persistence.journal = Journal(path, policy, persistence.buffer)
        flushes.commit = persistence.commit_point
        flushes.gate = persistence.commit_iteration  # as the server's flush calls it
        state.persistence = persistence
        state.health = persistence.health
        state.journal = persistence.buffer
    conns = [Conn(loop, flushes, app) for _ in range(clients)]
    sessions = [KvSession(conn) for conn in conns]  # type: ignore[arg-type]
    for session in sessions:
        session.on_connect()
    rnd = random.Random(1)
    pipes = [pipeline(command, size, rnd) for _ in range(64)]
    chunks = [b"".join(encode(argv) for argv in pipe) for pipe in pipes]
    serve = KvSession.serve_chunk
    codec = RespCodec()

    async def main() -> float:
        started = time.process_time()
        for i in range(iterations):
            for session, conn in zip(sessions, conns, strict=True):
                if serve is not None:
                    serve(session, codec, chunks[i % 64])
                else:
                    session.on_messages([list(argv) for argv in pipes[i % 64]])
                flushes.add(conn)
            await asyncio.sleep(0)
        return time.process_time() - started

    used = loop.run_until_complete(main())
    loop.close()
    if state.persistence is not None and state.persistence.journal is not None:
        state.persistence.journal.close()
    folder.cleanup()
    return used / (iterations * clients * size) * 1e6


def main() -> None:
    print("CPU µs per command (best of 3)")
    print(f"{'test':<8}{'P':>3}{'off':>8}{'everysec':>10}{'no':>8}{'everysec - off':>16}")
    for size, clients, iterations in ((16, 4, 4000), (1, 8, 20000)):
        for command in ("set", "incr", "lpush"):
            best: dict[str, float] = {}
            for _ in range(3):
                for policy in ("off", "everysec", "no"):
                    figure = run(policy, command, size, clients, iterations)
                    best[policy] = min(best.get(policy, figure), figure)
            cells: Any = (best["off"], best["everysec"], best["no"])
            extra = best["everysec"] - best["off"]
            print(
                f"{command:<8}{size:>3}"
                + "".join(f"{c:>{w}.3f}" for c, w in zip(cells, (8, 10, 8), strict=True))
                + f"{extra:>16.3f}"
            )


if __name__ == "__main__":
    main()
