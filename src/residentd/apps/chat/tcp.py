"""Chat over TCP: one JSON object per line, each decoded straight into its request struct.

``ChatLineCodec`` is the line codec (LF or CRLF, ``max_message`` bytes a line, linear-time
buffering) with decoding added: each line goes through the protocol's shared msgspec decoder,
so a connection holds no decoder of its own, only its partial line. A line that does not decode
is a recoverable ``BadRequest``, raised once the requests before it are out; the lines after
it wait in ``_pending`` for the next ``feed``, so the answers keep the order of the requests.
An over-long line is fatal, but only once the lines before it are out, each bad one with its
own error: what a peer hears does not depend on how its bytes were split. Then it gets
``line-too-long`` and is closed.

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


class ChatLineCodec:
    __slots__ = ("_bad", "_fatal", "_lines", "_pending")

    def __init__(self, max_line: int) -> None:
        self._lines = LineCodec(max_line)
        self._pending: list[bytes] | None = None  # the lines after a bad one
        # A fatal error of the line framing, raised once the lines before it are out.
        self._fatal: ProtocolError | None = None
        self._bad: ProtocolError | None = None  # for the next feed: requests went out first

    @property
    def max_line(self) -> int:
        return self._lines.max_line

    @property
    def buffered(self) -> int:
        pending = self._pending
        held = sum(map(len, pending)) + len(pending) if pending else 0
        return self._lines.buffered + held + (self._bad is not None or self._fatal is not None)

    def feed(self, data: bytes) -> list[Any]:
        bad = self._bad
        if bad is not None:
            self._bad = None
            raise bad
        if self._pending is None and self._fatal is None:
            return self._decode(self._lines.feed(data))
        lines, self._pending = self._pending or [], None
        try:
            lines += self._lines.feed(data)
        except ProtocolError as error:
            self._fatal = error
        messages = self._decode(lines)
        if self._bad is None and self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            if not messages:
                raise fatal
            self._bad = fatal
        return messages

    def _decode(self, lines: list[bytes]) -> list[Any]:
        """The requests of ``lines`` up to the first bad one, whose error is raised now when
        none came before it, else kept for the next feed (codecs/base.py)."""
        decode = p.decode_request
        messages: list[Any] = []
        for index, line in enumerate(lines):
            if not line:
                continue
            try:
                messages.append(decode(line))
            except BadRequest as error:
                self._pending = lines[index + 1 :] or None
                if not messages:
                    raise
                self._bad = error
                return messages
        return messages

    def encode(self, message: Any) -> bytes:
        return p.encode(message) + b"\n"

    def error_reply(self, error: ProtocolError) -> bytes:
        return p.protocol_error_payload(error) + b"\n"


class TcpSession(ChatSession):
    __slots__ = ()
    wire = LINES
