"""In-process cost of one chunk through residentd's echo, against the raw uvloop Protocol.

No sockets and no kernel: each server's protocol objects take chunks straight from this
script, with a stand-in transport whose ``write`` does nothing, so what is left is the Python
(or C) work per chunk that bench/echo.py measures inside a real server's time. 500 connections
per server, each chunk a distinct bytes object fed to the next connection in turn, 64-byte
lines; passes alternate between the servers and the best pass of each counts (the least
disturbed by the rest of the machine).

residentd runs twice: as installed (its C speedups, when built) and in a child process with
``RESIDENTD_PURE_PYTHON=1`` (the Python versions of the same classes).

    python bench/echo_hotpath.py
    python bench/echo_hotpath.py --passes 40 --lines 1,4,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import cast

import uvloop

from idle_memory import StandInTransport

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from raw_uvloop_echo import LineEcho

CONNECTIONS = 500
LINE = b"x" * 63 + b"\n"


def residentd_protocols(loop: asyncio.AbstractEventLoop) -> list[asyncio.Protocol]:
    from residentd import Limits, Server
    from residentd.apps.echo import app
    from residentd.net.connection import Connection, ServiceRuntime

    server = Server(app, Limits(max_connections=0, max_connections_per_ip=0), loop=loop)
    runtime = ServiceRuntime.of(app.services[0])
    return [Connection(server, runtime) for _ in range(CONNECTIONS)]


def connect(protocols: list[asyncio.Protocol]) -> list[asyncio.Protocol]:
    for index, protocol in enumerate(protocols):
        transport = StandInTransport(("127.0.0.2", 10_000 + index))
        protocol.connection_made(cast(asyncio.Transport, transport))
    return protocols


def one_pass(protocols: list[asyncio.Protocol], chunks: list[bytes]) -> float:
    """Seconds per chunk, every chunk to the next connection in turn."""
    feeds: list[Callable[[bytes], None]] = [p.data_received for p in protocols]
    count = len(feeds)
    start = time.perf_counter()
    for index, chunk in enumerate(chunks):
        feeds[index % count](chunk)
    return (time.perf_counter() - start) / len(chunks)


def measure(servers: list[str], lines: list[int], passes: int, chunks: int) -> dict[str, dict]:
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    made = {
        "residentd": lambda: connect(residentd_protocols(loop)),
        "raw-uvloop": lambda: connect([LineEcho() for _ in range(CONNECTIONS)]),
    }
    protocols = {name: made[name]() for name in servers}
    best: dict[str, dict] = {name: {} for name in servers}
    for depth in lines:
        # Distinct objects, as a socket read makes: no chunk is warm in the cache from before.
        data = [bytes(bytearray(LINE * depth)) for _ in range(chunks)]
        for name in servers:  # a warm-up pass: first touches, the codecs' first buffers
            one_pass(protocols[name], data)
        for _ in range(passes):
            for name in servers:
                seconds = one_pass(protocols[name], data)
                previous = best[name].get(str(depth), float("inf"))
                best[name][str(depth)] = min(previous, seconds)
    loop.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--passes", type=int, default=25, help="passes per server (25)")
    parser.add_argument("--chunks", type=int, default=20_000, help="chunks per pass (20000)")
    parser.add_argument("--lines", default="1,16", help="lines per chunk, comma-separated")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    lines = [int(n) for n in args.lines.split(",")]
    if args.child:  # the pure-Python residentd, for the parent
        print(json.dumps(measure(["residentd"], lines, args.passes, args.chunks)["residentd"]))
        return
    results = measure(["residentd", "raw-uvloop"], lines, args.passes, args.chunks)
    child = subprocess.run(
        [sys.executable, __file__, "--child", "--passes", str(args.passes),
         "--chunks", str(args.chunks), "--lines", args.lines],
        env={**os.environ, "RESIDENTD_PURE_PYTHON": "1"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    results["residentd, pure Python"] = json.loads(child.stdout)
    print(f"µs per chunk, best of {args.passes} passes, {CONNECTIONS} connections")
    print(f"{'server':<26}" + "".join(f"{f'{n} line(s)':>12}" for n in lines))
    for name in ("raw-uvloop", "residentd", "residentd, pure Python"):
        row = results[name]
        print(f"{name:<26}" + "".join(f"{row[str(n)] * 1e6:>12.2f}" for n in lines))


if __name__ == "__main__":
    main()
