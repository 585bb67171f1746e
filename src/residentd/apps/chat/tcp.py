"""Chat over TCP: one JSON object per line, each decoded straight into its request struct.

``ChatLineCodec`` is the line codec (LF or CRLF, ``max_message`` bytes a line, linear-time
buffering) with decoding added: each line goes through the protocol's shared msgspec decoder,
so a connection holds no decoder of its own, only its partial line. A line that does not decode
raises a recoverable ``BadRequest``; the lines after it wait in ``_pending`` for the next
``feed``, so the answers keep the order of the requests. An over-long line is fatal, but only
once the lines before it are out, each bad one with its own error: what a peer hears does not
depend on how its bytes were split. Then it gets ``line-too-long`` and is closed.

Replies and errors are encoded as ``{"op": ...}`` JSON plus ``\\n``; pushes arrive pre-encoded
from the hub.
"""

from __future__ import annotations

from typing import Any

from residentd.apps.chat import protocol as p
from residentd.apps.chat.protocol import BadRequest
from residentd.apps.chat.session import ChatSession
from residentd.apps.chat.wire import LINES
from residentd.codecs.lines import LineCodec
from residentd.errors import ProtocolError


class ChatLineCodec(LineCodec):
    __slots__ = ("_fatal", "_pending")

    def __init__(self, max_line: int) -> None:
        super().__init__(max_line)
        self._pending: list[bytes] | None = None
        # A fatal error of the line framing, raised once the lines before it are out.
        self._fatal: ProtocolError | None = None

    def feed(self, data: bytes) -> list[Any]:
        try:
            lines = LineCodec.feed(self, data) if data else []
        except ProtocolError as error:
            lines, error.messages = error.messages, []
            self._fatal = error
        if self._pending:
            lines[:0], self._pending = self._pending, None
        messages = self._decode(lines)
        fatal, self._fatal = self._fatal, None
        if fatal is not None:
            fatal.messages = messages
            raise fatal
        return messages

    def _decode(self, lines: list[bytes]) -> list[Any]:
        decode = p.decode_request
        messages: list[Any] = []
        for index, line in enumerate(lines):
            if not line:
                continue
            try:
                messages.append(decode(line))
            except BadRequest as error:
                self._pending = lines[index + 1 :] or None
                error.messages = messages
                raise
        return messages

    def encode(self, message: Any) -> bytes:
        return p.encode(message) + b"\n"

    def error_reply(self, error: ProtocolError) -> bytes:
        return p.protocol_error_payload(error) + b"\n"


class TcpSession(ChatSession):
    __slots__ = ()
    wire = LINES
