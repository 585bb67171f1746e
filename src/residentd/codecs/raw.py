"""Raw bytes: every chunk the socket delivers is one message, sent back as it is.

For protocols that do their own framing inside the session, or none at all. It buffers nothing
and has no error form.
"""

from __future__ import annotations

from residentd.errors import ProtocolError


class RawCodec:
    __slots__ = ()

    buffered = 0

    def feed(self, data: bytes) -> list[bytes]:
        return [data] if data else []

    def encode(self, message: bytes) -> bytes:
        return bytes(message)

    def error_reply(self, error: ProtocolError) -> None:
        return None
