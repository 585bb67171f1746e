"""A stopping server's lingering close, on real sockets: the replies to what it read reach
the client, then an EOF, never a reset; input after the stop began is read and discarded,
never executed; the kernel's count of unacknowledged bytes; when a lingering close is done."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd.limits import Limits
from residentd.net import lingering
from residentd.net.lingering import LINGER_QUIET, LINGER_TIME

from .helpers import Client, Echo, address, fresh, serving, wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def slow_client(server: Any, receive_buffer: int = 4096) -> Client:
    """A client with a small receive buffer that reads nothing until told to, so the
    server's replies wait in the server's kernel."""
    where = address(server)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (where.host, where.port))
    client = Client()
    await loop.create_connection(lambda: client, sock=sock)
    assert client.transport is not None
    client.transport.pause_reading()
    return client


def test_stop_delivers_every_reply_then_eof_while_the_client_sends_on(run: Run) -> None:
    line = b"r" * 999 + b"\n"

    async def main() -> None:
        async with serving(fresh(Echo), limits=Limits(write_high_water=1 << 20)) as server:
            client = await slow_client(server)
            client.write(line * 200)
            await wait_until(lambda: server.snapshot()["messages_in"] == 200)
            stop = asyncio.ensure_future(server.stop(5.0))
            await wait_until(lambda: server.stopping)
            client.write(b"after the stop\n" * 100)  # unread input when the server closes
            await asyncio.sleep(0.3)
            assert client.transport is not None
            client.transport.resume_reading()
            received = await client.until_closed()
            await stop
            assert client.error is None  # an EOF, not a reset
            assert received == line * 200
            snapshot = server.snapshot()
            assert snapshot["messages_in"] == snapshot["messages_out"] == 200  # none executed
            assert snapshot["bytes_in"] == len(line * 200) + len(b"after the stop\n" * 100)
            assert (snapshot["dropped_connections"], snapshot["dropped_bytes"]) == (0, 0)

    run(main())


def test_a_peer_that_never_reads_is_aborted_at_the_deadline_and_counted(run: Run) -> None:
    async def main() -> None:
        async with serving(fresh(Echo)) as server:
            client = await slow_client(server)
            client.write((b"x" * 999 + b"\n") * 100)
            await wait_until(lambda: server.snapshot()["messages_in"] == 100)
            await server.stop(0.3)
            snapshot = server.snapshot()
            assert snapshot["closed"] == {"shutdown-timeout": 1}
            assert snapshot["dropped_connections"] == 1
            assert 0 < snapshot["dropped_bytes"] <= snapshot["bytes_out"]
            client.close()

    run(main())


def test_unacknowledged_counts_what_the_peer_has_not_taken(run: Run) -> None:
    async def main() -> None:
        sent: list[asyncio.Transport] = []

        class Keep(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sent.append(transport)  # type: ignore[arg-type]

        loop = asyncio.get_running_loop()
        listener = await loop.create_server(Keep, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(("127.0.0.1", port))
        peer.setblocking(False)
        await wait_until(lambda: sent)
        transport = sent[0]
        assert lingering.unacknowledged(transport) == 0
        transport.write(b"z" * 200_000)
        await wait_until(lambda: transport.get_write_buffer_size() == 0)
        assert (lingering.unacknowledged(transport) or 0) > 100_000
        taken = 0
        while taken < 200_000:
            try:
                taken += len(peer.recv(1 << 16))
            except BlockingIOError:
                await asyncio.sleep(0.005)
        await wait_until(lambda: lingering.unacknowledged(transport) == 0, what="the last ACK")
        peer.close()
        transport.close()
        listener.close()

    run(main())


class FakeTransport:
    def __init__(self, buffered: int = 0, sock: Any = None) -> None:
        self.buffered = buffered
        self.sock = sock

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default


def test_unacknowledged_of_unix_sockets_and_of_transports_without_one() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"never read")
        assert lingering.unacknowledged(FakeTransport(sock=left)) == 0  # type: ignore[arg-type]
    assert lingering.unacknowledged(FakeTransport()) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("buffered", "left", "lingered", "quiet", "done"),
    [
        (10, 0, 99.0, 99.0, False),  # still writing: only the deadline ends it
        (0, 5, 99.0, 99.0, False),  # the peer has not taken everything
        (0, 0, 0.0, LINGER_QUIET, True),  # all taken, and the peer has gone quiet
        (0, 0, 0.0, LINGER_QUIET / 2, False),  # all taken, but it may still send or close
        (0, 0, LINGER_TIME, 0.0, True),  # ... for as long as a linger lasts
        (0, None, LINGER_TIME / 2, 99.0, False),  # cannot tell: the whole linger
        (0, None, LINGER_TIME, 0.0, True),
    ],
)
def test_when_a_lingering_close_is_done(
    monkeypatch: pytest.MonkeyPatch,
    buffered: int,
    left: int | None,
    lingered: float,
    quiet: float,
    done: bool,
) -> None:
    monkeypatch.setattr(lingering, "unacknowledged", lambda transport: left)
    transport: Any = FakeTransport(buffered)
    assert lingering.done(transport, lingered, quiet) is done
