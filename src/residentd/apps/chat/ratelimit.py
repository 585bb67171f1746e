"""A token bucket: at most ``rate`` requests a second on average, ``burst`` at once.

The bucket holds up to ``burst`` tokens and gains ``rate`` tokens a second; each request takes
one. It is refilled lazily, when a request asks for a token, from the time since the last
refill, so an idle user's bucket costs nothing and needs no timer. Two floats per user.

One bucket belongs to a user, not to a connection, so opening more connections does not buy
more requests.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.stamp = now

    def take(self, rate: float, burst: float, now: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be."""
        tokens = min(burst, self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return 0.0
        self.tokens = tokens
        return (1.0 - tokens) / rate
