"""Server counters: what was accepted, refused, read, written and closed, and why.

Per-message counts live on each connection (a plain attribute increment on the hot path); the
server folds a connection's counts into these totals when it closes, and ``snapshot`` adds the
live connections' counts at read time. So the totals are exact and the hot path stays cheap.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    __slots__ = (
        "accepted",
        "bytes_in",
        "bytes_out",
        "closed",
        "dropped_bytes",
        "dropped_connections",
        "errors",
        "messages_in",
        "messages_out",
        "refused",
    )

    def __init__(self) -> None:
        self.accepted = 0
        self.messages_in = 0
        self.messages_out = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.refused: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        # What a stop's deadline cut off: connections aborted with replies their peer had not
        # acknowledged (or a request still being handled), and those replies' bytes.
        self.dropped_connections = 0
        self.dropped_bytes = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "refused": dict(self.refused),
            "closed": dict(self.closed),
            "errors": dict(self.errors),
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "dropped_connections": self.dropped_connections,
            "dropped_bytes": self.dropped_bytes,
        }
