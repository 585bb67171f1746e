"""The chat's two wires: how one encoded message is framed for a kind of connection.

A chat message is one JSON payload, whatever the transport. A ``Wire`` frames a payload for
the connections that speak it: ``LINES`` for TCP (the JSON plus ``\\n``), ``TEXT_FRAMES`` for
WebSocket (one unmasked text frame). Each session class names its wire (``ChatSession.wire``),
and a room keeps its online members' sessions by wire, so fan-out frames a push once per wire
and queues the same bytes on every session of that wire. A wire also holds its ``ping``, the
server's heartbeat framed once at import.

A third transport is a third ``Wire`` here and a session class that names it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from residentd.apps.chat import protocol as p
from residentd.codecs.websocket import text_frame


class Wire(ABC):
    """One framing of a payload; ``name`` is how the dashboard and logs call it."""

    __slots__ = ("name", "ping")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ping = self.frame(p.encode(p.ServerPing()))

    @abstractmethod
    def frame(self, payload: bytes) -> bytes:
        """The bytes a connection of this wire sends for one encoded message."""

    def __repr__(self) -> str:
        return f"<Wire {self.name}>"


class JsonLines(Wire):
    """TCP: one JSON object per line."""

    __slots__ = ()

    def frame(self, payload: bytes) -> bytes:
        return payload + b"\n"


class TextFrames(Wire):
    """WebSocket: one JSON object per text frame (a server's frames are not masked)."""

    __slots__ = ()

    def frame(self, payload: bytes) -> bytes:
        return text_frame(payload)


LINES = JsonLines("tcp")
TEXT_FRAMES = TextFrames("ws")
WIRES = (LINES, TEXT_FRAMES)

__all__ = ["LINES", "TEXT_FRAMES", "WIRES", "JsonLines", "TextFrames", "Wire"]
