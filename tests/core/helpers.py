"""Helpers of the core tests: a real-socket test client, a one-service server, codec drivers.

``Client`` is an asyncio Protocol rather than a stream: it keeps every byte it received even
when the connection ends in a reset (a server that closes with unread input sends RST), and it
can stop reading to play a slow consumer. ``serving`` runs a ``Server`` with one service named
``main`` on an ephemeral loopback port. ``feed_events`` drives a codec the way a connection does
and returns what came out, so the codec tests can compare whole runs.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import strategies as st

from residentd.app import App, Session
from residentd.codecs.base import Codec
from residentd.codecs.lines import LineCodec
from residentd.errors import ProtocolError
from residentd.limits import Limits
from residentd.net.connection import Connection
from residentd.net.listener import Address
from residentd.net.server import Server
from support import eventually

TIMEOUT = 5.0
LOCAL = "127.0.0.1:0"


# -- codecs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Err:
    """A ProtocolError in a list of codec events, by its code."""

    code: str


def feed_events(codec: Codec, chunks: Iterable[bytes]) -> list[Any]:
    """Feed ``chunks`` as a connection does and return the messages and errors (``Err``) in
    order: after each feed the codec is fed ``b""`` while it holds input (``buffered``), for a
    pending error and what comes after a recoverable one; the first fatal error ends the run."""
    events: list[Any] = []
    for chunk in chunks:
        data = chunk
        while True:
            try:
                messages = codec.feed(data)
            except ProtocolError as error:
                events.append(Err(error.code))
                if not error.recoverable:
                    return events
                data = b""
                continue
            events.extend(messages)
            if not codec.buffered or (not messages and not data):
                break  # nothing held, or only a partial message
            data = b""
    return events


def feed_garbage(codec: Codec, chunks: Iterable[bytes], codes: set[str], bound: int) -> None:
    """Feed hostile chunks, going on after every error: only ProtocolErrors with one of
    ``codes`` may come out, and the codec never holds more than ``bound`` bytes between feeds."""
    for chunk in chunks:
        data = chunk
        while True:
            try:
                messages = codec.feed(data)
            except ProtocolError as error:
                assert error.code in codes, error
                data = b""
                continue
            if codec.buffered and (messages or data):
                data = b""  # as a connection does: a pending error, or a partial message
                continue
            break
        assert codec.buffered <= bound, (codec.buffered, bound)


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length, in any order)."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


cuts = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=40)
"""Offsets for ``split_at``: any split of a stream, from none to many small pieces."""


# -- a server with one service -------------------------------------------------------------------


def one_service_app(session: Callable[[Connection], Session], codec: Callable[[], Codec]) -> App:
    app = App("test")
    app.service("main", session, codec=codec)
    return app


@asynccontextmanager
async def serving(
    session: Callable[[Connection], Session],
    codec: Callable[[], Codec] = LineCodec,
    limits: Limits | None = None,
    listen: Iterable[str] = (LOCAL,),
    app: App | None = None,
) -> AsyncIterator[Server]:
    """A started ``Server`` running ``session`` as service ``main``; stopped on exit."""
    if app is None:
        app = one_service_app(session, codec)
    server = Server(app, limits or Limits(), asyncio.get_running_loop())
    await server.start({"main": list(listen)})
    try:
        yield server
    finally:
        await server.stop(2.0)


def address(server: Server) -> Address:
    return server.addresses("main")[0]


#: Poll a predicate on the running loop until it is true (the core tests' name for it).
wait_until = eventually


async def nothing_more(events: list[Any], seconds: float) -> None:
    """Wait ``seconds`` and check that nothing was added to ``events`` meanwhile."""
    seen = list(events)
    await asyncio.sleep(seconds)
    assert events == seen


class Echo(Session):
    """Sends every message back; records its close reason in ``reasons``."""

    __slots__ = ()
    reasons: list[str] = []

    def on_message(self, message: Any) -> None:
        self.send(message)

    def on_close(self, reason: str) -> None:
        self.reasons.append(reason)


S = TypeVar("S", bound=Session)


def fresh(session: type[S]) -> type[S]:
    """A subclass of ``session`` with a ``reasons`` list of its own, so that tests (and the two
    loops) do not share what they record."""
    return type(session.__name__, (session,), {"reasons": []})


# -- the client ----------------------------------------------------------------------------------


class Client(asyncio.Protocol):
    """A test peer on a real socket that keeps all it receives, resets included."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eof = False
        self.error: Exception | None = None
        self.transport: asyncio.Transport | None = None
        self._lost = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()

    @classmethod
    async def connect(cls, to: Address | Server, source: str | None = None) -> Client:
        if isinstance(to, Server):
            to = address(to)
        loop = asyncio.get_running_loop()
        client = cls()
        if to.kind == "unix":
            await loop.create_unix_connection(lambda: client, to.path)
        else:
            local = (source, 0) if source else None
            await loop.create_connection(lambda: client, to.host, to.port, local_addr=local)
        return client

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.data += data
        self._changed.set()

    def eof_received(self) -> bool:
        self.eof = True
        self._changed.set()
        return False  # the server never half-closes: its EOF is the end

    def connection_lost(self, exc: Exception | None) -> None:
        self.error = exc
        self.eof = True
        if not self._lost.done():
            self._lost.set_result(None)
        self._changed.set()

    # for the tests

    @property
    def closed(self) -> bool:
        return self._lost.done()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not ready():
            if self.eof:
                raise AssertionError(f"connection ended waiting for {what}; got {self.data!r}")
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {bytes(self.data)!r}")
            self._changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def read(self, n: int, timeout: float = TIMEOUT) -> bytes:
        """Exactly ``n`` bytes."""
        await self._wait(lambda: len(self.data) >= n, timeout, f"{n} bytes")
        chunk = bytes(self.data[:n])
        del self.data[:n]
        return chunk

    async def readline(self, timeout: float = TIMEOUT) -> bytes:
        """The next line, without its LF."""
        await self._wait(lambda: b"\n" in self.data, timeout, "a line")
        end = self.data.index(b"\n")
        line = bytes(self.data[:end])
        del self.data[: end + 1]
        return line

    async def request(self, line: bytes, timeout: float = TIMEOUT) -> bytes:
        self.write(line + b"\n")
        return await self.readline(timeout)

    async def until_closed(self, timeout: float = TIMEOUT) -> bytes:
        """Wait for the connection to end; return all unread bytes."""
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)
        except TimeoutError:
            raise AssertionError(f"still open after {timeout}s; got {bytes(self.data)!r}") from None
        rest = bytes(self.data)
        self.data.clear()
        return rest


# -- resources -----------------------------------------------------------------------------------


def live_connections() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Connection))
