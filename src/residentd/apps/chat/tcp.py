"""Chat over TCP: one JSON object per line, each decoded straight into its request struct.

``ChatLineCodec`` is the line codec (LF or CRLF, ``max_message`` bytes a line, linear-time
buffering) with decoding added: each line goes through the protocol's shared msgspec decoder,
so a connection holds no decoder of its own, only its partial line. A line that does not decode
raises a recoverable ``BadRequest``; the lines after it wait in ``_pending`` for the next
``feed``, so the answers keep the order of the requests. An over-long line is fatal: the lines
before it are still handled, then the connection gets ``line-too-long`` and is closed.

Replies and errors are encoded as ``{"op": ...}`` JSON plus ``\\n``; pushes arrive pre-encoded
from the hub.
"""

from __future__ import annotations

import contextlib
from typing import Any

from residentd.apps.chat import protocol as p
from residentd.apps.chat.protocol import BadRequest
from residentd.apps.chat.rooms import TCP
from residentd.apps.chat.session import ChatSession
from residentd.codecs.lines import LineCodec
from residentd.errors import ProtocolError


class ChatLineCodec(LineCodec):
    __slots__ = ("_pending",)

    def __init__(self, max_line: int) -> None:
        super().__init__(max_line)
        self._pending: list[bytes] | None = None

    @property
    def buffered(self) -> int:
        pending = sum(map(len, self._pending)) if self._pending else 0
        return len(self._buffer) + pending

    def feed(self, data: bytes) -> list[Any]:
        try:
            lines = LineCodec.feed(self, data) if data else []
        except ProtocolError as error:
            # Fatal: what came before the long line is still answered, bad lines skipped.
            lines = (self._pending or []) + error.messages
            self._pending = None
            error.messages = _decode_leniently(lines)
            raise
        if self._pending:
            lines[:0], self._pending = self._pending, None
        return self._decode(lines)

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


def _decode_leniently(lines: list[bytes]) -> list[Any]:
    messages = []
    for line in lines:
        if line:
            with contextlib.suppress(BadRequest):
                messages.append(p.decode_request(line))
    return messages


class TcpSession(ChatSession):
    __slots__ = ()
    wire = TCP
