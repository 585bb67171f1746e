"""The seams between the author API and the network layer, over real sockets.

A connection reaches its server only through ``ConnectionHost``: here it runs against a server
seen through that protocol alone, on whichever core this run loads (C, or Python with
``RESIDENTD_PURE_PYTHON=1``). ``Server.set_limits`` is how a reload changes limits, the write
watermarks of open connections included. ``Service`` decides how messages reach a session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from residentd.app import App, Session
from residentd.codecs.lines import LineCodec
from residentd.limits import KiB, Limits
from residentd.net.connection import Connection, ConnectionHost, ServiceRuntime
from residentd.net.listener import Address
from residentd.net.server import Server

from .helpers import Client, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]

HOST_MEMBERS = {name for name in vars(ConnectionHost) if not name.startswith("_")}


class OnlyHost:
    """A server seen through ``ConnectionHost``: every other member is refused (and noted)."""

    __slots__ = ("_server", "refused", "used")

    def __init__(self, server: Server) -> None:
        self._server = server
        self.used: set[str] = set()
        self.refused: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name not in HOST_MEMBERS:
            self.refused.append(name)
            raise AttributeError(f"ConnectionHost has no {name!r}")
        self.used.add(name)
        return getattr(self._server, name)


class Talker(Session):
    """Echoes; ``boom`` raises; ``later`` answers from a timer; ``app`` names the app; ``two``
    gets two lines sent as one piece."""

    __slots__ = ()

    def on_message(self, line: bytes) -> None:
        if line == b"boom":
            raise RuntimeError("a handler bug")
        if line == b"later":
            self.call_later(0, self.send, b"from a timer")
        elif line == b"app":
            self.send(self.app.name.encode())
        elif line == b"two":
            self.send_bytes(b"one\ntwo\n", 2)
        else:
            self.send(line)


def test_a_connection_uses_its_server_only_through_connection_host(run: Run) -> None:
    async def main() -> None:
        app = App("seams")
        app.service("main", Talker, lambda: LineCodec(max_line=64))
        loop = asyncio.get_running_loop()
        server = Server(app, Limits(idle_timeout=0.3, handshake_timeout=0), loop)
        host = OnlyHost(server)
        runtime = ServiceRuntime.of(app.services[0])
        listener = await loop.create_server(lambda: Connection(host, runtime), "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        to = Address("tcp", "127.0.0.1", port)
        try:
            talker = await Client.connect(to)
            assert await talker.request(b"hello") == b"hello"
            assert await talker.request(b"app") == b"seams"
            assert await talker.request(b"later") == b"from a timer"
            assert await talker.request(b"two") == b"one"
            assert await talker.readline() == b"two"
            talker.close()

            long = await Client.connect(to)
            long.write(b"x" * 100 + b"\n")
            assert (await long.until_closed()).startswith(b"ERR line-too-long")

            broken = await Client.connect(to)
            broken.write(b"boom\n")
            assert (await broken.until_closed()).startswith(b"ERR internal-error")

            idle = await Client.connect(to)
            assert (await idle.until_closed()).startswith(b"ERR idle-timeout")
            await wait_until(lambda: not server.connections)
        finally:
            listener.close()
            await listener.wait_closed()
        snapshot = server.snapshot()
        assert snapshot["closed"] == {
            "closed-by-peer": 1,
            "line-too-long": 1,
            "internal-error": 1,
            "idle-timeout": 1,
        }
        assert snapshot["messages_in"] == 5  # hello, app, later, two, boom
        assert snapshot["messages_out"] == 5  # hello, seams, from a timer, one, two
        assert host.refused == []
        # And every member the protocol lists was needed by this run.
        assert host.used == HOST_MEMBERS

    run(main())


def test_set_limits_gives_open_connections_the_new_write_watermarks(run: Run) -> None:
    class Quiet(Session):
        __slots__ = ()

    async def main() -> None:
        limits = Limits(write_high_water=64 * KiB, write_low_water=16 * KiB)
        async with serving(Quiet, limits=limits) as server:
            client = await Client.connect(server)
            await wait_until(lambda: len(server.connections) == 1)
            (conn,) = server.connections.values()
            assert conn.transport is not None
            assert conn.transport.get_write_buffer_limits() == (16 * KiB, 64 * KiB)
            server.set_limits(Limits(write_high_water=512 * KiB, write_low_water=128 * KiB))
            assert server.limits.write_high_water == 512 * KiB
            assert conn.transport.get_write_buffer_limits() == (128 * KiB, 512 * KiB)
            # A connection accepted after the change starts with the new watermarks.
            later = await Client.connect(server)
            await wait_until(lambda: len(server.connections) == 2)
            newest = server.connections[max(server.connections)]
            assert newest.transport is not None
            assert newest.transport.get_write_buffer_limits() == (128 * KiB, 512 * KiB)
            client.close()
            later.close()

    run(main())


def test_an_async_on_message_wins_over_a_batch_handler(run: Run) -> None:
    seen: list[tuple[str, bytes]] = []

    class Both(Session):
        __slots__ = ()

        async def on_message(self, line: bytes) -> None:
            await asyncio.sleep(0)
            seen.append(("each", line))
            self.send(line)

        def on_messages(self, lines: list[bytes]) -> None:
            seen.extend(("batch", line) for line in lines)

    app = App("both")
    service = app.service("main", Both, LineCodec)
    assert service.async_handler
    assert not service.batch_handler

    async def main() -> None:
        async with serving(Both, app=app) as server:
            client = await Client.connect(server)
            client.write(b"a\nb\nc\n")
            assert [await client.readline() for _ in range(3)] == [b"a", b"b", b"c"]
            client.close()

    run(main())
    assert seen == [("each", b"a"), ("each", b"b"), ("each", b"c")]
