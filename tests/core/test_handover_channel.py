"""The master/worker channel closed while a receive waits on it: the loop must stop watching
its descriptor, or the next socket given the same number is never served (under uvloop a
stale watch swallowed an admin connection's request, and a status call timed out)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from residentd.net.handover import Channel, HandoverError


async def _closed_while_receiving_then_reused() -> bytes:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    channel = Channel(ours, loop)
    receiving = loop.create_task(channel.receive())
    await asyncio.sleep(0.01)  # the receive waits on the loop
    channel.close()  # as the master does when a worker's pidfd says it ended
    theirs.close()

    # The next socket the process makes gets the freed number; a server reads from it.
    server = await asyncio.start_server(_echo_line, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    client.setblocking(False)
    receiving.cancel()  # the reader task is cancelled after the close, as in the master
    with contextlib.suppress(asyncio.CancelledError, HandoverError):
        await receiving
    try:
        await loop.sock_sendall(client, b"hello\n")
        reply = await asyncio.wait_for(loop.sock_recv(client, 100), 5)
    finally:
        client.close()
        server.close()
        await server.wait_closed()
    return reply


async def _echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


def test_a_closed_channel_leaves_no_watch_on_its_descriptor(
    run: Callable[[Coroutine[Any, Any, bytes]], bytes],
) -> None:
    for _ in range(20):  # the freed number goes to the server's accepted socket some rounds
        assert run(_closed_while_receiving_then_reused()) == b"hello\n"
