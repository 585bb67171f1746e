"""The "users online" web app of the classic stacks: five endpoints over a ``Store``.

    POST /heartbeat  {"user": U, "room": R}             sign in / stay online in a room
    GET  /who?room=R                                     who is online in the room
    POST /post       {"user": U, "room": R, "text": T}  post a message
    GET  /history?room=R&limit=20                        the room's last messages, oldest first
    POST /incr       {"user": U, "key": K, "by": 1}     increment a counter in the user's state

``handle`` turns one request (method, path, query string, body) into a status and a JSON
document, the way a PHP script or a Flask view would, with no framework: the CGI script and
the WSGI app both call it, so the stacks differ only in how a request reaches it and where
the state lives. A user is online while their last heartbeat is younger than ``ONLINE_FOR``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Protocol
from urllib.parse import parse_qs

ONLINE_FOR_MS = 60_000  # a heartbeat keeps a user online this long
HISTORY_KEPT = 100  # messages a room keeps (the chat daemon's default history_size)
MAX_BODY = 16_384  # bytes in a request body (the chat daemon's default max_message)
MAX_TEXT = 2000
NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}\Z")


class Store(Protocol):
    def heartbeat(self, user: str, room: str, now: int) -> None: ...

    def who(self, room: str) -> list[tuple[str, int]]:
        """The room's users and their last heartbeat (ms), most recent first."""
        ...

    def post(self, room: str, user: str, text: str, now: int) -> int:
        """Store a message; return its sequence number in the room (from 1)."""
        ...

    def history(self, room: str, limit: int) -> list[dict[str, Any]]:
        """The room's last ``limit`` messages, oldest first: ``{seq, ts, user, text}``."""
        ...

    def incr(self, user: str, key: str, by: int) -> int: ...


class BadRequest(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


Reply = tuple[int, dict[str, Any]]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _name(fields: dict[str, Any], field: str) -> str:
    value = fields.get(field)
    if not isinstance(value, str) or not NAME.match(value):
        raise BadRequest(400, "invalid-value", f"{field}: 1-32 letters, digits, _ . -")
    return value


def _body(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise BadRequest(413, "too-large", f"body over {MAX_BODY} bytes")
    try:
        fields = json.loads(body)
    except ValueError:
        raise BadRequest(400, "invalid-json", "the body is not JSON") from None
    if not isinstance(fields, dict):
        raise BadRequest(400, "not-an-object", "the body is not a JSON object")
    return fields


def _query(query: str) -> dict[str, Any]:
    return {key: values[-1] for key, values in parse_qs(query).items()}


def heartbeat(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    user, room = _name(fields, "user"), _name(fields, "room")
    now = now_ms()
    store.heartbeat(user, room, now)
    return {"user": user, "room": room, "time": now}


def who(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    room = _name(fields, "room")
    since = now_ms() - ONLINE_FOR_MS
    users = []
    for user, last_seen in store.who(room):
        if last_seen > since:
            users.append({"user": user, "online": True})
        else:
            users.append({"user": user, "online": False, "last_seen": last_seen})
    online = sum(1 for user in users if user["online"])
    return {"room": room, "online": online, "users": users}


def post(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    user, room = _name(fields, "user"), _name(fields, "room")
    text = fields.get("text")
    if not isinstance(text, str) or not 0 < len(text) <= MAX_TEXT:
        raise BadRequest(400, "invalid-value", f"text: 1-{MAX_TEXT} characters")
    now = now_ms()
    seq = store.post(room, user, text, now)
    return {"room": room, "seq": seq, "ts": now}


def history(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    room = _name(fields, "room")
    try:
        limit = int(fields.get("limit", 50))
    except ValueError:
        raise BadRequest(400, "invalid-value", "limit: an integer") from None
    if not 1 <= limit <= HISTORY_KEPT:
        raise BadRequest(400, "invalid-value", f"limit: 1-{HISTORY_KEPT}")
    return {"room": room, "messages": store.history(room, limit)}


def incr(store: Store, fields: dict[str, Any]) -> dict[str, Any]:
    user, key = _name(fields, "user"), _name(fields, "key")
    by = fields.get("by", 1)
    if not isinstance(by, int) or isinstance(by, bool):
        raise BadRequest(400, "wrong-type", "by: an integer")
    return {"user": user, "key": key, "value": store.incr(user, key, by)}


ROUTES = {
    "/heartbeat": ("POST", heartbeat),
    "/who": ("GET", who),
    "/post": ("POST", post),
    "/history": ("GET", history),
    "/incr": ("POST", incr),
}


def handle(store: Store, method: str, path: str, query: str, body: bytes) -> Reply:
    """One request: its status and JSON answer (``{"error": code, "detail": ...}`` on failure)."""
    route = ROUTES.get(path)
    try:
        if route is None:
            raise BadRequest(404, "not-found", path)
        allowed, view = route
        if method != allowed:
            raise BadRequest(405, "method-not-allowed", f"{path} takes {allowed}")
        fields = _body(body) if method == "POST" else _query(query)
        return 200, view(store, fields)
    except BadRequest as error:
        return error.status, {"error": error.code, "detail": str(error)}


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           413: "Content Too Large", 500: "Internal Server Error"}  # fmt: skip
