"""One connection to Redis for the broker link: pipelined commands and batched messages.

``RedisConnection`` is an asyncio protocol. ``command`` queues a command and returns a future
for its reply; every command queued in one loop iteration goes out in one write at the start
of the next (a pipeline), and the replies, parsed by hiredis's ``Reader`` (the C parser
redis-py itself uses), resolve the futures in order. After ``subscribe`` the messages of the
channel are handed to ``on_messages`` in batches, every message one read brought at once, so
the node fans a burst of events out in one loop iteration and each member gets them in one
write. A connection that breaks, a reply that cannot be parsed, or a command left without a
reply for ``timeout`` seconds fails every waiting command with ``ConnectionError`` and calls
``on_lost`` once.

Why not redis-py's asyncio client, which the first version used: on a busy node its per-reply
path (each reply of a pipeline read on its own inside an asyncio timeout) and its PubSub
(``get_message``, one awaited call per message) cost a brokered request several times what
the request's own work costs; ``bench/broker_client.py`` measures both on the same work, and
docs/architecture.md gives the figures.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

ReplyError = hiredis.ReplyError  # an error reply (``-ERR ...``), raised from a command's future


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where Redis is, from a URL as redis-py reads them: ``redis://[[USER]:PASSWORD@]HOST
    [:PORT][/DB]``, ``rediss://...`` (TLS, the server's certificate verified) or
    ``unix://[[USER]:PASSWORD@]/PATH[?db=DB]``."""

    host: str | None = None
    port: int = 6379
    path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        db_text = query.get("db", [""])[0]
        if parts.scheme == "unix":
            if not parts.path:
                raise ValueError(f"{url!r}: no socket path")
            return cls(None, 0, unquote(parts.path), int(db_text or 0), username, password)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"{url!r}: the scheme is redis://, rediss:// or unix://")
        path = parts.path.strip("/")
        return cls(
            parts.hostname or "localhost",
            parts.port or 6379,
            None,
            int(path or db_text or 0),
            username,
            password,
            parts.scheme == "rediss",
        )


def pack(args: tuple[Any, ...]) -> bytes:
    """A command as a RESP array of bulk strings. The exact types a node sends come first;
    their subclasses (and floats) take the slower general tests."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = arg.__class__
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int:
            data = b"%d" % arg
        elif isinstance(arg, bytes):
            data = bytes(arg)
        elif isinstance(arg, str):
            data = str.encode(arg)
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"a Redis argument is bytes, str, int or float, not {type(arg)}")
        out.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(out)


async def connect(
    address: RedisAddress, timeout: float, on_lost: Callable[[BaseException], None]
) -> RedisConnection:
    """A connection to ``address``, authenticated and on its database; OSError (a
    ``TimeoutError`` after ``timeout`` seconds) or ReplyError when Redis refuses."""
    loop = asyncio.get_running_loop()
    made: Coroutine[Any, Any, tuple[asyncio.BaseTransport, RedisConnection]]
    if address.path is not None:
        made = loop.create_unix_connection(lambda: RedisConnection(on_lost, timeout), address.path)
    else:
        context = ssl.create_default_context() if address.tls else None
        made = loop.create_connection(
            lambda: RedisConnection(on_lost, timeout),
            address.host or "localhost",
            address.port,
            ssl=context,
        )
    _, connection = await asyncio.wait_for(made, timeout)
    try:
        if address.password is not None:
            credentials = (address.username, address.password) if address.username else ()
            await connection.command("AUTH", *(credentials or (address.password,)))
        if address.db:
            await connection.command("SELECT", address.db)
    except BaseException:
        connection.close()
        raise
    return connection


class RedisConnection(asyncio.Protocol):
    def __init__(self, on_lost: Callable[[BaseException], None], timeout: float) -> None:
        self.on_lost = on_lost
        self.timeout = timeout
        self.on_messages: Callable[[list[bytes]], None] | None = None
        self.lost: BaseException | None = None
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self._progress = 0.0  # loop time of the last reply, or of the first command after none
        self._watchdog: asyncio.TimerHandle | None = None

    # -- commands ------------------------------------------------------------------------------

    def command(self, *args: Any) -> asyncio.Future[Any]:
        """Queue a command; its reply (a ReplyError for an error reply) comes in the future."""
        if self.lost is not None:
            raise ConnectionError(f"the connection to Redis is lost: {self.lost}")
        future = self._loop.create_future()
        if not self._waiting:
            self._progress = self._loop.time()
        self._waiting.append(future)
        self._outgoing.append(pack(args))
        if len(self._outgoing) == 1:
            self._loop.call_soon(self._flush)
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self.timeout, self._check)
        return future

    def last_waiting(self) -> asyncio.Future[Any] | None:
        """The future of the last command queued or sent and not yet answered, if any."""
        return self._waiting[-1] if self._waiting else None

    async def subscribe(self, channel: str, on_messages: Callable[[list[bytes]], None]) -> None:
        """Take the channel's messages from now on; the connection takes no other command."""
        self.on_messages = on_messages
        await self.command("SUBSCRIBE", channel)

    def _flush(self) -> None:
        if self._outgoing and self._transport is not None and self.lost is None:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def _check(self) -> None:
        self._watchdog = None
        if not self._waiting or self.lost is not None:
            return
        silent = self._loop.time() - self._progress
        if silent >= self.timeout:
            self._lose(TimeoutError(f"no reply from Redis in {self.timeout:g} s"))
            return
        self._watchdog = self._loop.call_later(self.timeout - silent, self._check)

    # -- the protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        messages: list[bytes] = []
        waiting = self._waiting
        try:
            while (reply := reader.gets()) is not False:
                if (
                    self.on_messages is not None
                    and type(reply) is list
                    and len(reply) == 3
                    and reply[0] == b"message"
                ):
                    messages.append(reply[2])
                    continue
                if not waiting:
                    raise hiredis.ProtocolError(f"a reply nobody asked for: {reply!r:.100}")
                future = waiting.popleft()
                if not future.done():
                    if isinstance(reply, ReplyError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
        except hiredis.ProtocolError as exc:
            self._lose(exc)
        self._progress = self._loop.time()
        if messages and self.on_messages is not None:
            self.on_messages(messages)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(exc or ConnectionResetError("Redis closed the connection"))

    def _lose(self, exc: BaseException) -> None:
        if self.lost is not None:
            return
        self.lost = exc
        if self._transport is not None:
            self._transport.abort()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(f"the connection to Redis is lost: {exc}"))
                future.exception()  # retrieved: a caller may have stopped waiting
        self.on_lost(exc)

    def close(self) -> None:
        """Close it; waiting commands fail, and ``on_lost`` is called as for a break."""
        self._lose(ConnectionAbortedError("closed"))
