"""The connected clients as CLIENT LIST and CLIENT KILL see them: ``KvState.clients`` maps each
client's id to its ``Listed`` side (the session registers itself on connect and leaves on
close), so the commands can describe and close other clients without reaching through the
server's connections."""

from __future__ import annotations

from typing import Protocol


class Listed(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def peer(self) -> str:
        """The client's address, as CLIENT LIST's ``addr`` writes it."""
        ...

    @property
    def subscribed(self) -> bool:
        """Whether it is a pub/sub client (CLIENT KILL TYPE pubsub)."""
        ...

    def describe(self) -> str:
        """Its CLIENT LIST line, without the newline."""
        ...

    def kill(self) -> None:
        """Close it (CLIENT KILL by another client)."""
