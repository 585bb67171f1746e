"""Publish/subscribe: who listens to which channel and pattern, and delivery to them.

``Hub`` keeps, for each channel and each pattern, its subscribers in subscription order (a
dict used as an ordered set), so messages reach them in the order Redis would send them.
``publish`` encodes the message once per channel and once per matching pattern and queues
the same bytes on every subscriber's connection; it returns how many deliveries it made, a
client subscribed both to the channel and to a matching pattern counting twice, as in Redis.

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


class Hub:
    __slots__ = ("channels", "patterns")

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[Subscriber, None]] = {}
        self.patterns: dict[bytes, dict[Subscriber, None]] = {}

    def subscribe(self, session: Subscriber, channel: bytes) -> None:
        self.channels.setdefault(channel, {})[session] = None

    def unsubscribe(self, session: Subscriber, channel: bytes) -> None:
        subscribers = self.channels.get(channel)
        if subscribers is not None:
            subscribers.pop(session, None)
            if not subscribers:
                del self.channels[channel]

    def psubscribe(self, session: Subscriber, pattern: bytes) -> None:
        self.patterns.setdefault(pattern, {})[session] = None

    def punsubscribe(self, session: Subscriber, pattern: bytes) -> None:
        subscribers = self.patterns.get(pattern)
        if subscribers is not None:
            subscribers.pop(session, None)
            if not subscribers:
                del self.patterns[pattern]

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
