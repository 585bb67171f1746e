"""Handing listeners and live connections from one process to the next (a live upgrade).

The network half of ``daemon/upgrade.py``, which says in what order things happen:

- ``Channel``: framed messages over a Unix stream socket, each a pickled header of plain data
  (a restricted unpickler refuses any class), an optional payload of raw bytes, and file
  descriptors passed with it (``SCM_RIGHTS``), at most ``MAX_FDS`` per message.
- Listeners: ``Listeners.take`` keeps a duplicate of every listening socket, so the asyncio
  servers can close (stop accepting: the kernel queues new connections in the socket's
  backlog) while the socket itself stays open, to be passed on or served again on a rollback.
- Connections: ``hold`` stops reading one at a message boundary (the handlers of the chunk
  read last have run); once it owes its peer nothing (``settled``), ``export`` describes it:
  its service, its session's ``export_state()`` and the input its codec holds (``unparsed``).
  ``AdoptedConnection`` is the same connection in the next process: its session is made with
  ``import_state`` instead of ``on_connect``, and it reads nothing until ``start``.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import io
import logging
import os
import pickle
import socket
import struct
from typing import TYPE_CHECKING, Any, cast

from residentd.errors import CloseCode, ProtocolError, ResidentdError
from residentd.net.connection import Connection
from residentd.net.listener import bound_addresses

if TYPE_CHECKING:
    from residentd.net.server import Server, ServiceRuntime

log = logging.getLogger("residentd.upgrade")

MAX_FDS = 200  # descriptors per message (Linux takes at most 253)
_HEAD = struct.Struct("!IQ")  # header length, payload length
_CHUNK = 1 << 20
# The connection's reason for not reading while it is handed over (beside connection.py's).
_PAUSED_BY_HANDOVER = 1 << 8


class HandoverError(ResidentdError):
    """The other generation went away, sent something unexpected, or took too long."""


class _PlainUnpickler(pickle.Unpickler):
    """Plain data only: what crosses between generations must not depend on either's classes."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"{module}.{name}: only plain data crosses a handover")


def loads(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


class Channel:
    """Framed messages with file descriptors over a connected ``AF_UNIX`` stream socket, on the
    loop (readiness from ``add_reader``/``add_writer``, so the loop serves on meanwhile)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.loop = loop

    async def send(
        self, header: dict[str, Any], payload: bytes = b"", fds: list[int] | tuple[int, ...] = ()
    ) -> None:
        """One message; the descriptors stay open here (the receiver gets its own copies)."""
        if len(fds) > MAX_FDS:
            raise ValueError(f"at most {MAX_FDS} descriptors per message")
        head = pickle.dumps(header, protocol=5)
        first = _HEAD.pack(len(head), len(payload)) + head
        ancillary = (
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())] if fds else []
        )
        sent = await self._io(True, self.sock.sendmsg, [first], ancillary)
        await self._send_all(memoryview(first)[sent:])
        view = memoryview(payload)
        for start in range(0, len(view), _CHUNK):
            await self._send_all(view[start : start + _CHUNK])

    async def _send_all(self, data: memoryview) -> None:
        while data:
            sent = await self._io(True, self.sock.send, data)
            data = data[sent:]

    async def receive(self) -> tuple[dict[str, Any], bytes, list[int]]:
        """The next message: header, payload and the descriptors that came with it (now ours
        to close)."""
        fds: list[int] = []
        try:
            head = await self._exactly(_HEAD.size, fds)
            size, payload_size = _HEAD.unpack(head)
            header = loads(await self._exactly(size, fds))
            payload = await self._exactly(payload_size, fds) if payload_size else b""
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        if not isinstance(header, dict):
            raise HandoverError("a handover message must be a dict")
        return header, payload, fds

    async def _exactly(self, size: int, fds: list[int]) -> bytes:
        # Reading exactly the message's bytes keeps the descriptors of the next message (which
        # the kernel delivers with its first byte) out of this one.
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        space = socket.CMSG_SPACE(MAX_FDS * 4)
        while got < size:
            data, ancillary, _, _ = await self._io(
                False, self.sock.recvmsg, min(size - got, _CHUNK), space
            )
            for level, kind, blob in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", blob[: len(blob) - len(blob) % 4]))
            if not data:
                raise HandoverError("the other generation closed the handover socket")
            view[got : got + len(data)] = data
            got += len(data)
        return bytes(buffer)

    async def _io(self, write: bool, call: Any, *args: Any) -> Any:
        while True:
            try:
                return call(*args)
            except (BlockingIOError, InterruptedError):
                pass
            except (BrokenPipeError, ConnectionResetError) as exc:
                raise HandoverError(f"the other generation is gone: {exc}") from None
            await self._ready(write)

    async def _ready(self, write: bool) -> None:
        future = self.loop.create_future()
        fd = self.sock.fileno()
        add, remove = (
            (self.loop.add_writer, self.loop.remove_writer)
            if write
            else (self.loop.add_reader, self.loop.remove_reader)
        )

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        add(fd, wake)
        try:
            await future
        finally:
            if self.sock.fileno() == fd:  # not closed meanwhile (then its number may be reused)
                remove(fd)

    def close(self) -> None:
        """Close the socket, first taking it off the loop: a descriptor closed while the loop
        watches it leaves a stale watch that would swallow the events of the next socket given
        the same number (under uvloop, an admin connection that is then never answered)."""
        fd = self.sock.fileno()
        if fd >= 0:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        self.sock.close()


# -- listeners ---------------------------------------------------------------------------------


class Listeners:
    """A server's listening sockets, kept open apart from its asyncio servers."""

    def __init__(self, server: Server) -> None:
        self.server = server
        #: (service name, bound address text, duplicated descriptor), in the server's order.
        self.sockets: list[tuple[str, str, int]] = []

    @classmethod
    def take(cls, server: Server) -> Listeners:
        listeners = cls(server)
        for name, served in server.listeners.items():
            for listener in served:
                for sock in listener.sockets:
                    address = str(bound_addresses(listener)[0])
                    listeners.sockets.append((name, address, os.dup(sock.fileno())))
        return listeners

    def stop_accepting(self) -> None:
        """Close the asyncio servers (never the Unix socket files): the sockets stay open here,
        so new connections wait in their backlog."""
        for served in self.server.listeners.values():
            for listener in served:
                listener.close()
            served.clear()

    async def accept_again(self) -> None:
        """Serve the kept sockets again (a rollback)."""
        for name, _, fd in self.sockets:
            runtime = self.server.runtimes[name]
            sock = socket.socket(fileno=os.dup(fd))
            listener = await serve_socket(self.server, runtime, sock, start=True)
            self.server.listeners.setdefault(name, []).append(listener)

    def forget_unix_paths(self) -> None:
        """The next generation serves the Unix socket files now: this server must not remove
        them when it stops."""
        self.server._unix_paths.clear()

    def close(self) -> None:
        for _, _, fd in self.sockets:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.sockets.clear()


async def serve_socket(
    server: Server, runtime: ServiceRuntime, sock: socket.socket, start: bool
) -> asyncio.Server:
    """An asyncio server for an inherited listening socket; accepting only once ``start``
    (or ``start_serving()``)."""

    def make() -> Connection:
        return Connection(server, runtime)

    if sock.family == socket.AF_UNIX:
        return await server.loop.create_unix_server(make, sock=sock, start_serving=start)
    return await server.loop.create_server(make, sock=sock, start_serving=start)


# -- connections -------------------------------------------------------------------------------


def hold(conn: Connection) -> None:
    """Read no more from ``conn`` until ``release``: the transport delivers nothing after this,
    so what its codec holds is the start of a message not yet complete."""
    conn._pause_reading(_PAUSED_BY_HANDOVER)


def release(conn: Connection) -> None:
    conn._resume_reading(_PAUSED_BY_HANDOVER)


def settled(conn: Connection) -> bool:
    """Whether ``conn`` is at a message boundary and owes its peer nothing: no handler still
    running, no output queued here or in the transport (what the kernel holds goes on)."""
    return not conn.handling and conn.write_buffer_size == 0


def unparsed(conn: Connection) -> bytes | None:
    """The input ``conn``'s codec holds, as it came in; None when the codec holds some but
    cannot give it back."""
    codec = conn.codec
    take = getattr(codec, "unparsed", None)
    if take is not None:
        return cast("bytes | None", take())
    return b"" if not codec.buffered else None


def export(conn: Connection) -> dict[str, Any] | None:
    """What the next generation needs to carry ``conn`` on, or None when it cannot be handed
    over (its session does not opt in, or its codec's partial input cannot be read back)."""
    session = conn.session
    if session is None or conn.closing or conn.transport is None:
        return None
    buffered = unparsed(conn)
    if buffered is None:
        return None
    try:
        state = session.export_state()
        if state is None:
            return None
        loads(pickle.dumps(state, protocol=5))  # plain data, or the next generation refuses it
    except Exception:
        log.exception(
            "export_state failed: the connection is not handed over", extra=conn.log_context()
        )
        return None
    return {
        "service": conn.service.name,
        "state": state,
        "unparsed": buffered,
        "counters": [conn.messages_in, conn.messages_out, conn.bytes_in, conn.bytes_out],
    }


def let_go(conn: Connection) -> None:
    """The next generation has ``conn``: close this process's descriptor without a word to the
    peer or to the session (no ``on_close``: the session lives on over there)."""
    conn.session = None
    conn.abort(CloseCode.HANDED_OVER)


class AdoptedConnection(Connection):
    """A connection taken over from the last generation: the session is made from its exported
    state, and nothing is read until ``start`` (the last generation has let go)."""

    __slots__ = ("_adopted",)

    def __init__(self, server: Server, service: ServiceRuntime, item: dict[str, Any]) -> None:
        super().__init__(server, service)
        self._adopted: dict[str, Any] | None = item

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)
        transport.pause_reading()
        self.transport = transport
        self.connected_at = self.last_active = self._loop.time()
        if self.server.admit(self, transport) is not None:
            self._adopted = None
            self.abort(CloseCode.REFUSED_AT_HANDOVER)
            return
        self.apply_limits()
        item = self._adopted
        assert item is not None
        # Its counters go on from the last generation's (``residentd status`` stays monotonic).
        self.messages_in, self.messages_out, self.bytes_in, self.bytes_out = item["counters"]
        try:
            self._new_session().import_state(item["state"])
        except Exception:
            self.server.log_handler_error(self, "import_state")
            # The peer hears of it at ``start``: nothing goes to it before the last generation
            # has let go (it may yet take the connection back).
            self.session = None
            item["failed"] = True
            return
        self.server.watch_deadline(self)

    def start(self) -> None:
        """Read again: first what the last generation had read but not parsed, then the socket."""
        item, self._adopted = self._adopted, None
        if item is None or self.closing or self.transport is None:
            return
        if item.get("failed"):
            self.fail(
                ProtocolError(CloseCode.INTERNAL_ERROR, "the server failed to handle a message")
            )
            return
        if item["unparsed"]:
            self.bytes_in -= len(item["unparsed"])  # read and counted by the last generation
            self.data_received(item["unparsed"])
        if not self.closing and self.transport is not None:
            self.transport.resume_reading()


async def adopt(server: Server, runtime: ServiceRuntime, fd: int, item: dict[str, Any]) -> None:
    """Make ``fd`` (a connected socket passed from the last generation) a paused connection of
    ``server``."""
    sock = socket.socket(fileno=fd)
    await server.loop.connect_accepted_socket(
        lambda: AdoptedConnection(server, runtime, item), sock
    )
