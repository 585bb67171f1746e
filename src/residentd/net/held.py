"""Connections accepted while a handler holds the loop: kv's slow scripts.

Redis keeps accepting while a script runs past busy-reply-threshold (its
``processEventsWhileBlocked`` handles every file event, accepts included), so an operator can
connect with redis-cli and send SCRIPT KILL. Here the loop cannot run until the handler
returns, so ``HeldAcceptor.accept`` takes what waits in the listen backlogs itself,
without waiting, and gives each new socket a ``Connection`` on a ``HeldTransport``: the plain
non-blocking socket, which the connection reads through ``serve_now`` (as the handler serves
every other connection) and writes to at once. The connection is admitted as any other (the
connection limits apply) and its session is made as usual.

When the handler has returned, ``release`` hands each socket to the loop
(``connect_accepted_socket``) behind a ``Resumed`` protocol, and the same connection carries on
there: output the held transport could not send yet goes first, then everything the
connection writes; what the peer sends next reaches it as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from residentd.net.connection import Connection

if TYPE_CHECKING:
    from residentd.net.server import Server

log = logging.getLogger(__name__)

# Output a held connection may have waiting (its peer does not read) before it is dropped.
HELD_OUTPUT_LIMIT = 1 << 20


class HeldTransport(asyncio.Transport):
    """A connected non-blocking socket as a transport, for while the loop is held: writes go
    to the socket at once, what it does not take waits for ``release``."""

    def __init__(self, sock: socket.socket, peer: Any) -> None:
        super().__init__()
        self.sock = sock
        self.peer = peer
        self.pending = bytearray()
        self.closing = False
        self.lost = False  # closed at once (abort, output past the limit): no handover
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        if name == "peername":
            return self.peer
        if name == "sockname":
            return self.sock.getsockname()
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.lost:
            return
        if not self.pending:
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the peer is gone: the loop's transport will tell the connection
                sent = len(data)
            data = memoryview(data)[sent:]
        self.pending += data
        if len(self.pending) > HELD_OUTPUT_LIMIT:
            self.abort()

    def get_write_buffer_size(self) -> int:
        return len(self.pending)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # the loop's transport takes the connection's limits at ``release``

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.closing or self.lost

    def close(self) -> None:
        """Close once what is waiting is sent: at ``release``, on the loop's transport."""
        self.closing = True

    def abort(self) -> None:
        self.lost = True
        self.pending.clear()

    def can_write_eof(self) -> bool:
        return False


class Resumed(asyncio.Protocol):
    """The loop's protocol for a connection accepted while the loop was held: it gives the
    loop's transport to the connection and passes every event on to it."""

    def __init__(self, conn: Connection, held: HeldTransport) -> None:
        self.conn = conn
        self.held = held

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        loop_transport = cast(asyncio.Transport, transport)
        conn, held = self.conn, self.held
        if held.pending:
            loop_transport.write(bytes(held.pending))
        conn.transport = loop_transport
        conn.apply_limits()
        if held.closing:
            loop_transport.close()
        elif not held.reading:
            loop_transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        self.conn.data_received(data)

    def eof_received(self) -> bool | None:
        return self.conn.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn.pause_writing()

    def resume_writing(self) -> None:
        self.conn.resume_writing()


class HeldAcceptor:
    """Accepts on a server's listeners while the loop is held, and hands the connections it
    made to the loop afterwards."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.held: list[tuple[Connection, HeldTransport]] = []
        # A duplicate of each listening socket to accept on (the loop's own stay untouched),
        # with the service it listens for.
        self._listeners = [
            (socket.socket(fileno=os.dup(sock.fileno())), server.runtimes[service])
            for service, listeners in server.listeners.items()
            for listener in listeners
            for sock in listener.sockets
        ]

    def accept(self) -> None:
        """Take every connection waiting in the backlogs, without waiting."""
        for listener, runtime in self._listeners:
            while True:
                try:
                    sock, peer = listener.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # out of descriptors, ...: the loop retries later
                    log.warning("accepting while the loop is held failed: %s", exc)
                    break
                sock.setblocking(False)
                if sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                transport = HeldTransport(sock, peer if peer else "")
                conn = Connection(self.server, runtime)
                conn.connection_made(transport)
                self.held.append((conn, transport))

    def release(self) -> None:
        """Hand every held connection to the loop (it takes them at its next iteration)."""
        loop = self.server.loop
        for conn, transport in self.held:
            if transport.lost:
                transport.sock.close()
                loop.call_soon(conn.connection_lost, None)
                continue
            handover = loop.create_task(
                loop.connect_accepted_socket(partial(Resumed, conn, transport), transport.sock)
            )
            handover.add_done_callback(partial(_handed_over, conn, transport))
        self.held = []
        for listener, _ in self._listeners:
            with contextlib.suppress(OSError):
                listener.close()
        self._listeners = []


def _handed_over(conn: Connection, held: HeldTransport, task: asyncio.Task[Any]) -> None:
    """A handover the loop could not make (the peer left meanwhile): the connection ends."""
    failure = None if task.cancelled() else task.exception()
    if task.cancelled() or failure is not None:
        held.sock.close()
        conn.connection_lost(failure if isinstance(failure, Exception) else None)
