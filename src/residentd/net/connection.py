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

Limits: a codec error closes the connection after the codec's error reply (recoverable errors
only count toward ``max_bad_messages``); partial input past ``max_input_buffer`` closes it;
idle and first-message timeouts come from the server's deadline wheel. Every close has a reason,
given to ``on_close`` and counted by the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, cast

from residentd.errors import ProtocolError
from residentd.net.timers import TimerGroup

if TYPE_CHECKING:
    from residentd.app import Session
    from residentd.codecs.base import Codec
    from residentd.net.server import Server, ServiceRuntime

log = logging.getLogger("residentd.conn")

# Why reading is paused; reading resumes when no reason is left.
_PAUSED_BY_OUTPUT = 1
_PAUSED_BY_BACKLOG = 2
_PAUSED_BY_SESSION = 4

# How a connection hands decoded messages to its session (see ``_dispatch``).
_EACH = 0  # on_message, once per message
_BATCH = 1  # on_messages, once per chunk
_QUEUED = 2  # async on_message, through the backlog task

# Backlog lengths (messages) for async handlers at which reading pauses and resumes.
BACKLOG_HIGH = 64
BACKLOG_LOW = 16


class Connection(asyncio.Protocol):
    __slots__ = (
        "_backlog",
        "_closing",
        "_deadline_slot",
        "_defer_writes",
        "_dispatching",
        "_flush_scheduled",
        "_loop",
        "_mode",
        "_out",
        "_paused",
        "_timers",
        "_worker",
        "_writing_paused",
        "bad_messages",
        "bytes_in",
        "bytes_out",
        "close_reason",
        "codec",
        "connected_at",
        "id",
        "ip",
        "last_active",
        "messages_in",
        "messages_out",
        "server",
        "service",
        "session",
        "transport",
    )

    def __init__(self, server: Server, service: ServiceRuntime) -> None:
        self.server = server
        self.service = service
        self._loop = server.loop
        self.codec: Codec = service.codec_factory()
        self.session: Session | None = None
        self.transport: asyncio.Transport | None = None
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
        # Encoded output waiting for the end of the chunk or of the loop iteration; the list is
        # made on the first send, so a connection that never answers does not pay for it.
        self._out: list[bytes] | None = None
        self._mode = _EACH
        self._defer_writes = False
        self._flush_scheduled = False
        self._dispatching = False
        self._closing = False
        self._writing_paused = False
        self._paused = 0
        self._deadline_slot = 0
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
        limits = self.server.limits
        transport.set_write_buffer_limits(limits.write_high_water, limits.write_low_water)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("connection opened", extra=self.log_context())
        try:
            # The session's constructor is the author's code too: a bug in it closes only this
            # connection, which is registered by now and must not stay open without a session.
            self.session = self.service.session_factory(self)
            service = self.service
            if service.async_handler:
                self._mode = _QUEUED
            elif service.batch_handler:
                self._mode = _BATCH
            self._defer_writes = self.session.defer_writes
            self.session.on_connect()
        except Exception:
            self._handler_failed(
                "on_connect" if self.session is not None else "session constructor"
            )
            return
        self.server.watch_deadline(self)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.last_active = self._loop.time()
        if self._closing:
            return
        try:
            messages = self.codec.feed(data)
        except ProtocolError as error:
            self._protocol_error(error)
            return
        if messages:
            self._dispatch(messages)
        held = self.codec.buffered
        if held and held > self.server.limits.max_input_buffer and not self._closing:
            limit = self.server.limits.max_input_buffer
            self.fail(ProtocolError("input-buffer-full", f"limit={limit}"))

    def eof_received(self) -> bool:
        # Half-close from the peer: answer what is still queued, then close.
        if self._worker is None:
            self.close("closed-by-peer")
        elif self.close_reason is None:
            self.close_reason = "closed-by-peer"
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_reason is None:
            self.close_reason = "connection-reset" if exc is not None else "closed-by-peer"
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

    def _dispatch(self, messages: list[Any]) -> None:
        # The hot path: one call into the session per chunk (or per message), then everything it
        # sent goes out in one write.
        self.messages_in += len(messages)
        session = self.session
        if session is None:
            return
        mode = self._mode
        if mode == _QUEUED:
            self._enqueue(messages)
            return
        self._dispatching = True
        try:
            if mode == _BATCH:
                session.on_messages(messages)
            else:
                handle = session.on_message
                for message in messages:
                    handle(message)
                    if self._closing:
                        break
        except Exception:
            self._dispatching = False
            self._handler_failed("on_message")
            return
        self._dispatching = False
        out = self._out
        if out and not self._closing:
            if self._defer_writes:
                self._schedule_flush()
                return
            # Not closing, so the transport is open (close() and abort() set _closing first).
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self.bytes_out += len(data)
            self.transport.write(data)  # type: ignore[union-attr]
            if self._writing_paused:
                self._check_output_cap()

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
        if self.close_reason == "closed-by-peer" and not self._closing:
            self.close("closed-by-peer")

    def _protocol_error(self, error: ProtocolError) -> None:
        while True:
            if error.messages:
                self._dispatch(error.messages)
            if self._closing:
                return
            if not error.recoverable:
                self.fail(error)
                return
            self.server.stats.errors[error.code] += 1
            self.bad_messages += 1
            limit = self.server.limits.max_bad_messages
            if limit and self.bad_messages > limit:
                self.fail(ProtocolError("too-many-bad-messages", f"limit={limit}"))
                return
            reply = self.codec.error_reply(error)
            if reply is not None:
                self._queue(reply)  # after the replies to what came before it
            try:
                messages = self.codec.feed(b"")
            except ProtocolError as next_error:
                error = next_error
                continue
            if messages:
                self._dispatch(messages)
            return

    def _handler_failed(self, where: str) -> None:
        self.server.log_handler_error(self, where)
        self.fail(ProtocolError("internal-error", "the server failed to handle a message"))

    # -- output --------------------------------------------------------------------------------

    def send(self, message: Any) -> None:
        """Queue one message for the peer; dropped silently once the connection is closing."""
        if self._closing:
            return
        self._queue(self.codec.encode(message))
        self.messages_out += 1

    def send_many(self, messages: list[Any]) -> None:
        """Queue several messages at once (one encode call when the codec has ``encode_many``)."""
        if self._closing or not messages:
            return
        codec = self.codec
        encode_many = getattr(codec, "encode_many", None)
        if encode_many is not None:
            data = encode_many(messages)
        else:
            data = b"".join(map(codec.encode, messages))
        self.messages_out += len(messages)
        self._queue(data)

    def send_bytes(self, data: bytes) -> None:
        """Queue bytes already in the wire format (an encoded message shared by many peers)."""
        if self._closing:
            return
        self._queue(data)
        self.messages_out += 1

    def _queue(self, data: bytes) -> None:
        out = self._out
        if out is None:
            out = self._out = []
        out.append(data)
        # Inside a chunk's dispatch the write happens when the handler returns; otherwise once
        # at the end of this loop iteration, however many messages are sent before it.
        if not self._dispatching:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.server.flushes.add(self)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out or self.transport is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._write_now(data)

    def _write_now(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.bytes_out += len(data)
        transport.write(data)
        if self._writing_paused:
            self._check_output_cap()

    def _check_output_cap(self) -> None:
        limit = self.server.limits.max_output_buffer
        transport = self.transport
        if limit and transport is not None and transport.get_write_buffer_size() > limit:
            self.abort("output-buffer-full")

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued for the peer and not yet written to the socket."""
        pending = sum(map(len, self._out)) if self._out else 0
        if self.transport is None:
            return pending
        return pending + self.transport.get_write_buffer_size()

    # -- flow control --------------------------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading from the peer until ``resume_reading`` (a session's own backpressure)."""
        self._pause_reading(_PAUSED_BY_SESSION)

    def resume_reading(self) -> None:
        self._resume_reading(_PAUSED_BY_SESSION)

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

    def close(self, reason: str = "closed") -> None:
        """Send what is queued, then close; ``reason`` goes to ``on_close`` and the stats."""
        if self._closing:
            return
        if self.close_reason is None or self.close_reason == "closed-by-peer":
            self.close_reason = reason
        self._flush()
        self._closing = True
        self.server.forget_deadline(self)
        if self.transport is not None:
            self.transport.close()

    def abort(self, reason: str = "aborted") -> None:
        """Close at once, dropping queued output."""
        if self.close_reason is None or not self._closing:
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
                self.fail(ProtocolError("handshake-timeout", f"limit={limits.handshake_timeout}s"))
                return None
        if limits.idle_timeout:
            idle_deadline = self.last_active + limits.idle_timeout
            if now >= idle_deadline:
                self.fail(ProtocolError("idle-timeout", f"limit={limits.idle_timeout}s"))
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
