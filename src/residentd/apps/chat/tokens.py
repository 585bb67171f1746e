"""Sign-in tokens: a user name and an expiry, signed with HMAC-SHA256 by the server secret.

A token is ``<expires>.<signature>``: ``expires`` is a Unix time in seconds (0: never) and the
signature is the URL-safe base64 of HMAC-SHA256(secret, ``"chat-v1\\n<user>\\n<expires>"``),
without padding. The server keeps no list of tokens: any token it can verify with its secret
is good until it expires, so changing the secret revokes every token at once.

``residentd chat token USER`` prints one (see ``cli.py``); the daemon checks them at ``hello``.
Signatures are compared with ``hmac.compare_digest``, in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

_CONTEXT = "chat-v1"


def _signature(secret: str, user: str, expires: int) -> str:
    message = f"{_CONTEXT}\n{user}\n{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_token(secret: str, user: str, ttl: float = 0, now: float | None = None) -> str:
    """A token for ``user`` valid for ``ttl`` seconds (0: for as long as the secret is)."""
    if not secret:
        raise ValueError("a token needs a non-empty secret")
    expires = 0 if ttl <= 0 else int((time.time() if now is None else now) + ttl)
    return f"{expires}.{_signature(secret, user, expires)}"


def check_token(secret: str, user: str, token: str, now: float | None = None) -> str | None:
    """``None`` when ``token`` is good for ``user``, else why not (for the error detail)."""
    if not secret:
        return "this server has no secret, so it accepts no tokens"
    expires_text, dot, signature = token.partition(".")
    if not dot or not expires_text.isdigit() or len(expires_text) > 12:
        return "malformed token"
    expires = int(expires_text)
    if not hmac.compare_digest(signature.encode(), _signature(secret, user, expires).encode()):
        return "the token is not for this user or not signed by this server"
    if expires and expires < (time.time() if now is None else now):
        return "the token has expired"
    return None
