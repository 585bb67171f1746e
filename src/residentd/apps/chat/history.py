"""A room's history: its last N messages, numbered, fetched page by page with a cursor.

Each message posted to a room gets the room's next sequence number (1, 2, 3, ...), which is its
id within the room and the cursor of ``history``: a page is the messages just before sequence
number ``before``, oldest first. Only the last ``size`` messages are kept, in a ring
(``deque(maxlen=size)``); older ones are forgotten, and ``more`` tells a client whether there
is anything older left to ask for. ``since`` gives what a resuming client missed.

Messages are stored as the JSON bytes of the ``message`` push that was fanned out, so a page is
sent as it is, with no encoding per request.
"""

from __future__ import annotations

from collections import deque

import msgspec


class RoomHistory:
    __slots__ = ("_messages", "last")

    def __init__(self, size: int) -> None:
        self._messages: deque[msgspec.Raw] = deque(maxlen=size)
        self.last = 0  # sequence number of the newest message; 0 when none was posted

    def next_seq(self) -> int:
        return self.last + 1

    def append(self, payload: bytes) -> None:
        """Keep the message with sequence number ``next_seq()``."""
        self.last += 1
        if self._messages.maxlen:
            self._messages.append(msgspec.Raw(payload))

    def kept(self) -> list[msgspec.Raw]:
        """The kept messages, oldest first."""
        return list(self._messages)

    def restore(self, last: int, messages: list[bytes]) -> None:
        """Take a saved history: the newest sequence number and the messages kept before it."""
        self.last = last
        self._messages.clear()
        for payload in messages:
            if self._messages.maxlen:
                self._messages.append(msgspec.Raw(payload))

    def resize(self, size: int) -> None:
        if size != self._messages.maxlen:
            self._messages = deque(self._messages, maxlen=size)

    def since(self, seq: int) -> list[msgspec.Raw] | None:
        """The messages after sequence number ``seq``, oldest first; None when some of them
        are no longer kept (or ``seq`` is past the newest: not this history's numbering)."""
        if seq > self.last:
            return None
        kept = self._messages
        missed = self.last - seq
        if missed > len(kept):
            return None
        return [kept[index] for index in range(len(kept) - missed, len(kept))]

    def page(self, before: int | None, limit: int) -> tuple[list[msgspec.Raw], bool]:
        """Up to ``limit`` messages with sequence numbers below ``before``, oldest first, and
        whether older ones are still kept."""
        kept = self._messages
        first = self.last - len(kept) + 1  # sequence number of kept[0]
        end = self.last + 1 if before is None else min(before, self.last + 1)
        start = max(first, end - limit)
        if end <= start:
            return [], False
        offset = start - first
        return [kept[index] for index in range(offset, end - first)], start > first
