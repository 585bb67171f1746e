"""The codec interface: sans-IO framing between bytes and messages.

A codec is a pure object. ``feed(data)`` takes any chunk of bytes and returns the complete
messages it now holds, keeping a partial message for the next call, so the same messages come
out however the bytes are split. ``encode(message)`` turns one outgoing message into bytes.
``error_reply(error)`` gives the bytes that tell the peer about a ``ProtocolError`` in the
protocol's own form, or ``None`` when the protocol has no error form. ``buffered`` is how many
bytes of partial input it holds, which the connection checks against its input cap. A codec
that can give that partial input back as bytes (``unparsed()``) lets a live upgrade hand its
connections over even between the two halves of a message.

Codecs never touch sockets or the loop, so they are tested by feeding them bytes.
"""

from __future__ import annotations

from typing import Any, Protocol

from residentd.errors import ProtocolError


class Codec(Protocol):
    """What the connection needs from a codec."""

    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> list[Any]: ...

    def encode(self, message: Any) -> bytes: ...

    def error_reply(self, error: ProtocolError) -> bytes | None: ...
