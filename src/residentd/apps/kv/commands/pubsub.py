"""Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE and PUBLISH, the shard
channels' SSUBSCRIBE, SUNSUBSCRIBE and SPUBLISH, and PUBSUB's introspection, as in Redis
7.0's ``pubsub.c``, with RESP2's subscribed mode.

Each (un)subscription is confirmed by its own reply, ``[kind, name, count]``, where count is
how many channels and patterns the client is subscribed to after it (for the shard commands,
how many shard channels). Unsubscribing from everything when subscribed to nothing still
answers once, with a nil name. While a RESP2 client holds any subscription, the session lets
through only these commands, PING and QUIT (session.py); messages reach it through
``Client.deliver``. kv is one node, so every shard channel is in its slots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sized
from typing import TYPE_CHECKING

from residentd.apps.kv import errors
from residentd.apps.kv.commands.registry import (
    Handler,
    command,
    container,
    help_subcommand,
    subcommand,
)
from residentd.apps.kv.errors import KvError
from residentd.apps.kv.patterns import compile_glob
from residentd.codecs.resp import NIL, array_header, bulk, bulk_array, integer

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

_SUBSCRIBE = b"*3\r\n$9\r\nsubscribe\r\n"
_UNSUBSCRIBE = b"*3\r\n$11\r\nunsubscribe\r\n"
_PSUBSCRIBE = b"*3\r\n$10\r\npsubscribe\r\n"
_PUNSUBSCRIBE = b"*3\r\n$12\r\npunsubscribe\r\n"
_SSUBSCRIBE = b"*3\r\n$10\r\nssubscribe\r\n"
_SUNSUBSCRIBE = b"*3\r\n$12\r\nsunsubscribe\r\n"


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
    s: Client,
    header: bytes,
    names: list[bytes],
    change: Callable[[bytes], None],
    shard: bool = False,
) -> bytes:
    """Apply ``change`` to each name and confirm each with ``[kind, name, count]``; with no
    names (UNSUBSCRIBE from nothing), one confirmation with a nil name."""

    def count() -> bytes:
        return integer(s.shard_subscription_count if shard else s.subscription_count)

    if not names:
        return header + NIL + count()
    replies = []
    for name in names:
        change(name)
        replies.append(header + bulk(name) + count())
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


@_subscription("ssubscribe", -2, "Listens for messages published to shard channels.")
def ssubscribe(s: Client, argv: list[bytes]) -> bytes:
    return _confirm(s, _SSUBSCRIBE, argv[1:], s.ssubscribe, shard=True)


@_subscription("sunsubscribe", -1, "Stops listening to messages posted to shard channels.")
def sunsubscribe(s: Client, argv: list[bytes]) -> bytes:
    names = argv[1:] or list(s.shard_channels or ())
    return _confirm(s, _SUNSUBSCRIBE, names, s.sunsubscribe, shard=True)


@command(
    "spublish",
    3,
    "pubsub loading stale fast",
    "pubsub",
    "Post a message to a shard channel",
    since="7.0.0",
    keys=(1, 1, 1),
)
def spublish(s: Client, argv: list[bytes]) -> bytes:
    return integer(s.state.hub.spublish(argv[1], argv[2]))


container("pubsub", "", "pubsub", "A container for Pub/Sub commands.", since="2.8.0")


def _names(table: Mapping[bytes, Sized], argv: list[bytes]) -> bytes:
    """The names in ``table`` matching PUBSUB CHANNELS's optional pattern."""
    if len(argv) > 3:
        raise KvError(errors.subcommand_syntax(argv[1], "pubsub"))
    if len(argv) == 2:
        return bulk_array(list(table))
    match = compile_glob(argv[2])
    return bulk_array([name for name in table if match(name)])


def _counts(table: Mapping[bytes, Sized], names: list[bytes]) -> bytes:
    """Each name and its subscriber count, flat (an array in RESP3 too, as in Redis 7.0)."""
    parts = [bulk(name) + integer(len(table.get(name, ()))) for name in names]
    return array_header(2 * len(names)) + b"".join(parts)


@subcommand(
    "pubsub",
    "channels",
    -2,
    "pubsub loading stale",
    "Returns the active channels.",
    since="2.8.0",
)
def pubsub_channels(s: Client, argv: list[bytes]) -> bytes:
    return _names(s.state.hub.channels, argv)


@subcommand(
    "pubsub",
    "shardchannels",
    -2,
    "pubsub loading stale",
    "Returns the active shard channels.",
    since="7.0.0",
)
def pubsub_shardchannels(s: Client, argv: list[bytes]) -> bytes:
    return _names(s.state.hub.shard_channels, argv)


@subcommand(
    "pubsub",
    "numsub",
    -2,
    "pubsub loading stale",
    "Returns a count of subscribers to channels.",
    since="2.8.0",
)
def pubsub_numsub(s: Client, argv: list[bytes]) -> bytes:
    return _counts(s.state.hub.channels, argv[2:])


@subcommand(
    "pubsub",
    "shardnumsub",
    -2,
    "pubsub loading stale",
    "Returns the count of subscribers of shard channels.",
    since="7.0.0",
)
def pubsub_shardnumsub(s: Client, argv: list[bytes]) -> bytes:
    return _counts(s.state.hub.shard_channels, argv[2:])


@subcommand(
    "pubsub",
    "numpat",
    2,
    "pubsub loading stale",
    "Returns a count of unique pattern subscriptions.",
    since="2.8.0",
)
def pubsub_numpat(s: Client, argv: list[bytes]) -> bytes:
    return integer(len(s.state.hub.patterns))


help_subcommand(
    "pubsub",
    [
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ],
)
