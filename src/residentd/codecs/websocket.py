"""WebSocket as a residentd codec: websockets' sans-I/O ``ServerProtocol`` on our connection.

websockets parses the HTTP request, checks the upgrade and the ``Origin`` header, enforces the
maximum message size, reassembles nothing and never touches a socket: bytes go in with
``receive_data``, events (the request, frames) and bytes to send come out. This module turns
that into the codec interface, so a WebSocket service is a ``Session`` like any other:

* ``feed(data)`` returns, in order, the HTTP ``Request`` (once), then one decoded message per
  complete text message (fragments are joined here). Bytes the protocol sends on its own (a
  pong, the echo of a close frame) come out of ``data_to_send()``, which the connection drains
  after each feed, as websockets' own: an empty bytes object in it means the peer closed and
  the connection closes once what came before is out (codecs/base.py).
* The session answers the ``Request`` with ``accept(request)`` (the 101 response, or 403 for an
  origin that is not allowed, or 400 for a bad handshake) or ``respond(...)`` (a plain HTTP
  response, after which the connection closes); both return the bytes to send.
* ``encode(message)`` is one text frame; ``text_frame(payload)`` frames bytes that are already
  encoded, so a fan-out frames a message once for every WebSocket peer (no compression
  extension is negotiated, which is what makes one frame good for every connection).

What goes in a text frame is the business of a ``MessageFormat`` (``decode``, ``encode`` and the
error payload), so the same app protocol can run over lines on TCP and frames here. A message
that does not decode is a recoverable ``ProtocolError``, answered with an error frame (the
messages before it come out first, the error from the next ``feed``); broken
framing, a message over ``max_message``, a text message that is not UTF-8 or a malformed
request are fatal: the reply is the protocol's own (a close frame with 1002, 1009 or 1007, or
an HTTP error) and the connection closes. websockets' sans-I/O layer leaves text frames
undecoded, so the UTF-8 check is here: RFC 6455 (8.1) has an endpoint that finds a text
message is not UTF-8 fail the connection, with close code 1007.

Live upgrade: ``unparsed()`` gives back the input not yet out as a message, as the client
would send it: the message being reassembled from fragments (joined, as one masked non-final
frame) and the bytes of the frame not yet complete. So a connection is handed over between two
frames or in the middle of one, even inside a fragmented message, and the next generation's
codec, made with ``handshake=False`` (websockets' protocol starts ``OPEN``, with the same
limits), is fed these bytes first and carries on where this one stopped.

Origins: ``origins=None`` lets any page connect. Otherwise a browser's ``Origin`` must be one
of ``origins`` or, with ``same_origin``, the origin of the request's own ``Host``; a request
without ``Origin`` is not from a browser page and is let in (cross-site WebSocket hijacking
needs a browser).
"""

from __future__ import annotations

import email.utils
import http
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from websockets.datastructures import Headers, MultipleValuesError
from websockets.exceptions import (
    HeaderLineTooLong,
    PayloadTooBig,
    RequestLineTooLong,
    TooManyHeaders,
)
from websockets.frames import CloseCode as WsCloseCode
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING, OPEN
from websockets.server import ServerProtocol

from residentd.errors import CloseCode, ProtocolError, ProtocolErrorCode

__all__ = [
    "MessageFormat",
    "Request",
    "TextFormat",
    "WebSocketCodec",
    "text_frame",
]

DEFAULT_MAX_MESSAGE = 64 * 1024

# websockets logs every open and close at INFO; a daemon with thousands of peers does not want
# that in its log. Its warnings and errors still come through.
_protocol_log = logging.getLogger("residentd.websocket.protocol")
_protocol_log.setLevel(logging.WARNING)

# HTTP answers to limits that strike before the handshake is done.
_HTTP_STATUS: dict[str, int] = {
    CloseCode.HANDSHAKE_TIMEOUT: 408,
    CloseCode.IDLE_TIMEOUT: 408,
    CloseCode.INPUT_BUFFER_FULL: 413,
    CloseCode.INTERNAL_ERROR: 500,
    CloseCode.MAX_CONNECTIONS: 503,
    CloseCode.MAX_CONNECTIONS_PER_IP: 503,
    CloseCode.SERVER_SHUTDOWN: 503,
}

# Close codes for fatal errors once the WebSocket is open (1008 is "policy violation").
_CLOSE_CODE: dict[str, WsCloseCode] = {
    CloseCode.INTERNAL_ERROR: WsCloseCode.INTERNAL_ERROR,
    CloseCode.SERVER_SHUTDOWN: WsCloseCode.GOING_AWAY,
    CloseCode.INPUT_BUFFER_FULL: WsCloseCode.MESSAGE_TOO_BIG,
}


class MessageFormat(Protocol):
    """What is in a text frame: how to decode it, encode one, and put an error in one."""

    def decode(self, payload: bytes) -> Any:
        """The message in ``payload``; a bad one raises a recoverable ``ProtocolError``."""
        ...

    def encode(self, message: Any) -> bytes: ...

    def error(self, error: ProtocolError) -> bytes: ...


class TextFormat:
    """Plain text: messages are ``str``; errors read ``ERR <code> <detail>``."""

    def decode(self, payload: bytes) -> str:
        try:
            return payload.decode()
        except UnicodeDecodeError:
            raise ProtocolError(
                ProtocolErrorCode.INVALID_UTF8, "text frame", recoverable=True
            ) from None

    def encode(self, message: Any) -> bytes:
        return message.encode() if isinstance(message, str) else bytes(message)

    def error(self, error: ProtocolError) -> bytes:
        return f"ERR {error.code} {error.detail}".rstrip().encode()


def text_frame(payload: bytes) -> bytes:
    """``payload`` (UTF-8 already) as one unmasked text frame, as a server sends it."""
    return Frame(Opcode.TEXT, payload).serialize(mask=False)


class WebSocketCodec:
    # Pongs and close echoes: the connection drains ``data_to_send()`` after each feed.
    sends_own_data: ClassVar[bool] = True

    __slots__ = (
        "_error",
        "_fatal",
        "_format",
        "_fragments",
        "_outgoing",
        "_partial",
        "_pending",
        "_protocol",
        "_reply",
        "_text",
        "allow_binary",
        "origins",
        "same_origin",
    )

    def __init__(
        self,
        format: MessageFormat | None = None,
        *,
        origins: Sequence[str] | None = (),
        same_origin: bool = True,
        max_message: int = DEFAULT_MAX_MESSAGE,
        allow_binary: bool = False,
        handshake: bool = True,
    ) -> None:
        """``handshake=False``: the WebSocket is open already (a live upgrade handed it over),
        frames from the first byte."""
        if max_message < 1:
            raise ValueError("max_message must be at least 1")
        self._format: MessageFormat = format if format is not None else TextFormat()
        self._protocol = ServerProtocol(
            state=CONNECTING if handshake else OPEN, max_size=max_message, logger=_protocol_log
        )
        self.origins = origins
        self.same_origin = same_origin
        self.allow_binary = allow_binary
        self._fragments: bytearray | None = None
        self._text = True
        self._pending: list[Any] | None = None  # events left after a recoverable error
        self._reply: bytes | None = None  # the protocol's own answer to a fatal error
        self._fatal: ProtocolError | None = None  # waits for the events before it
        self._error: ProtocolError | None = None  # for the next feed: messages went out first
        self._outgoing: list[bytes] = []  # for data_to_send()
        self._partial = bytearray()  # the input since the last complete frame, for unparsed()

    # -- state ---------------------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """True once the handshake is accepted, until a close frame is sent or received."""
        return self._protocol.state is OPEN

    @property
    def buffered(self) -> int:
        held = len(self._fragments) if self._fragments is not None else 0
        if self._pending:
            held += len(self._pending)
        if self._error is not None or self._fatal is not None:
            held += 1
        return len(self._protocol.reader.buffer) + held

    # -- input ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Any]:
        error = self._error
        if error is not None:
            self._error = None
            raise error
        protocol = self._protocol
        items: list[Any] = self._pending or []
        self._pending = None
        if data:
            protocol.receive_data(data)
            events = protocol.events_received()
            if events or protocol.state is OPEN:  # not while the request head comes in
                self._keep_partial(data, events)
            items += events
            writes = protocol.data_to_send()
            failure = self._failure()
            if failure is not None:
                self._reply = b"".join(writes)
                self._fatal = failure
            elif writes:
                self._outgoing += writes
        messages = self._messages(items)
        # A fatal error comes out once what came before it is out, bad messages included.
        if self._error is None:
            self._error, self._fatal = self._fatal, None
        if self._error is not None and not messages:
            error, self._error = self._error, None
            raise error
        return messages

    def unparsed(self) -> bytes:
        """The input not yet out as a message, as the client sent it (the module docstring):
        the fragments of the message being reassembled, as one non-final frame, then the
        frame not yet complete."""
        if self._fragments is None:
            return bytes(self._partial)
        opcode = Opcode.TEXT if self._text else Opcode.BINARY
        start = Frame(opcode, bytes(self._fragments), fin=False).serialize(mask=True)
        return start + self._partial

    def _keep_partial(self, data: bytes, events: list[Any]) -> None:
        """Keep the input after the last complete frame, given the events ``data`` completed.
        The handshake request, when it is among them, came whole in ``data`` (the HTTP codec
        read it): the frames start after its head."""
        partial = self._partial
        if events and type(events[0]) is not Frame:
            end = data.find(b"\r\n\r\n")
            data = data[end + 4 :] if end >= 0 else b""
            partial.clear()
        done = 0
        for event in events:
            if type(event) is Frame:
                done += _frame_size(event)
        if partial:
            partial += data
            del partial[:done]
        elif done < len(data):  # else whole frames only (the common case): nothing to keep
            partial += data[done:]

    def data_to_send(self) -> list[bytes]:
        """The bytes the protocol sends on its own since the last call (pongs, the echo of a
        close frame), in order; an empty bytes object: the peer closed, close once they are
        out. As websockets' ``data_to_send``."""
        writes, self._outgoing = self._outgoing, []
        return writes

    def _failure(self) -> ProtocolError | None:
        """The fatal error the last input caused, if any."""
        protocol = self._protocol
        error = protocol.parser_exc
        if error is not None:
            if isinstance(error, PayloadTooBig):
                return ProtocolError(ProtocolErrorCode.MESSAGE_TOO_LARGE, str(error))
            return ProtocolError(ProtocolErrorCode.BAD_FRAME, str(error))
        if protocol.state is CONNECTING and protocol.handshake_exc is not None:
            error = protocol.handshake_exc
            if isinstance(error, RequestLineTooLong | HeaderLineTooLong | TooManyHeaders):
                return ProtocolError(ProtocolErrorCode.HEAD_TOO_LARGE, str(error))
            cause = error.__cause__
            return ProtocolError(
                ProtocolErrorCode.BAD_REQUEST, f"{error}: {cause}" if cause else str(error)
            )
        return None

    def _messages(self, items: list[Any]) -> list[Any]:
        messages: list[Any] = []
        for index, item in enumerate(items):
            if type(item) is not Frame:
                messages.append(item)  # the Request
                continue
            try:
                message = self._frame(item)
            except ProtocolError as error:
                # For the next feed; the events after a recoverable one, for the feed after.
                rest = items[index + 1 :]
                self._pending = (rest or None) if error.recoverable else None
                self._error = error
                return messages
            if message is not _NOTHING:
                messages.append(message)
        return messages

    def _frame(self, frame: Frame) -> Any:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return self._decode(bytes(frame.data), opcode is Opcode.TEXT)
            self._fragments = bytearray(frame.data)
            self._text = opcode is Opcode.TEXT
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments += frame.data
            if frame.fin:
                data, self._fragments = bytes(self._fragments), None
                return self._decode(data, self._text)
        # Control frames: websockets has queued the pong or the close echo already.
        return _NOTHING

    def _decode(self, payload: bytes, text: bool) -> Any:
        if text:
            if not payload.isascii():  # the common case costs a scan, not a decode
                try:
                    payload.decode()
                except UnicodeDecodeError as error:
                    raise self._invalid_text(error) from None
        elif not self.allow_binary:
            raise ProtocolError(
                ProtocolErrorCode.UNSUPPORTED_FRAME,
                "binary frames are not accepted",
                recoverable=True,
            )
        return self._format.decode(payload)

    def _invalid_text(self, error: UnicodeDecodeError) -> ProtocolError:
        """Fail the connection with 1007 (invalid frame payload data); the close frame is the
        reply ``error_reply`` gives."""
        reason = f"text message is not UTF-8 (byte {error.start})"
        protocol = self._protocol
        protocol.fail(WsCloseCode.INVALID_DATA, reason)
        self._reply = b"".join(protocol.data_to_send())
        return ProtocolError(ProtocolErrorCode.INVALID_UTF8, reason)

    # -- answering the HTTP request ------------------------------------------------------------

    def accept(self, request: Request) -> bytes:
        """Check the handshake (origin included) and return the response: 101, or an HTTP
        error after which the connection must close (``open`` stays false)."""
        protocol = self._protocol
        if self.origins is not None:
            allowed: list[Any] = [None, *self.origins]
            if self.same_origin:
                try:
                    host = request.headers.get("Host")
                except MultipleValuesError:
                    host = None
                if host:
                    allowed += [f"http://{host}", f"https://{host}"]
            protocol.origins = allowed
        protocol.send_response(protocol.accept(request))
        return b"".join(protocol.data_to_send())

    def respond(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/plain; charset=utf-8",
        headers: dict[str, str] | None = None,
        *,
        head: bool = False,
    ) -> bytes:
        """A plain HTTP response to the request; the connection closes after it."""
        fields = Headers(
            [
                ("Date", email.utils.formatdate(usegmt=True)),
                ("Connection", "close"),
                ("Content-Length", str(len(body))),
                ("Content-Type", content_type),
            ]
        )
        for name, value in (headers or {}).items():
            fields[name] = value
        phrase = http.HTTPStatus(status).phrase
        self._protocol.send_response(Response(status, phrase, fields, b"" if head else body))
        return b"".join(self._protocol.data_to_send())

    # -- output --------------------------------------------------------------------------------

    def encode(self, message: Any) -> bytes:
        """One text frame; nothing once the WebSocket is not open."""
        if self._protocol.state is not OPEN:
            return b""
        return text_frame(self._format.encode(message))

    def error_reply(self, error: ProtocolError) -> bytes | None:
        protocol = self._protocol
        if self._reply is not None:
            reply, self._reply = self._reply, None
            return reply
        if protocol.state is CONNECTING and not protocol.eof_sent:
            status = _HTTP_STATUS.get(error.code, 400)
            text = f"{error.code} {error.detail}".rstrip() + "\n"
            protocol.send_response(protocol.reject(status, text))
            return b"".join(protocol.data_to_send())
        if protocol.state is not OPEN:
            return None
        data = text_frame(self._format.error(error))
        if not error.recoverable:
            code = _CLOSE_CODE.get(error.code, WsCloseCode.POLICY_VIOLATION)
            protocol.send_close(code, error.code[:120])
            data += b"".join(protocol.data_to_send())
        return data

    def close_frame(self, code: int = WsCloseCode.NORMAL_CLOSURE, reason: str = "") -> bytes:
        """The bytes of a close frame (and the protocol moves to CLOSING); empty if not open."""
        protocol = self._protocol
        if protocol.state is not OPEN:
            return b""
        protocol.send_close(code, reason[:120])
        return b"".join(protocol.data_to_send())


_NOTHING: Any = object()


def _frame_size(frame: Frame) -> int:
    """The bytes ``frame`` took on the wire from a client (masked, no extension)."""
    size = len(frame.data)
    return size + (6 if size < 126 else 8 if size < 65536 else 14)
