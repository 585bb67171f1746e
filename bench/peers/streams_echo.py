"""Peer for bench/echo.py: the minimal asyncio-streams line echo, on uvloop.

What most asyncio code looks like: one coroutine per connection that reads a line with
``readline``, writes it back and awaits ``drain``. It runs on uvloop, so the difference from
residentd is the streams layer (a Task per connection, a Future per read), not the loop.

    python bench/peers/streams_echo.py --listen 127.0.0.1:7102
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import uvloop


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
    writer.close()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(echo, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:7102", help="HOST:PORT")
    host, _, port = parser.parse_args().listen.rpartition(":")
    uvloop.run(serve(host, int(port)))


if __name__ == "__main__":
    main()
