"""JSON lines: one JSON object per line, decoded with msgspec.

Framing is the line codec's (LF or CRLF, ``max_line``). Each line is decoded with a msgspec
decoder, into plain dicts by default or into a given type (a ``msgspec.Struct`` or a tagged
union of them) for typed, validated messages. A line that is not valid JSON, is not an object,
or does not match the type is a *recoverable* ``ProtocolError`` (``invalid-json``,
``not-an-object``, ``invalid-message``): the messages before it come out first, the error from
the next ``feed``, and the lines after it from the ones after that (codecs/base.py), so the
connection can answer the error and go on. An over-long line is fatal, as in the line codec;
the lines before it still come out first (a bad one with its own error), so the errors a peer
gets do not depend on how its bytes were split. Empty lines are skipped.

The error form is ``{"type": "error", "code": ..., "detail": ...}`` on a line.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec

from residentd.codecs.lines import DEFAULT_MAX_LINE, LineCodec
from residentd.errors import ProtocolError, ProtocolErrorCode

# What msgspec raises on bad input: malformed JSON (ValidationError is a DecodeError too), text
# that is not UTF-8, and nesting deeper than its recursion limit.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class JsonLinesCodec:
    __slots__ = ("_decoder", "_encoder", "_error", "_fatal", "_lines", "_pending", "_typed")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE, type: Any = None) -> None:
        self._lines = LineCodec(max_line)
        self._typed = type is not None
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(
            type if type is not None else Any
        )
        self._encoder = msgspec.json.Encoder()
        self._pending: deque[bytes] = deque()  # lines after a bad one, decoded by the next feed
        # A fatal error of the line codec, raised once the lines before it are out.
        self._fatal: ProtocolError | None = None
        self._error: ProtocolError | None = None  # found after messages that went out first

    @property
    def max_line(self) -> int:
        return self._lines.max_line

    @property
    def buffered(self) -> int:
        held = self._error is not None or self._fatal is not None
        return self._lines.buffered + sum(map(len, self._pending)) + held

    def unparsed(self) -> bytes:
        """The input read but not decoded yet, as it came in (for a live upgrade)."""
        return b"".join(line + b"\n" for line in self._pending) + self._lines.unparsed()

    def feed(self, data: bytes) -> list[Any]:
        error = self._error
        if error is not None:
            self._error = None
            raise error
        pending = self._pending
        if pending or self._fatal is not None:
            try:
                pending.extend(self._lines.feed(data))
            except ProtocolError as fatal:
                self._fatal = fatal  # after the lines already queued
            return self._decode_pending()
        lines = self._lines.feed(data)  # an error with no line before it: raised here
        decode = self._decoder.decode
        try:
            # The fast path: every line decodes.
            messages = [decode(line) for line in lines if line]
        except _DECODE_ERRORS:
            pending.extend(lines)
            return self._decode_pending()
        if not self._typed:
            for message in messages:
                if type(message) is not dict:
                    pending.extend(lines)
                    return self._decode_pending()
        return messages

    def _decode_pending(self) -> list[Any]:
        """Decode queued lines one by one up to the first bad one; once all are out, the
        pending fatal error is next. An error is raised now if no message came before it, else
        kept for the next feed."""
        pending = self._pending
        messages: list[Any] = []
        error: ProtocolError | None = None
        while pending:
            line = pending.popleft()
            if not line:
                continue
            try:
                message = self._decoder.decode(line)
            except msgspec.ValidationError as exc:
                error = ProtocolError(ProtocolErrorCode.INVALID_MESSAGE, str(exc), recoverable=True)
                break
            except _DECODE_ERRORS as exc:
                error = ProtocolError(ProtocolErrorCode.INVALID_JSON, str(exc), recoverable=True)
                break
            if not self._typed and type(message) is not dict:
                detail = "each line must be a JSON object"
                error = ProtocolError(ProtocolErrorCode.NOT_AN_OBJECT, detail, recoverable=True)
                break
            messages.append(message)
        else:
            error, self._fatal = self._fatal, None
        if error is None:
            return messages
        if not messages:
            raise error
        self._error = error
        return messages

    def encode(self, message: Any) -> bytes:
        return self._encoder.encode(message) + b"\n"

    def error_reply(self, error: ProtocolError) -> bytes:
        return self.encode({"type": "error", "code": error.code, "detail": error.detail})
