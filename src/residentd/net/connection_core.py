"""A connection's hot path: a chunk in, its messages to the session, its replies out.

``ConnectionCore`` holds what every read and every send touches: the counters, the output
waiting for its write, and the flags that say where the connection is. ``Connection``
(connection.py) builds the rest on it: the Protocol callbacks other than ``data_received``,
flow control, closing, deadlines. This module is the plain Python version; when a compiler was
at hand at install, ``_connection_core.c`` provides the same class in C and ``connection.py``
uses that one instead (``RESIDENTD_PURE_PYTHON=1`` forces this one, for tests and debugging).
The two must behave the same, down to the order of the calls they make.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from residentd.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from residentd.app import Session
    from residentd.codecs.base import Codec
    from residentd.net.connection import ConnectionHost

# How a connection hands decoded messages to its session (see ``_dispatch``).
EACH = 0  # on_message, once per message
BATCH = 1  # on_messages, once per chunk
QUEUED = 2  # async on_message, through the backlog task


class ConnectionCore:
    __slots__ = (
        "_closing",
        "_codec_sends",
        "_defer_writes",
        "_dispatching",
        "_flush_scheduled",
        "_loop_time",
        "_mode",
        "_out",
        "_serve_chunk",
        "_writing_paused",
        "bytes_in",
        "bytes_out",
        "codec",
        "last_active",
        "messages_in",
        "messages_out",
        "server",
        "session",
        "transport",
    )

    server: ConnectionHost
    codec: Codec
    session: Session | None
    transport: asyncio.Transport | None
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int
    last_active: float
    _loop_time: Callable[[], float]
    # Encoded output waiting for the end of the chunk or of the loop iteration; the list is
    # made on the first send, so a connection that never answers does not pay for it.
    _out: list[bytes] | None
    _mode: int
    # The session class's serve_chunk (app.Session), for an on_messages session; else None.
    _serve_chunk: Callable[[Any, Any, bytes], int | None] | None
    _closing: bool
    # Whether the codec ever has bytes of its own to send (its class's ``sends_own_data``).
    _codec_sends: bool
    _dispatching: bool
    _defer_writes: bool
    _flush_scheduled: bool
    _writing_paused: bool

    if TYPE_CHECKING:  # provided by Connection

        def _after_feed(self, error: ProtocolError | None = None) -> None: ...
        def _enqueue(self, messages: list[Any]) -> None: ...
        def _handler_failed(self, where: str) -> None: ...
        def _check_output_cap(self) -> None: ...

    # -- reading -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.last_active = self._loop_time()
        if self._closing:
            return
        if self._serve_chunk is not None and self._serve(data):
            return
        failure: ProtocolError | None = None
        try:
            messages = self.codec.feed(data)
        except ProtocolError as error:
            failure = error
        if failure is not None:
            # Outside the except block, as in C: the handlers of the messages the codec holds
            # after a recoverable error must not see it as the exception being handled.
            self._after_feed(failure)
            return
        if messages:
            self._dispatch(messages)
        # The slow path, only when the codec holds input (a partial message, or a pending
        # error: codecs/base.py) or may have bytes of its own to send.
        if not self._closing and (self._codec_sends or self.codec.buffered):
            self._after_feed()

    def _serve(self, data: bytes) -> bool:
        """The session's own reader and handler for a whole chunk (``serve_chunk``), in place
        of the codec's feed and ``on_messages``; False when it left the chunk to them."""
        serve = self._serve_chunk
        session = self.session
        if serve is None or session is None:
            return False
        self._dispatching = True
        try:
            count = serve(session, self.codec, data)
        except Exception:
            self._dispatching = False
            self._handler_failed("on_message")
            return True
        finally:  # also when a BaseException passes through
            self._dispatching = False
        if count is None:
            return False
        self.messages_in += count
        self._write_out()
        return True

    def _dispatch(self, messages: list[Any]) -> None:
        # The hot path: one call into the session per chunk (or per message), then everything it
        # sent goes out in one write.
        self.messages_in += len(messages)
        session = self.session
        if session is None:
            return
        mode = self._mode
        if mode == QUEUED:
            self._enqueue(messages)
            return
        self._dispatching = True
        try:
            if mode == BATCH:
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
        finally:  # also when a BaseException passes through
            self._dispatching = False
        self._write_out()

    def _write_out(self) -> None:
        """After a chunk's dispatch: what the session sent goes out in one write, now or at the
        end of the loop iteration (``defer_writes``)."""
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

    # -- writing -------------------------------------------------------------------------------

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

    def send_bytes(self, data: bytes, count: int = 1, /) -> None:
        """Queue bytes already in the wire format: an encoded message shared by many peers, or
        ``count`` messages encoded as one piece (the replies to a pipeline, say)."""
        if self._closing:
            return
        self._queue(data)
        self.messages_out += count

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


def push_all(pushes: Mapping[Any, Callable[[bytes], object]], data: bytes) -> None:
    """``push(data)`` for every value of ``pushes``: one message, already framed, queued on many
    connections (a fan-out), each push a connection's ``send_bytes``. The C version runs a
    ``ConnectionCore``'s own ``send_bytes`` in place, without a call per connection."""
    for push in pushes.values():
        push(data)
