"""Per-user state: a small key-value document that lives in memory with the user.

Values are any JSON and are kept as ``msgspec.Raw``, the exact bytes the client sent (copied
out of the read buffer), so ``state.get`` puts them in its reply without decoding or encoding
them again. The document's size is the sum of its keys' and values' byte lengths, kept up to
date on every change, and two limits bound it: ``max_keys`` and ``max_bytes``. A change that
would pass either is refused whole with ``state-full``; the document is never left half-changed.

``incr`` works on values that are JSON integers and stores the result back as JSON text.
"""

from __future__ import annotations

import msgspec

from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.protocol import setting

_int_decoder = msgspec.json.Decoder(int)


class UserState:
    __slots__ = ("size", "values")

    def __init__(self) -> None:
        self.values: dict[str, msgspec.Raw] = {}
        self.size = 0

    def set(self, key: str, value: msgspec.Raw, max_keys: int, max_bytes: int) -> int:
        """Store ``value`` at ``key``; returns the document's new size in bytes."""
        old = self.values.get(key)
        if old is None and len(self.values) >= max_keys:
            limit = setting("state_max_keys", max_keys)
            raise ChatError(ErrorCode.STATE_FULL, f"no room for another key ({limit})")
        size = self.size + len(key) + len(value)
        if old is not None:
            size -= len(key) + len(old)
        if size > max_bytes:
            limit = setting("state_max_bytes", max_bytes)
            raise ChatError(ErrorCode.STATE_FULL, f"the document would be {size} bytes ({limit})")
        self.values[key] = value.copy()
        self.size = size
        return size

    def get(self, key: str) -> msgspec.Raw | None:
        return self.values.get(key)

    def document(self) -> msgspec.Raw:
        """The whole document as one JSON object."""
        return msgspec.Raw(msgspec.json.encode(self.values))

    def incr(self, key: str, by: int, max_keys: int, max_bytes: int) -> int:
        old = self.values.get(key)
        current = 0
        if old is not None:
            try:
                current = _int_decoder.decode(old)
            except msgspec.DecodeError:
                raise ChatError(
                    ErrorCode.NOT_A_NUMBER, f"{key!r} does not hold an integer"
                ) from None
        value = current + by
        if not -(2**63) <= value < 2**63:
            raise ChatError(ErrorCode.NOT_A_NUMBER, "the result does not fit in 64 bits")
        self.set(key, msgspec.Raw(str(value).encode()), max_keys, max_bytes)
        return value

    def delete(self, key: str) -> bool:
        old = self.values.pop(key, None)
        if old is None:
            return False
        self.size -= len(key) + len(old)
        return True
