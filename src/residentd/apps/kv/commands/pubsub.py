"""Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE and PUBLISH, as in
Redis's ``pubsub.c``, with RESP2's subscribed mode.

Each (un)subscription is confirmed by its own reply, ``[kind, name, count]``, where count is
how many channels and patterns the client is subscribed to after it. Unsubscribing from
everything when subscribed to nothing still answers once, with a nil name. While a RESP2
client holds any subscription, the session lets through only these commands, PING and QUIT
(session.py); messages reach it through ``Client.deliver``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from residentd.apps.kv.commands.registry import Handler, command
from residentd.codecs.resp import NIL, bulk, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

_SUBSCRIBE = b"*3\r\n$9\r\nsubscribe\r\n"
_UNSUBSCRIBE = b"*3\r\n$11\r\nunsubscribe\r\n"
_PSUBSCRIBE = b"*3\r\n$10\r\npsubscribe\r\n"
_PUNSUBSCRIBE = b"*3\r\n$12\r\npunsubscribe\r\n"


def _subscription(name: str, arity: int, summary: str) -> Callable[[Handler], Handler]:
    """Register a (un)subscribe command: no keys, allowed in subscribed mode."""
    return command(
        name,
        arity,
        "pubsub noscript loading stale",
        "pubsub",
        summary,
        since="2.0.0",
        keys=(0, 0, 0),
        subscribed_ok=True,
    )


def _confirm(
    s: Client, header: bytes, names: list[bytes], change: Callable[[bytes], None]
) -> bytes:
    """Apply ``change`` to each name and confirm each with ``[kind, name, count]``; with no
    names (UNSUBSCRIBE from nothing), one confirmation with a nil name."""
    if not names:
        return header + NIL + integer(s.subscription_count)
    replies = []
    for name in names:
        change(name)
        replies.append(header + bulk(name) + integer(s.subscription_count))
    return b"".join(replies)


@_subscription("subscribe", -2, "Listens for messages published to channels.")
def subscribe(s: Client, argv: list[bytes]) -> bytes:
    return _confirm(s, _SUBSCRIBE, argv[1:], s.subscribe)


@_subscription("unsubscribe", -1, "Stops listening to messages posted to channels.")
def unsubscribe(s: Client, argv: list[bytes]) -> bytes:
    return _confirm(s, _UNSUBSCRIBE, argv[1:] or list(s.channels or ()), s.unsubscribe)


@_subscription(
    "psubscribe", -2, "Listens for messages published to channels that match one or more patterns."
)
def psubscribe(s: Client, argv: list[bytes]) -> bytes:
    return _confirm(s, _PSUBSCRIBE, argv[1:], s.psubscribe)


@_subscription(
    "punsubscribe",
    -1,
    "Stops listening to messages published to channels that match one or more patterns.",
)
def punsubscribe(s: Client, argv: list[bytes]) -> bytes:
    return _confirm(s, _PUNSUBSCRIBE, argv[1:] or list(s.patterns or ()), s.punsubscribe)


@command(
    "publish",
    3,
    "pubsub loading stale fast",
    "pubsub",
    "Posts a message to a channel.",
    since="2.0.0",
    keys=(0, 0, 0),
)
def publish(s: Client, argv: list[bytes]) -> bytes:
    return integer(s.state.hub.publish(argv[1], argv[2]))
