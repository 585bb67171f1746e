"""One client connection: an asyncio Protocol that feeds a codec and drives a session.

Reading: each chunk the transport delivers goes to the codec, and the messages that come out go
to the session's ``on_message`` one by one, in order, or all at once to ``on_messages`` when the
session defines that batch handler. Sync handlers run right there, with no Task or Future per
message. For an ``async def`` handler, messages wait in a per-connection backlog
drained by one task, one message at a time and in arrival order; reading pauses while the
backlog is long.

Writing: ``send`` encodes a message and appends it to a pending list. Messages sent while a chunk
is being dispatched go out in one ``transport.write`` at the end of that chunk; messages sent at
any other time (a timer, another connection's handler) are flushed once per loop iteration, by
the server's ``FlushQueue``. A session class with ``defer_writes`` set has its replies to a chunk
written that way too, after every read that was ready in the iteration was handled, as Redis
does: fewer, larger wake-ups for pipelining peers, a little more latency for the others. The
transport's write watermarks pause the session (``on_pause_writing``) and stop reading from the
peer until its output drains; output past ``max_output_buffer`` aborts the connection as a slow
consumer.

Stopping: a stopping server first stops reading requests (``stop_reading``), then, once a
connection's handlers are done, closes it with ``close_lingering``: the replies go out, then a
FIN, and the peer's input from then on is read and thrown away until it closes too, so that
no reset destroys a reply (lingering.py says why and when it gives up).

Codecs: after a feed that leaves input in the codec (a partial message, a pending error, the
messages after a recoverable one) or from a codec that sends bytes of its own (a WebSocket's
pongs), ``_after_feed`` takes over; codecs/base.py is the contract it follows.

The connection's server is a ``ConnectionHost``: the protocol below lists every member of it
that a connection (either core) uses, so a server of another kind (a test's, a worker's) knows
what to provide. ``ServiceRuntime`` is what a connection takes of its ``Service``: the factories,
and how messages reach the session, decided once per service.

Limits: a codec error closes the connection after the codec's error reply (recoverable errors
only count toward ``max_bad_messages``); partial input past ``max_input_buffer`` closes it;
idle and first-message timeouts come from the server's deadline wheel. Every close has a reason,
given to ``on_close`` and counted by the server.

The per-chunk path described above (``data_received``, the dispatch, ``send`` and its kin, the
flush) is the base class ``ConnectionCore``: connection_core.py, or the same class in C
(_connection_core.c) when it was built. This class adds everything else and the slow paths the
core calls by name: protocol errors, the async backlog, handler failures, the buffer limits.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from residentd.errors import CloseCode, ProtocolError
from residentd.net import connection_core, lingering
from residentd.net.connection_core import BATCH, EACH, QUEUED
from residentd.net.timers import TimerGroup
from residentd.speedups import choose

if TYPE_CHECKING:
    from residentd.app import App, Service, Session, Transport
    from residentd.codecs.base import Codec, SendsOwnData
    from residentd.limits import Limits
    from residentd.net.flushing import FlushQueue
    from residentd.net.stats import Stats

log = logging.getLogger("residentd.conn")

# The hot path's C version when it was built (the two are the same class; mypy reads the
# Python one).
if TYPE_CHECKING:
    from residentd.net.connection_core import ConnectionCore, push_all
else:
    ConnectionCore = choose(
        "residentd.net._connection_core", "ConnectionCore", connection_core.ConnectionCore
    )
    push_all = choose("residentd.net._connection_core", "push_all", connection_core.push_all)

# Why reading is paused; reading resumes when no reason is left.
_PAUSED_BY_OUTPUT = 1
_PAUSED_BY_BACKLOG = 2
_PAUSED_BY_SESSION = 4
_PAUSED_BY_STOP = 8

# Backlog lengths (messages) for async handlers at which reading pauses and resumes.
BACKLOG_HIGH = 64
BACKLOG_LOW = 16


class ConnectionHost(Protocol):
    """What a connection uses of its server (``Server`` is one), and nothing more."""

    @property
    def app(self) -> App: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def clock(self) -> Callable[[], float]:
        """The loop's clock, one bound method shared by every connection."""

    @property
    def limits(self) -> Limits:
        """Read on each use: a reload replaces it."""

    @property
    def stats(self) -> Stats: ...
    @property
    def flushes(self) -> FlushQueue:
        """Where output sent outside a chunk's dispatch waits for the end of the iteration."""

    def admit(self, conn: Connection, transport: asyncio.Transport) -> str | None:
        """Register a new connection, or say why it is refused."""

    def release(self, conn: Connection) -> None:
        """The connection is gone: fold its counters into the totals."""

    def watch_deadline(self, conn: Connection) -> None: ...
    def forget_deadline(self, conn: Connection) -> None: ...
    def log_handler_error(self, conn: Connection, where: str) -> None: ...
    def log_protocol_error(self, conn: Connection, error: ProtocolError) -> None: ...


class ServiceRuntime:
    """A service as its connections run it: its factories and its dispatch mode (``EACH``,
    ``BATCH`` or ``QUEUED``), taken from the ``Service`` once."""

    __slots__ = ("codec_factory", "mode", "name", "session_factory")

    def __init__(
        self,
        name: str,
        session_factory: Callable[[Transport], Session[Any]],
        codec_factory: Callable[[], Codec],
        mode: int = EACH,
    ) -> None:
        self.name = name
        self.session_factory = session_factory
        self.codec_factory = codec_factory
        self.mode = mode

    @classmethod
    def of(cls, service: Service) -> ServiceRuntime:
        mode = QUEUED if service.async_handler else BATCH if service.batch_handler else EACH
        return cls(service.name, service.session, service.codec, mode)


class Connection(ConnectionCore, asyncio.Protocol):
    __slots__ = (
        "_backlog",
        "_deadline_slot",
        "_linger_since",
        "_loop",
        "_paused",
        "_timers",
        "_worker",
        "bad_messages",
        "close_reason",
        "connected_at",
        "id",
        "idle_exempt",
        "ip",
        "service",
    )

    def __init__(self, server: ConnectionHost, service: ServiceRuntime) -> None:
        self.server = server
        self.service = service
        self._loop = server.loop
        self._loop_time = server.clock
        self.codec = service.codec_factory()
        self._codec_sends = bool(getattr(self.codec, "sends_own_data", False))
        self.session = None
        self.transport = None
        self.id = 0
        self.ip = ""
        self.connected_at = 0.0
        self.last_active = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.messages_out = 0
        self.bad_messages = 0
        self.close_reason: str | None = None
        # Set by the session: the idle timeout does not apply while it is (a kv subscriber
        # listens and need not talk, as Redis exempts pub/sub clients).
        self.idle_exempt = False
        self._out = None
        self._mode = EACH
        self._serve_chunk = None
        self._defer_writes = False
        self._flush_scheduled = False
        self._dispatching = False
        self._closing = False
        self._writing_paused = False
        self._paused = 0
        self._deadline_slot = 0
        self._linger_since = 0.0  # when close_lingering shut down writing; 0: not lingering
        self._backlog: deque[Any] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._timers: TimerGroup | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.connected_at = self.last_active = self._loop.time()
        refusal = self.server.admit(self, transport)
        if refusal is not None:
            self._refuse(refusal)
            return
        self.apply_limits()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connection opened", extra=self.log_context())
        try:
            # The session's constructor is the author's code too: a bug in it closes only this
            # connection, which is registered by now and must not stay open without a session.
            self._new_session().on_connect()
        except Exception:
            self._handler_failed(
                "on_connect" if self.session is not None else "session constructor"
            )
            return
        self.server.watch_deadline(self)

    def eof_received(self) -> bool:
        if self._linger_since:
            return False  # lingering, and the peer has closed its side too: the transport closes
        # Half-close from the peer: answer what is still queued, then close.
        if self._worker is None:
            self.close(CloseCode.CLOSED_BY_PEER)
        elif self.close_reason is None:
            self.close_reason = CloseCode.CLOSED_BY_PEER
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_reason is None:
            self.close_reason = (
                CloseCode.CONNECTION_RESET if exc is not None else CloseCode.CLOSED_BY_PEER
            )
        self._closing = True
        self._out = None
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        self._backlog = None
        session = self.session
        if session is not None:
            try:
                session.on_close(self.close_reason)
            except Exception:
                log.exception("on_close raised", extra=self.log_context())
        # After on_close, so that timers it starts are released too.
        if self._timers is not None:
            self._timers.close()
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connection closed: %s", self.close_reason, extra=self.log_context())
        self.server.release(self)
        self.session = None
        self.transport = None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._pause_reading(_PAUSED_BY_OUTPUT)
        if self.session is not None:
            try:
                self.session.on_pause_writing()
            except Exception:
                self._handler_failed("on_pause_writing")

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._resume_reading(_PAUSED_BY_OUTPUT)
        if self.session is not None and not self._closing:
            try:
                self.session.on_resume_writing()
            except Exception:
                self._handler_failed("on_resume_writing")

    # -- dispatch ------------------------------------------------------------------------------

    def _enqueue(self, messages: list[Any]) -> None:
        backlog = self._backlog
        if backlog is None:
            backlog = self._backlog = deque()
        backlog.extend(messages)
        if len(backlog) >= BACKLOG_HIGH:
            self._pause_reading(_PAUSED_BY_BACKLOG)
        if self._worker is None:
            self._worker = self._loop.create_task(self._drain_backlog())

    async def _drain_backlog(self) -> None:
        backlog = self._backlog
        session = self.session
        try:
            while backlog and session is not None and not self._closing:
                await session.on_message(backlog.popleft())
                if len(backlog) <= BACKLOG_LOW:
                    self._resume_reading(_PAUSED_BY_BACKLOG)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._worker = None
            self._handler_failed("on_message")
            return
        self._worker = None
        if self.close_reason == CloseCode.CLOSED_BY_PEER and not self._closing:
            self.close(CloseCode.CLOSED_BY_PEER)

    def _after_feed(self, error: ProtocolError | None = None) -> None:
        """The slow path after a feed (or the ``error`` it raised): answer recoverable errors,
        send the codec's own bytes, and feed ``b""`` while the codec holds input, for its
        pending error or the messages after a recoverable one; then check the input cap."""
        codec = self.codec
        while not self._closing:
            if error is not None:
                if not self._recover(error):
                    return
                error = None
            if self._codec_sends:
                self._send_codec_data()
                if self._closing:
                    return
            if not codec.buffered:
                return
            try:
                messages = codec.feed(b"")
            except ProtocolError as next_error:
                error = next_error
                continue
            if not messages:
                break
            self._dispatch(messages)
        held = codec.buffered
        if held and not self._closing and held > self.server.limits.max_input_buffer:
            self._input_buffer_full()

    def _recover(self, error: ProtocolError) -> bool:
        """Answer a recoverable ``error`` and go on (True); close on a fatal one, or on one bad
        message too many (False)."""
        if not error.recoverable:
            self.fail(error)
            return False
        self.server.stats.errors[error.code] += 1
        self.bad_messages += 1
        limit = self.server.limits.max_bad_messages
        if limit and self.bad_messages > limit:
            self.fail(ProtocolError(CloseCode.TOO_MANY_BAD_MESSAGES, f"limit={limit}"))
            return False
        reply = self.codec.error_reply(error)
        if reply is not None:
            self._queue(reply)  # after the replies to what came before it
        return True

    def _send_codec_data(self) -> None:
        """Queue the bytes the codec sends on its own; an empty one means the peer closed."""
        codec = cast("SendsOwnData", self.codec)  # _codec_sends says it is one
        for data in codec.data_to_send():
            if data:
                self._queue(data)
            else:
                self.close(CloseCode.CLOSED_BY_PEER)
                return

    def _input_buffer_full(self) -> None:
        limit = self.server.limits.max_input_buffer
        self.fail(ProtocolError(CloseCode.INPUT_BUFFER_FULL, f"limit={limit}"))

    def _handler_failed(self, where: str) -> None:
        self.server.log_handler_error(self, where)
        self.fail(ProtocolError(CloseCode.INTERNAL_ERROR, "the server failed to handle a message"))

    # -- output --------------------------------------------------------------------------------

    def _check_output_cap(self) -> None:
        limit = self.server.limits.max_output_buffer
        transport = self.transport
        if limit and transport is not None and transport.get_write_buffer_size() > limit:
            self.abort(CloseCode.OUTPUT_BUFFER_FULL)

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued for the peer and not yet written to the socket."""
        pending = sum(map(len, self._out)) if self._out else 0
        if self.transport is None:
            return pending
        return pending + self.transport.get_write_buffer_size()

    def _new_session(self) -> Session[Any]:
        """Make this connection's session and take its dispatch from the service (a live
        upgrade's adopted connections make theirs here too)."""
        session = self.session = self.service.session_factory(self)
        self._mode = self.service.mode
        self._serve_chunk = (
            getattr(type(session), "serve_chunk", None) if self._mode == BATCH else None
        )
        self._defer_writes = bool(session.defer_writes)
        return session

    def apply_limits(self) -> None:
        """Set the transport's write watermarks from the server's limits (after a reload too);
        the other limits are read where they apply."""
        limits = self.server.limits
        if self.transport is not None:
            self.transport.set_write_buffer_limits(limits.write_high_water, limits.write_low_water)

    # -- flow control --------------------------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading from the peer until ``resume_reading`` (a session's own backpressure)."""
        self._pause_reading(_PAUSED_BY_SESSION)

    def resume_reading(self) -> None:
        self._resume_reading(_PAUSED_BY_SESSION)

    def serve_now(self) -> None:
        """Read what the peer has sent, without waiting, hand it to the session, and write the
        output at once: for an app whose handler holds the loop for long and must still answer
        the other clients from inside it (kv's long scripts, as Redis's
        ``processEventsWhileBlocked``). The loop's own read of the socket then finds what is
        left."""
        transport = self.transport
        if self._closing or transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                data = os.read(sock.fileno(), 65536)
            except OSError:  # nothing to read (EAGAIN), or a broken socket the loop will see
                data = b""
            if data:
                self.data_received(data)
        self._flush()

    def _pause_reading(self, reason: int) -> None:
        if not self._paused and self.transport is not None and not self._closing:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume_reading(self, reason: int) -> None:
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self._closing:
            self.transport.resume_reading()

    # -- closing -------------------------------------------------------------------------------

    def close(self, reason: str = CloseCode.CLOSED) -> None:
        """Send what is queued, then close; ``reason`` goes to ``on_close`` and the stats."""
        if self._closing:
            return
        if self.close_reason is None or self.close_reason == CloseCode.CLOSED_BY_PEER:
            self.close_reason = reason
        commit = self.server.flushes.commit
        if commit is not None and self._out and self in commit():
            # A durable app's record the disk refused: the reply that acknowledges it must not
            # leave; the connection closes without it (the write stays applied, and journaled
            # once the disk accepts data).
            self._out.clear()
        self._flush()
        self._closing = True
        self.server.forget_deadline(self)
        if self.transport is not None:
            self.transport.close()

    def close_lingering(self, reason: str = CloseCode.SERVER_SHUTDOWN) -> None:
        """Close as a stopping server does (nginx's lingering close): send what is queued, shut
        down writing, then read and discard the peer's input until it closes its side or
        ``linger`` finds the connection done. Where the transport cannot shut down writing
        alone, or the peer already closed its side, this is ``close``."""
        transport = self.transport
        if (
            self._closing
            or transport is None
            or self.close_reason == CloseCode.CLOSED_BY_PEER
            or not transport.can_write_eof()
        ):
            self.close(reason)
            return
        if self.close_reason is None:
            self.close_reason = reason
        self._flush()
        self._closing = True
        self._out = None
        self.server.forget_deadline(self)
        self._linger_since = self._loop.time()
        try:
            transport.write_eof()
        except OSError:  # asyncio shuts down at once when it can: the peer may be gone already
            transport.close()
            return
        if self._paused:  # read again, to discard: unread input is what makes the kernel reset
            self._paused = 0
            transport.resume_reading()

    def linger(self, now: float) -> None:
        """Close a lingering connection once the peer has taken every reply (lingering.done);
        called by a stopping server on each of its ticks."""
        transport = self.transport
        if not self._linger_since or transport is None or transport.is_closing():
            return
        if lingering.done(transport, now - self._linger_since, now - self.last_active):
            transport.close()

    def stop_reading(self) -> None:
        """Read no more requests, for good: the server is stopping. What was read is still
        handled and answered."""
        self._pause_reading(_PAUSED_BY_STOP)

    @property
    def handling(self) -> bool:
        """True while an ``async def`` handler is still working through the messages read."""
        return self._worker is not None

    def undelivered(self) -> int:
        """Bytes of output the peer has not acknowledged yet, where that can be known: queued
        here, in the transport's buffer and in the kernel's."""
        left = lingering.unacknowledged(self.transport) if self.transport is not None else None
        return self.write_buffer_size + (left or 0)

    def abort(self, reason: str = CloseCode.ABORTED) -> None:
        """Close at once, dropping queued output."""
        # A lingering close cut short ends for this reason, not for the one it began with.
        if self.close_reason is None or not self._closing or self._linger_since:
            self.close_reason = reason
        self._closing = True
        self._out = None
        self.server.forget_deadline(self)
        if self.transport is not None:
            self.transport.abort()

    def fail(self, error: ProtocolError) -> None:
        """Tell the peer about ``error`` in the codec's error form, if it has one, and close.
        Every such error is counted by its code."""
        if self._closing:
            return
        self.server.stats.errors[error.code] += 1
        self.server.log_protocol_error(self, error)
        reply = self.codec.error_reply(error)
        if reply is not None:
            self._queue(reply)
        self.close(error.code)

    def _refuse(self, reason: str) -> None:
        self.close_reason = reason
        self._closing = True
        reply = self.codec.error_reply(ProtocolError(reason, "connection refused"))
        assert self.transport is not None
        if reply is not None:
            self.transport.write(reply)
        self.transport.close()

    # -- deadlines and timers ------------------------------------------------------------------

    def check_deadline(self, now: float) -> float | None:
        """Called by the server's deadline wheel: close if a timeout passed, else say when next."""
        if self._closing:
            return None
        limits = self.server.limits
        deadline: float | None = None
        if self.messages_in == 0 and limits.handshake_timeout:
            deadline = self.connected_at + limits.handshake_timeout
            if now >= deadline:
                self.fail(
                    ProtocolError(CloseCode.HANDSHAKE_TIMEOUT, f"limit={limits.handshake_timeout}s")
                )
                return None
        if limits.idle_timeout:
            last_active = now if self.idle_exempt else self.last_active
            idle_deadline = last_active + limits.idle_timeout
            if now >= idle_deadline:
                self.fail(ProtocolError(CloseCode.IDLE_TIMEOUT, f"limit={limits.idle_timeout}s"))
                return None
            deadline = idle_deadline if deadline is None else min(deadline, idle_deadline)
        return deadline

    @property
    def timers(self) -> TimerGroup:
        """This connection's timers, cancelled when it closes."""
        if self._timers is None:
            self._timers = TimerGroup(self._loop)
            if self.transport is None and self.close_reason is not None:
                self._timers.close()  # asked for after the close: nothing may run
        return self._timers

    # -- introspection -------------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def app(self) -> App:
        return self.server.app

    @property
    def peer(self) -> str:
        """The peer address as ``host:port`` (``[v6]:port`` for IPv6, the path for Unix)."""
        if self.transport is None:
            return self.ip
        return format_peer(self.transport.get_extra_info("peername"))

    def log_context(self) -> dict[str, Any]:
        return {"conn": self.id, "peer": self.peer, "app": self.server.app.name}

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.peer} {self.close_reason or 'open'}>"


def format_peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address) if address else "unix"
