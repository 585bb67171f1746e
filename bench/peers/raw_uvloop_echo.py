"""Peer for bench/echo.py: the minimal raw uvloop Protocol line echo.

The classic raw echo writes back whatever ``data_received`` got. This one does the least work
that still makes it a *line* server, as residentd's echo is: it splits each chunk into lines,
keeps a trailing partial line for the next chunk, and writes the whole lines back in one
``transport.write``. No limits, no sessions, no counters: the floor residentd is measured
against.

    python bench/peers/raw_uvloop_echo.py --listen 127.0.0.1:7101
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop


class LineEcho(asyncio.Protocol):
    __slots__ = ("partial", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.partial = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.partial:
            data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if lines:
            assert self.transport is not None
            self.transport.write(b"\n".join(lines) + b"\n")


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LineEcho, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:7101", help="HOST:PORT")
    host, _, port = parser.parse_args().listen.rpartition(":")
    uvloop.run(serve(host, int(port)))


if __name__ == "__main__":
    main()
