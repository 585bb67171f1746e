"""Publish/subscribe: who listens to which channel, pattern and shard channel, and delivery
to them.

``Hub`` keeps, for each channel and each pattern, its subscribers in subscription order (a
dict used as an ordered set), so messages reach them in the order Redis would send them.
``publish`` encodes the message once per channel and once per matching pattern and queues
the same bytes on every subscriber's connection; it returns how many deliveries it made, a
client subscribed both to the channel and to a matching pattern counting twice, as in Redis.
Shard channels (SSUBSCRIBE, SPUBLISH) are a namespace of their own, as in Redis 7.0: no
pattern matches them, and their messages are ``smessage``.

Subscribers that stop reading are the danger of pub/sub: each message adds to their output.
A subscriber's output is checked against Redis's ``client-output-buffer-limit pubsub``
(a hard limit, and a soft limit that may be exceeded for a while) by the session's
``deliver``; this module only decides who gets what.
"""

from __future__ import annotations

from typing import Protocol

from residentd.apps.kv.patterns import compile_glob
from residentd.codecs.resp import bulk


class Subscriber(Protocol):
    def deliver(self, payload: bytes) -> None:
        """Queue ``payload``, a message already in RESP, for the subscriber."""


MESSAGE = b"*3\r\n$7\r\nmessage\r\n"
PMESSAGE = b"*4\r\n$8\r\npmessage\r\n"
SMESSAGE = b"*3\r\n$8\r\nsmessage\r\n"


class Hub:
    __slots__ = ("channels", "patterns", "shard_channels")

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Subscriber, None]] = {}
        self.patterns: dict[bytes, dict[Subscriber, None]] = {}
        self.shard_channels: dict[bytes, dict[Subscriber, None]] = {}

    def subscribe(self, session: Subscriber, channel: bytes) -> None:
        self.channels.setdefault(channel, {})[session] = None

    def unsubscribe(self, session: Subscriber, channel: bytes) -> None:
        _leave(self.channels, session, channel)

    def ssubscribe(self, session: Subscriber, channel: bytes) -> None:
        self.shard_channels.setdefault(channel, {})[session] = None

    def sunsubscribe(self, session: Subscriber, channel: bytes) -> None:
        _leave(self.shard_channels, session, channel)

    def spublish(self, channel: bytes, message: bytes) -> int:
        subscribers = self.shard_channels.get(channel)
        if not subscribers:
            return 0
        payload = SMESSAGE + bulk(channel) + bulk(message)
        for session in list(subscribers):
            session.deliver(payload)
        return len(subscribers)

    def psubscribe(self, session: Subscriber, pattern: bytes) -> None:
        self.patterns.setdefault(pattern, {})[session] = None

    def punsubscribe(self, session: Subscriber, pattern: bytes) -> None:
        _leave(self.patterns, session, pattern)

    def publish(self, channel: bytes, message: bytes) -> int:
        receivers = 0
        subscribers = self.channels.get(channel)
        tail = None
        if subscribers:
            tail = bulk(channel) + bulk(message)
            payload = MESSAGE + tail
            receivers += len(subscribers)
            for session in list(subscribers):
                session.deliver(payload)
        if self.patterns:
            for pattern, subscribers in list(self.patterns.items()):
                if compile_glob(pattern)(channel):
                    if tail is None:
                        tail = bulk(channel) + bulk(message)
                    payload = PMESSAGE + bulk(pattern) + tail
                    receivers += len(subscribers)
                    for session in list(subscribers):
                        session.deliver(payload)
        return receivers


def _leave(table: dict[bytes, dict[Subscriber, None]], session: Subscriber, name: bytes) -> None:
    """Take ``session`` off ``name``'s subscribers, and ``name`` off the table once it has
    none."""
    subscribers = table.get(name)
    if subscribers is not None:
        subscribers.pop(session, None)
        if not subscribers:
            del table[name]
