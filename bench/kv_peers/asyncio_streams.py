"""A minimal Redis on asyncio streams (on uvloop): a read/parse/write/drain loop per client,
the way most asyncio servers are written."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import answer, new_reader, port_from_args


async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    parser = new_reader()
    try:
        while chunk := await reader.read(65536):
            replies = answer(parser, chunk)
            if replies:
                writer.write(replies)
                await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(client, "127.0.0.1", port, backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(port_from_args(__doc__ or "")))
