"""The chat daemon's settings: declared once here, read as one frozen ``ChatSettings``.

Each field of ``ChatSettings`` is a setting of the app (residentd.settings: ``--max-text``,
``max_text = ...`` in the TOML file, ``RESIDENTD_MAX_TEXT``) with the field's default, help
text and checks (a ``rooms``
entry must be a room name, an ``origins`` entry an origin as browsers send it: a bad one stops
the start, exit 2, instead of making a room nobody can join or an origin nobody matches).

The hub holds one ``ChatSettings`` and reads it on every use; a reload builds a new one from the
new option values and swaps it in whole, so the new limits apply at once to every user.
``max_message`` and ``origins`` are read when a connection opens, so they apply to new
connections.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from residentd.apps.chat.names import ROOM_RULE, is_name
from residentd.settings import setting


def _option(
    default: Any,
    help: str,
    minimum: float | None = 0,
    reloadable: bool = True,
    check: Callable[[Any], str | None] | None = None,
    secret: bool = False,
) -> Any:
    """A chat setting: reloadable and at least 0 unless said otherwise."""
    return setting(default, help, reload=reloadable, minimum=minimum, check=check, secret=secret)


def _room_names(rooms: list[str]) -> str | None:
    """Why the ``rooms`` option is not allowed, or None: a room nobody can name is no room."""
    bad = [room for room in rooms if not is_name(room)]
    if bad:
        return f"{', '.join(repr(room) for room in bad)}: {ROOM_RULE}"
    return None


# What a browser sends as Origin: scheme://host[:port], lower case, no path.
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[a-z0-9.\-\[\]:]+")


def _origins(origins: list[str]) -> str | None:
    """Why the ``origins`` option is not allowed, or None: an entry no browser can send would
    never match, and let nobody in."""
    bad = [origin for origin in origins if origin != "*" and not _ORIGIN.fullmatch(origin)]
    if bad:
        example = "https://chat.example.com or http://127.0.0.1:8080"
        return (
            f"{', '.join(repr(origin) for origin in bad)}: an origin is scheme://host[:port] "
            f"in lower case, without a path ({example}), or '*'"
        )
    return None


def _broker(url: str | None) -> str | None:
    """Why the ``broker`` option is not allowed, or None."""
    if url is None or url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return f"{url!r}: a broker is redis://HOST:PORT/DB, rediss://... or unix:///PATH"


@dataclass(frozen=True, slots=True)
class ChatSettings:
    secret: str | None = _option(
        None, "HMAC secret that signs sign-in tokens (`residentd chat token USER`)", None
    )
    guests: bool = _option(True, "let users sign in with a name and no token", None)
    max_message: int = _option(
        16_384, "longest message in bytes: a TCP line or a WebSocket message", 64
    )
    max_text: int = _option(2_000, "longest post or direct message, in characters", 1)
    history_size: int = _option(100, "messages kept per room for `history`")
    max_rooms: int = _option(10_000, "rooms the server holds at most", 1)
    max_rooms_per_user: int = _option(50, "rooms one user may be a member of", 1)
    max_users: int = _option(
        100_000, "users kept in memory; the longest-offline ones are forgotten past it", 1
    )
    max_connections_per_user: int = _option(8, "connections (devices) one user may hold", 1)
    rate_limit: float = _option(20.0, "requests a second per user, on average (0: no limit)")
    rate_burst: float = _option(40.0, "requests one user may send at once", 1)
    ping_interval: float = _option(
        30.0, "seconds of silence before the server pings a connection (0: never)"
    )
    ping_timeout: float = _option(
        30.0, "seconds a pinged connection has to answer before it is closed as dead", 1
    )
    hello_timeout: float = _option(10.0, "seconds a new connection has to sign in", 1)
    presence_push_limit: int = _option(
        1_000, "rooms with more members get no joined/left/presence pushes"
    )
    state_max_keys: int = _option(100, "keys in one user's state document")
    state_max_bytes: int = _option(16_384, "bytes of keys and values in one state document")
    rooms: list[str] = _option(  # noqa: RUF009
        ["lobby"], "public rooms created at start", None, False, check=_room_names
    )
    origins: list[str] = _option(  # noqa: RUF009
        [],
        "page origins allowed to open /ws besides the server's own ('*': any)",
        None,
        check=_origins,
    )
    api_keys: list[str] = _option(  # noqa: RUF009
        [],
        "keys the backend API takes as `Authorization: Bearer KEY` (none: the API is off)",
        None,
        secret=True,
    )
    api_keys_file: str | None = _option(
        None, "a file of more API keys, one a line (# comments), read at start and reload", None
    )
    api_max_body: int = _option(65_536, "largest request body the HTTP port reads, in bytes", 64)
    broker: str | None = _option(
        None,
        "Redis that nodes share the world through, redis://HOST:PORT/DB or unix:///PATH "
        "(none: everything in this process)",
        None,
        False,
        check=_broker,
    )
    broker_wait: bool = _option(
        False, "at start, wait for the broker to answer instead of exiting (exit 2)", None, False
    )
    node_id: str | None = _option(
        None, "this node's name on the broker (none: HOSTNAME:PID)", None, False
    )
