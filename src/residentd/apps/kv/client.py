"""What a command handler sees of the client that sent the command: the ``Client`` protocol.

A handler is ``handler(client, argv) -> bytes``. It reads and changes the keyspace
(``client.db``), reads kv's shared state and the server's facts through ``client.state``
(limits, listening addresses, counters: state.py), and drives the client's own modes: its
name, its MULTI transaction and its pub/sub subscriptions. It never sees a socket: the
session (session.py) is the client of a connection, the journal's replay
(persistence/machine.py) runs handlers with a client of its own, and tests call handlers with
a plain in-memory one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from residentd.apps.kv.blocking import Serve
    from residentd.apps.kv.state import KvState
    from residentd.apps.kv.store import Keyspace


class Client(Protocol):
    # The selected database's keyspace and what the whole daemon shares.
    db: Keyspace
    state: KvState
    # CLIENT SETNAME / HELLO SETNAME; None without one.
    name: bytes | None
    # The protocol of its replies: 2, or 3 after HELLO 3.
    resp: int
    # The channels and patterns subscribed to, in subscription order (None: none yet).
    channels: dict[bytes, None] | None
    patterns: dict[bytes, None] | None
    # The shard channels (SSUBSCRIBE), apart from the others as in Redis.
    shard_channels: dict[bytes, None] | None
    # CLIENT NO-EVICT (kv evicts no client: it is only shown, as flag "e").
    no_evict: bool

    @property
    def id(self) -> int:
        """The client's id (CLIENT ID), unique in this daemon."""
        ...

    # -- the connection ------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        """Whether it may run commands: always while requirepass is not set, else after AUTH
        (or HELLO AUTH)."""
        ...

    def authenticate(self) -> None:
        """AUTH succeeded."""

    def reset(self) -> None:
        """RESET: no MULTI, no subscriptions, RESP2, no name, replies on, and authenticated
        only if no password is required."""

    def set_reply_mode(self, mode: int) -> None:
        """CLIENT REPLY: ``REPLY_ON``, ``REPLY_OFF`` or ``REPLY_SKIP`` (the next reply)."""

    def describe(self) -> str:
        """Its CLIENT LIST line, without the newline."""
        ...

    # -- MULTI -----------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether MULTI started a transaction that EXEC or DISCARD has not ended."""
        ...

    def set_protocol(self, version: int) -> None:
        """HELLO: the protocol of the replies from now on (2 or 3)."""

    def begin(self) -> None:
        """MULTI: queue the following commands."""

    def execute(self) -> bytes:
        """EXEC: run the queued commands, end the transaction and return EXEC's reply (raise
        ``KvError(EXECABORT)`` if a queued command was refused)."""
        ...

    def discard(self) -> None:
        """DISCARD: drop the queued commands, end the transaction and unwatch every key."""

    def watch(self, key: bytes) -> None:
        """WATCH: EXEC fails if ``key`` (of the selected database) changes before it."""

    def unwatch(self) -> None:
        """UNWATCH: forget every watched key."""

    def select(self, index: int) -> None:
        """SELECT: use database ``index`` (checked by the caller) from now on."""

    # -- blocking commands -------------------------------------------------------------------

    def block(self, keys: list[bytes], timeout: float, serve: Serve, timeout_reply: bytes) -> None:
        """Suspend the command until ``serve`` answers it from one of ``keys`` or ``timeout``
        seconds pass (0: forever; the reply is then ``timeout_reply``): raises ``Blocked``
        (blocking.py). A client that may not block (inside MULTI, a journal replay) returns,
        and the command answers as if it timed out at once."""

    # -- pub/sub ---------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        """Whether the client listens to a channel or a pattern (RESP2's subscribed mode)."""
        ...

    @property
    def subscription_count(self) -> int:
        """Channels and patterns subscribed to (the count SUBSCRIBE confirms)."""
        ...

    @property
    def shard_subscription_count(self) -> int:
        """Shard channels subscribed to (the count SSUBSCRIBE confirms)."""
        ...

    def subscribe(self, channel: bytes) -> None: ...
    def unsubscribe(self, channel: bytes) -> None: ...
    def psubscribe(self, pattern: bytes) -> None: ...
    def punsubscribe(self, pattern: bytes) -> None: ...
    def ssubscribe(self, channel: bytes) -> None: ...
    def sunsubscribe(self, channel: bytes) -> None: ...


REPLY_ON, REPLY_OFF, REPLY_SKIP = 0, 1, 2

Handler: TypeAlias = Callable[[Client, list[bytes]], bytes]
