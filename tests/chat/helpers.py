"""Helpers of the chat tests: an in-process chat server and peers that speak its protocol.

``chat_server(**options)`` starts a fresh chat app (its own hub) on ephemeral loopback ports of
the running loop, TCP and HTTP, and stops it on exit; it has the secret ``SECRET`` unless the
options give another. ``Chat.signed_in`` signs a user in with a token made with that secret,
``Chat.guest`` signs a guest in (named ``~name`` by the server). With ``CHAT_TEST_BROKER`` set
to a Redis URL, every such server is a node on that Redis (flushed first), so the protocol
tests check the brokered hub too: ``CHAT_TEST_BROKER=redis://127.0.0.1:6379/15 pytest
tests/chat/test_protocol.py`` (a scratch database: it is flushed).

A ``Peer`` is one client connection, over TCP (``TcpPeer``: JSON lines on an asyncio stream)
or over WebSocket (``WsPeer``: the ``websockets`` asyncio client, one message per text frame);
both keep the pushes that arrive while a test waits for a reply, so a test can ask for them in
order afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from residentd.apps.chat import ChatApp, build_app
from residentd.apps.chat.tokens import make_token
from residentd.limits import Limits
from residentd.net.server import Server

TIMEOUT = 5.0
SECRET = "test-secret"
TRANSPORTS = ["tcp", "ws"]


class Chat:
    """A running in-process chat server."""

    def __init__(self, server: Server, app: ChatApp) -> None:
        self.server = server
        self.app = app
        self.tcp = server.addresses("chat")[0]
        self.http = server.addresses("http")[0]

    @property
    def ws_url(self) -> str:
        return f"ws://{self.http.host}:{self.http.port}/ws"

    @property
    def origin(self) -> str:
        return f"http://{self.http.host}:{self.http.port}"

    async def peer(self, transport: str, **options: Any) -> Peer:
        if transport == "tcp":
            return await TcpPeer.open(self.tcp.host, self.tcp.port)
        return await WsPeer.open(self.ws_url, **options)

    def token(self, user: str) -> str:
        return make_token(self.app.options["secret"], user)

    async def signed_in(self, transport: str, user: str, **hello: Any) -> Peer:
        """A connection signed in as ``user``, with a token unless ``hello`` gives one."""
        hello.setdefault("token", self.token(user))
        peer = await self.peer(transport)
        reply = await peer.request("hello", v=1, user=user, **hello)
        assert reply["op"] == "hello" and reply["user"] == user, reply
        return peer

    async def guest(self, transport: str, name: str) -> Peer:
        """A guest's connection: a ``hello`` without a token, for ``~name``."""
        peer = await self.peer(transport)
        reply = await peer.request("hello", v=1, user=name)
        assert reply == {**reply, "op": "hello", "user": f"~{name}", "guest": True}, reply
        return peer


@asynccontextmanager
async def chat_server(limits: Limits | None = None, **options: Any) -> AsyncIterator[Chat]:
    app = build_app()
    broker = os.environ.get("CHAT_TEST_BROKER")  # run the protocol tests against one broker
    if broker and "broker" not in options and "state_dir" not in options:
        redis.Redis.from_url(broker).flushdb()
        options["broker"] = broker
    app.options.update({"secret": SECRET, **options})
    server = Server(app, limits or Limits(), asyncio.get_running_loop())
    await server.start({"chat": ["127.0.0.1:0"], "http": ["127.0.0.1:0"]})
    try:
        yield Chat(server, app)
    finally:
        await server.stop(2.0)


class Closed(Exception):
    """The server closed the connection; ``received`` is what came before."""


class Peer:
    """One client connection speaking the chat protocol."""

    def __init__(self) -> None:
        self.pushes: deque[dict[str, Any]] = deque()
        self._ids = itertools.count(1)

    async def send_raw(self, data: str | bytes) -> None:
        raise NotImplementedError

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def send(self, op: str, **fields: Any) -> int:
        request_id = next(self._ids)
        await self.send_raw(json.dumps({"op": op, "id": request_id, **fields}))
        return request_id

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and return its reply (or error); pushes on the way are kept."""
        request_id = await self.send(op, **fields)
        return await self.reply(request_id)

    async def reply(self, request_id: Any) -> dict[str, Any]:
        while True:
            message = await self.receive()
            if message.get("id") == request_id:
                return message
            self.pushes.append(message)

    async def push(self, op: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next push of kind ``op`` (earlier pushes of other kinds are dropped)."""
        while self.pushes:
            message = self.pushes.popleft()
            if message["op"] == op and "id" not in message:
                return message
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self.receive(max(deadline - loop.time(), 0.01))
            if message["op"] == op and "id" not in message:
                return message

    async def no_push(self, op: str, wait: float = 0.3) -> None:
        """Assert that no push of kind ``op`` arrives within ``wait`` seconds."""
        with contextlib.suppress(TimeoutError):
            while True:
                message = await self.receive(wait)
                assert message["op"] != op, message
        assert all(message["op"] != op for message in self.pushes)

    async def closed(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Wait for the server to close; return the messages that came first."""
        received = []
        try:
            while True:
                received.append(await self.receive(timeout))
        except Closed:
            return received


class TcpPeer(Peer):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__()
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> TcpPeer:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode()
        if not data.endswith(b"\n"):
            data += b"\n"
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except ConnectionError:
            line = b""
        if not line:
            raise Closed()
        message: dict[str, Any] = json.loads(line)
        return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class WsPeer(Peer):
    def __init__(self, connection: ClientConnection) -> None:
        super().__init__()
        self.connection = connection

    @classmethod
    async def open(cls, url: str, **options: Any) -> WsPeer:
        options.setdefault("compression", None)
        connection = await ws_connect(url, proxy=None, open_timeout=TIMEOUT, **options)
        return cls(connection)

    async def send_raw(self, data: str | bytes) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.connection.send(data)

    async def receive(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        try:
            text = await asyncio.wait_for(self.connection.recv(), timeout)
        except ConnectionClosed:
            raise Closed() from None
        message: dict[str, Any] = json.loads(text)
        return message

    async def close(self) -> None:
        await self.connection.close()

    @property
    def close_code(self) -> int | None:
        return self.connection.close_code
