"""Client connections for bots: TCP lines, JSON lines, RESP and WebSocket, one interface.

Every transport is a ``Connection`` with the same four calls: ``send(message)``,
``recv(match=None)``, ``request(message, match=None)`` (send, then wait for the reply) and
``close()``. A message that arrives while a bot waits for one that ``match`` accepts goes to
the connection's ``on_push`` callback (a chat server's pushes, say), or is kept in a small
inbox for a later ``recv`` when there is none. A bot waits for one message at a time.

The TCP transports are asyncio Protocols with the project's own sans-IO codecs (``LineCodec``),
msgspec for JSON and hiredis's ``Reader`` for RESP: a reply is decoded in ``data_received`` and
handed to the waiting bot's future, with no Task per message. WebSocket uses the ``websockets``
asyncio client, with one reader task per connection.

Connections leave from a given loopback source address (127.0.0.2, ...) with
``IP_BIND_ADDRESS_NO_PORT``, so the kernel picks the source port at connect time and each
source address has its own ephemeral port range towards the target.

A reply that does not come within the timeout fails the wait with ``TimeoutError``. The timeout
costs nothing per request (no timer, no clock read): a ``Watchdog`` looks at every connection a
few times a second and notes when it first saw its current wait, so a wait is failed between
one timeout and one timeout plus half a second after it began.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

import hiredis
import msgspec

from residentd.codecs.lines import LineCodec
from residentd.errors import ProtocolError, ResidentdError

# Linux: bind the source address now, choose the port when connecting.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
INBOX_LIMIT = 1000
MAX_LINE = 16 * 1024 * 1024

Match = Callable[[Any], bool]


class ConnectionClosed(ResidentdError, ConnectionError):
    """The peer closed the connection, or it failed; ``reason`` says how."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Connection(asyncio.Protocol):
    """What every transport offers a bot; subclasses decode bytes and call ``_deliver``."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.on_push: Callable[[Any], None] | None = None
        self.closed: ConnectionClosed | None = None
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[Any] | None = None
        # The watchdog's notes: the wait it saw last, and when it first saw it.
        self._seen_waiter: asyncio.Future[Any] | None = None
        self._seen_at = 0.0
        self._match: Match | None = None
        self._inbox: deque[Any] = deque(maxlen=INBOX_LIMIT)

    # -- for bots --------------------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        if self.closed is not None:
            raise self.closed
        assert self.transport is not None
        self.transport.write(self.encode(message))

    def send_nowait(self, message: Any) -> None:
        """Send without waiting, from a callback (an answer to a server's ping, say)."""
        if self.closed is None and self.transport is not None:
            self.transport.write(self.encode(message))

    async def recv(self, match: Match | None = None) -> Any:
        """The next message (that ``match`` accepts, when given)."""
        inbox = self._inbox
        while inbox:
            message = inbox.popleft()
            if match is None or match(message):
                return message
            self._push(message)
        if self.closed is not None:
            raise self.closed
        waiter = self._waiter = self._loop.create_future()
        self._match = match
        try:
            return await waiter
        finally:
            self._waiter = None

    async def request(self, message: Any, match: Match | None = None) -> Any:
        """Send ``message`` and wait for its reply (the hot path: ``recv`` inlined)."""
        if self.closed is not None:
            raise self.closed
        self.transport.write(self.encode(message))  # type: ignore[union-attr]
        if self._inbox:
            return await self.recv(match)
        waiter = self._waiter = self._loop.create_future()
        self._match = match
        try:
            return await waiter
        finally:
            self._waiter = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def check_timeout(self, now: float, timeout: float) -> None:
        """Fail the current wait if the watchdog has seen it for over ``timeout`` seconds."""
        waiter = self._waiter
        if waiter is None:
            self._seen_waiter = None
        elif waiter is not self._seen_waiter:
            self._seen_waiter = waiter
            self._seen_at = now
        elif now - self._seen_at > timeout and not waiter.done():
            waiter.set_exception(TimeoutError(f"no reply within {timeout:g}s"))

    # -- for subclasses ----------------------------------------------------------------------------

    def encode(self, message: Any) -> bytes:
        raise NotImplementedError

    def _deliver(self, message: Any) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            match = self._match
            if match is None or match(message):
                waiter.set_result(message)
                return
        self._push(message)

    def _push(self, message: Any) -> None:
        if self.on_push is not None:
            self.on_push(message)
        else:
            self._inbox.append(message)

    def _fail(self, reason: str) -> None:
        if self.closed is None:
            self.closed = ConnectionClosed(reason)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.closed)

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("connection-reset" if exc is not None else "closed-by-peer")


class LinesConnection(Connection):
    """Lines of bytes ended by ``\\n``; messages are ``bytes`` (or ``str`` to send)."""

    name = "lines"

    def __init__(self) -> None:
        super().__init__()
        self._codec = LineCodec(max_line=MAX_LINE)

    def encode(self, message: bytes | str) -> bytes:
        return (message.encode() if isinstance(message, str) else message) + b"\n"

    def data_received(self, data: bytes) -> None:
        codec = self._codec
        try:
            lines = codec.feed(data)
            if len(lines) == 1:
                self._deliver(lines[0])
            else:
                for line in lines:
                    self._deliver(line)
            if codec.buffered:
                codec.feed(b"")  # raises the error the lines came before, if there is one
        except ProtocolError as error:
            self._fail(error.code)
            self.close()


class JsonConnection(LinesConnection):
    """One JSON object per line; messages are what msgspec decodes (dicts) and encodes."""

    name = "json"
    _decode = msgspec.json.Decoder().decode
    _encode = msgspec.json.Encoder().encode

    def encode(self, message: Any) -> bytes:
        return self._encode(message) + b"\n"

    def _deliver(self, message: Any) -> None:
        if not message:
            return
        try:
            decoded = self._decode(message)
        except msgspec.DecodeError:
            self._fail("invalid-json")
            self.close()
            return
        super()._deliver(decoded)


class RespConnection(Connection):
    """RESP (Redis): send a command as a tuple of arguments, get hiredis's decoded reply.

    An error reply comes back as a ``hiredis.ReplyError`` value, not raised: the bot decides."""

    name = "resp"

    def __init__(self) -> None:
        super().__init__()
        self._reader = hiredis.Reader()

    def encode(self, message: tuple[Any, ...] | list[Any]) -> bytes:
        return bytes(hiredis.pack_command(tuple(message)))

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        try:
            reply = reader.gets()
            while reply is not False:
                self._deliver(reply)
                reply = reader.gets()
        except hiredis.ProtocolError:
            self._fail("protocol-error")
            self.close()


class WebSocketConnection(Connection):
    """JSON messages in WebSocket text frames, over the ``websockets`` asyncio client."""

    name = "websocket"
    _decode = msgspec.json.Decoder().decode
    _encode = msgspec.json.Encoder().encode

    def __init__(self, socket_: Any) -> None:
        super().__init__()
        self._ws = socket_
        self._sending: set[asyncio.Task[None]] = set()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed as WsClosed

        try:
            async for frame in self._ws:
                self._deliver(self._decode(frame))
        except WsClosed as exc:
            self._fail("closed-by-peer" if exc.rcvd is not None else "connection-reset")
            return
        except (OSError, msgspec.DecodeError) as exc:
            self._fail(type(exc).__name__)
            return
        self._fail("closed-by-peer")

    async def send(self, message: Any) -> None:
        if self.closed is not None:
            raise self.closed
        await self._ws.send(self._encode(message).decode())

    async def request(self, message: Any, match: Match | None = None) -> Any:
        await self.send(message)
        return await self.recv(match)

    def send_nowait(self, message: Any) -> None:
        if self.closed is None:
            task = self._loop.create_task(self.send(message))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed send shows up as the connection closing

    def close(self) -> None:
        self._reader.cancel()
        self._fail("closed")
        transport = self._ws.transport
        if transport is not None:
            transport.abort()


TCP_TRANSPORTS: dict[str, type[Connection]] = {
    "lines": LinesConnection,
    "json": JsonConnection,
    "resp": RespConnection,
}
TRANSPORTS = (*TCP_TRANSPORTS, "websocket")


def _bound_socket(host: str, source: str | None) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None and family == socket.AF_INET:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((source, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def open_connection(
    transport: str,
    host: str,
    port: int,
    *,
    source: str | None = None,
    path: str = "/",
    timeout: float = 10.0,
) -> Connection:
    """Connect to ``host:port`` over ``transport`` from the ``source`` address."""
    loop = asyncio.get_running_loop()
    sock = _bound_socket(host, source)
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(sock, (host, port))
            if transport == "websocket":
                return await _open_websocket(sock, host, port, path)
            factory = TCP_TRANSPORTS[transport]
            _, protocol = await loop.create_connection(factory, sock=sock)
            return protocol
    except BaseException:
        sock.close()
        raise


async def _open_websocket(sock: socket.socket, host: str, port: int, path: str) -> Connection:
    from websockets.asyncio.client import connect

    uri = f"ws://{host if ':' not in host else f'[{host}]'}:{port}{path}"
    ws = await connect(
        uri,
        sock=sock,
        proxy=None,
        compression=None,
        ping_interval=None,
        max_queue=None,
        origin=None,
        user_agent_header="residentd-bots",
    )
    return WebSocketConnection(ws)


class Watchdog:
    """Fails replies that do not come within ``timeout`` seconds, checking a few times a second."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.connections: set[Connection] = set()
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.timeout > 0:
            self._tick()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        now = time.monotonic()
        timeout = self.timeout
        for conn in self.connections:
            conn.check_timeout(now, timeout)
        interval = min(0.25, timeout / 4)
        self._handle = asyncio.get_running_loop().call_later(interval, self._tick)
