"""Resources are owned: many connect/close cycles leave fds and live objects at their baseline."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd.app import Session
from residentd.limits import Limits
from support import open_fds

from .helpers import Client, live_connections, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]
CYCLES = 5000
AT_ONCE = 50


class Mixed(Session):
    """Echoes, starts a timer per connection, closes on ``quit``, raises on ``boom``."""

    def on_connect(self) -> None:
        self.call_every(60, self.send, b"tick")

    def on_message(self, line: bytes) -> None:
        if line == b"quit":
            self.close("bye")
        elif line == b"boom":
            raise RuntimeError("expected in this test")
        else:
            self.send(line)


async def cycle(server: Any, n: int) -> None:
    """One connection's life; the ending depends on ``n``."""
    client = await Client.connect(server)
    ending = n % 5
    if ending == 0:  # the client closes after an answer
        assert await client.request(b"%d" % n) == b"%d" % n
        client.close()
    elif ending == 1:  # the client resets the connection
        assert client.transport is not None
        sock = client.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.write(b"half a line")
        client.abort()
    elif ending == 2:  # the server closes
        client.write(b"quit\n")
        await client.until_closed()
    elif ending == 3:  # the handler fails
        client.write(b"boom\n")
        await client.until_closed()
    else:  # the client goes away without a word
        client.close()
    await asyncio.sleep(0)


def quiet(caplog: pytest.LogCaptureFixture) -> None:
    """Keep residentd's log records out of the capture: a captured traceback holds frames, and
    through them the very connections this test counts."""
    caplog.set_level(logging.CRITICAL + 1, logger="residentd")


def test_connect_close_cycles_return_to_baseline(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    quiet(caplog)

    async def main() -> None:
        async with serving(Mixed, limits=Limits(max_connections=AT_ONCE * 2)) as server:
            for n in range(AT_ONCE):  # warm up: first use may open lasting fds
                await cycle(server, n)
            await wait_until(lambda: not server.connections)
            fds, objects = open_fds(), live_connections()
            for start in range(0, CYCLES, AT_ONCE):
                await asyncio.gather(*(cycle(server, n) for n in range(start, start + AT_ONCE)))
            await wait_until(lambda: not server.connections, what="every connection closed")
            await asyncio.sleep(0.05)  # let the transports finish closing
            assert abs(open_fds() - fds) <= 2, (open_fds(), fds)
            assert live_connections() == objects == 0
            assert not server._per_ip
            assert len(server._wheel) == 0
            snapshot = server.snapshot()
            assert snapshot["accepted"] == CYCLES + AT_ONCE
            assert sum(snapshot["closed"].values()) == CYCLES + AT_ONCE
            assert snapshot["closed"]["bye"] == snapshot["closed"]["internal-error"]
            assert snapshot["refused"] == {}

    run(main())


def test_refused_and_timed_out_connections_leave_nothing(
    run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    quiet(caplog)

    async def main() -> None:
        limits = Limits(max_connections=5, handshake_timeout=0.1)
        async with serving(Mixed, limits=limits) as server:
            fds = open_fds()
            clients = [await Client.connect(server) for _ in range(20)]
            for client in clients:
                await client.until_closed()
            await wait_until(lambda: not server.connections)
            await asyncio.sleep(0.05)
            snapshot = server.snapshot()
            assert snapshot["refused"] == {"max-connections": 15}
            assert snapshot["closed"] == {"handshake-timeout": 5}
            assert abs(open_fds() - fds) <= 2
            assert live_connections() == 0

    run(main())
