"""In-process cost of one chat backend-API request: parse, route, auth, handler, response.

No sockets and no kernel: the chat daemon's HTTP-port protocol objects take each request
straight from this script, with a stand-in transport whose ``write`` keeps nothing, so what is
left is the Python (or C) work per request that bench/classic_vs_resident.py measures inside a
real server's CPU time (less the loop's and the kernel's share). The requests are the bench's
own (bench/classic/load.py: ``Host``, ``Authorization: Bearer``, and ``Content-Type`` and
``Content-Length`` with a body), each client on a keep-alive connection of its own, one request
per chunk, every client in turn; 50 clients in rooms of 10, each room with 20 messages first.
Passes alternate between the operations and the best pass of each counts (the least disturbed
by the rest of the machine).

residentd runs as installed (its C speedups, when built); set ``RESIDENTD_PURE_PYTHON=1``
for the Python versions. To compare with an older commit, run the script with that commit's
``src`` first on ``PYTHONPATH``.

    python bench/http_api_hotpath.py
    python bench/http_api_hotpath.py --passes 20 --ops who,post --profile post
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from typing import Any, cast

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from classic.load import OPS, api_requests, room_name, user_name  # noqa: E402
from idle_memory import StandInTransport  # noqa: E402

KEY = "bench-api-key-0123456789"
CLIENTS = 50
ROOM_SIZE = 10
REQUESTS = 2_000  # per pass


class Transport(StandInTransport):
    """A stand-in transport that keeps what is written when asked to (``sent``)."""

    __slots__ = ("sent",)

    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__(peer)
        self.sent: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.sent is not None:
            self.sent.append(data)


def build(loop: asyncio.AbstractEventLoop) -> tuple[Any, list[asyncio.Protocol]]:
    from residentd import Limits, Server
    from residentd.apps.chat import api
    from residentd.apps.chat.daemon import build_app
    from residentd.apps.chat.hub import post_message
    from residentd.net.connection import Connection, ServiceRuntime

    app = build_app()
    app.options["rate_limit"] = 0
    app.options["api_keys"] = [KEY]
    app.options["rooms"] = sorted({room_name(i, ROOM_SIZE) for i in range(CLIENTS)})
    app.api_keys = api.load_keys(app.settings())
    server = Server(app, Limits(max_connections=0, max_connections_per_ip=0), loop=loop)
    service = next(s for s in app.services if s.name == "http")
    runtime = ServiceRuntime.of(service)
    protocols: list[asyncio.Protocol] = []
    for index in range(CLIENTS):
        protocol = Connection(server, runtime)
        transport = Transport(("127.0.0.2", 10_000 + index))
        protocol.connection_made(cast(asyncio.Transport, transport))
        protocols.append(protocol)
    hub = app.hub
    for index in range(CLIENTS):
        for _ in range(2):
            post_message(hub, hub.room(room_name(index, ROOM_SIZE)), user_name("b", index), "hello")
    return app, protocols


def one_pass(protocols: list[asyncio.Protocol], chunks: list[bytes]) -> float:
    """CPU seconds per request, each client's request to its own connection in turn."""
    feeds = [p.data_received for p in protocols]
    count = len(feeds)
    start = time.process_time()
    for index in range(REQUESTS):
        slot = index % count
        feeds[slot](chunks[slot])
    return (time.process_time() - start) / REQUESTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--profile", metavar="OP", help="cProfile this operation's requests")
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app, protocols = build(loop)
    ops = args.ops.split(",")
    requests = [
        api_requests(user_name("b", i), room_name(i, ROOM_SIZE), KEY) for i in range(CLIENTS)
    ]
    chunks = {op: [bytes(r[op]) for r in requests] for op in ops}
    for op in ops:  # every answer is a 200
        transport = cast(Any, protocols[0]).transport
        sent = transport.sent = []
        protocols[0].data_received(chunks[op][0])
        transport.sent = None
        assert sent and sent[0].startswith(b"HTTP/1.1 200 "), (op, sent[:1])
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.passes):
            one_pass(protocols, chunks[args.profile])
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    best = {op: float("inf") for op in ops}
    for _ in range(args.passes):
        for op in ops:
            best[op] = min(best[op], one_pass(protocols, chunks[op]))
    pure = os.environ.get("RESIDENTD_PURE_PYTHON") == "1"
    print(f"per request, best of {args.passes} passes ({'pure Python' if pure else 'C speedups'})")
    for op in ops:
        print(f"  {op:<10} {best[op] * 1e6:6.1f} us")
    del app


if __name__ == "__main__":
    main()
