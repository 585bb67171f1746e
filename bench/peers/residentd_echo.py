"""Peer for the benchmarks: residentd's built-in echo app, started without the CLI.

``python -m residentd run echo`` is what the benchmarks normally start; this launcher does the
same with the library API (uvloop, no connection limits, WARNING logs) for when the CLI is not
available, and it can run the server under cProfile to show where its time goes:

    python bench/peers/residentd_echo.py --listen 127.0.0.1:7100 --profile echo.prof
    python -m pstats echo.prof    # after the server got SIGTERM or SIGINT
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import signal

import uvloop

from residentd import Limits, Server
from residentd.apps.echo import app


async def serve(listen: str) -> None:
    loop = asyncio.get_running_loop()
    server = Server(app, Limits(max_connections=0, max_connections_per_ip=0), loop=loop)
    await server.start({"echo": [listen]})
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(timeout=2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:7100", help="HOST:PORT")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats to FILE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not args.profile:
        uvloop.run(serve(args.listen))
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        uvloop.run(serve(args.listen))
    finally:
        profiler.disable()
        profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
