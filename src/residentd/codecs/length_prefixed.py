"""Length-prefixed framing: a big-endian unsigned length, then that many bytes.

The prefix is 2 bytes (``u16``) or 4 bytes (``u32``). A declared length over ``max_length`` is
a ``ProtocolError`` ``frame-too-large`` as soon as the prefix is read, before any of the body is
buffered, so a hostile peer cannot make the codec allocate what it announces (the frames before
it come out first, the error from the next ``feed``: codecs/base.py).

Input accumulates in a bytearray with a read offset; frames are sliced out without moving the
rest, and consumed bytes are dropped once per feed, so a 10 MiB frame arriving in 1 KiB pieces
is assembled in linear time. This codec has no error form on the wire: the connection closes.
"""

from __future__ import annotations

from residentd.errors import ProtocolError, ProtocolErrorCode

DEFAULT_MAX_LENGTH = 1024 * 1024
_PREFIX_SIZES = {"u16": 2, "u32": 4}


class LengthPrefixedCodec:
    __slots__ = ("_buffer", "_error", "_need", "_prefix", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, prefix: str = "u32") -> None:
        if prefix not in _PREFIX_SIZES:
            raise ValueError(f"prefix must be 'u16' or 'u32', not {prefix!r}")
        self._prefix = _PREFIX_SIZES[prefix]
        limit = (1 << (8 * self._prefix)) - 1
        if not 0 < max_length <= limit:
            raise ValueError(f"max_length must be between 1 and {limit} for a {prefix} prefix")
        self.max_length = max_length
        self._buffer = bytearray()
        # Bytes the next frame needs in the buffer before it is worth looking again.
        self._need = self._prefix
        self._error: ProtocolError | None = None  # found after frames that went out first

    @property
    def buffered(self) -> int:
        return len(self._buffer) + (self._error is not None)

    def unparsed(self) -> bytes:
        """The partial frame held, prefix included (for a live upgrade)."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        error = self._error
        if error is not None:
            self._error = None
            raise error
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._need:
            return []
        frames: list[bytes] = []
        prefix = self._prefix
        offset = 0
        end = len(buffer)
        while end - offset >= prefix:
            length = int.from_bytes(buffer[offset : offset + prefix], "big")
            if length > self.max_length:
                buffer.clear()
                self._need = prefix
                error = ProtocolError(
                    ProtocolErrorCode.FRAME_TOO_LARGE, f"length={length} limit={self.max_length}"
                )
                if not frames:
                    raise error
                self._error = error
                return frames
            if end - offset - prefix < length:
                break
            start = offset + prefix
            offset = start + length
            frames.append(bytes(buffer[start:offset]))
        if offset:
            del buffer[:offset]
        if len(buffer) >= prefix:
            self._need = prefix + int.from_bytes(buffer[:prefix], "big")
        else:
            self._need = prefix
        return frames

    def encode(self, message: bytes) -> bytes:
        if len(message) > self.max_length:
            raise ValueError(f"message of {len(message)} bytes is over max_length")
        return len(message).to_bytes(self._prefix, "big") + message

    def error_reply(self, error: ProtocolError) -> None:
        return None
