"""A minimal Redis on a bare uvloop ``asyncio.Protocol``: read, parse with hiredis, answer
with one write per chunk. The fastest a Python server can be without a framework."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import answer, new_reader, port_from_args


class Redis(asyncio.Protocol):
    __slots__ = ("reader", "transport")

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.reader = new_reader()

    def data_received(self, chunk: bytes) -> None:
        replies = answer(self.reader, chunk)
        if replies:
            self.transport.write(replies)


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Redis, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(port_from_args(__doc__ or "")))
