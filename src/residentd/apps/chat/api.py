"""The backend API: HTTP + JSON under ``/api/v1/`` on the chat's HTTP port, for the
application's own backend (a Django or Flask view, a cron job), not for browsers.

It reads and changes the same world as the socket protocol, on the loop, one request at a
time: who is online, a user's presence, rooms with their members and history, a post to a room
as a named system user, a direct message, a user's state document, a sign-in token minted for a
user (the backend has signed its user in already; the browser hands the token to ``hello``, so
the chat keeps no passwords), and a kick. docs/chat-protocol.md describes every endpoint and
``/api/v1/openapi.json`` serves the OpenAPI document (``openapi.py``), built from the structs
below, so the document and the answers cannot drift apart.

Every request needs ``Authorization: Bearer KEY`` with one of the ``api_keys`` (or a line of
``api_keys_file``), compared in constant time; with no key configured the API is off and every
path under ``/api/`` answers 404 with ``api-off``. Errors are JSON,
``{"error": CODE, "detail": TEXT, "field": NAME}`` (``field`` for a bad input): 400 for a bad
body, query or path value (the field is named), 401 without a good key (with
``WWW-Authenticate: Bearer``), 404 for an unknown path, user or room, 405 with ``Allow`` for a
wrong method, 409 when the world refuses (``user-offline``, ``state-full``, ...). A body over
``api_max_body`` is refused with 413 by the HTTP codec before it is read.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Annotated, Any, cast
from urllib.parse import unquote

import msgspec

from residentd.apps.chat import protocol as p
from residentd.apps.chat.handlers import (
    MAX_LISTED,
    member_list,
    post_message,
    send_direct,
    user_state,
)
from residentd.apps.chat.protocol import ChatError
from residentd.apps.chat.tokens import make_token
from residentd.codecs.http import HttpRequest, reply
from residentd.errors import ConfigError

if TYPE_CHECKING:
    from residentd.apps.chat.daemon import ChatApp
    from residentd.apps.chat.hub import Hub
    from residentd.apps.chat.presence import User
    from residentd.apps.chat.settings import ChatSettings
    from residentd.apps.chat.state import UserState

PREFIX = "/api/"
BASE = "/api/v1"
JSON = "application/json"
_ROOT = BASE + "/"
_ROOT_LENGTH = len(_ROOT)
MIN_KEY_LENGTH = 16
MAX_TTL = 10 * 365 * 86400

# -- request bodies ------------------------------------------------------------------------------

Reason = Annotated[str, msgspec.Meta(max_length=200)]
Ttl = Annotated[int, msgspec.Meta(ge=0, le=MAX_TTL)]


class PostBody(msgspec.Struct, forbid_unknown_fields=True):
    """A message to a room, posted as ``user`` (any valid name: it need not be a member)."""

    user: p.Name
    text: p.Text


class DirectBody(msgspec.Struct, forbid_unknown_fields=True):
    """A direct message to the user of the path, from ``from``."""

    text: p.Text
    sender: p.Name = msgspec.field(name="from", default="system")


class TokenBody(msgspec.Struct, forbid_unknown_fields=True):
    """How long the token is good for, in seconds (0: as long as the secret is)."""

    ttl: Ttl = 86_400


class KickBody(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason = "kicked"


class StateValueBody(msgspec.Struct, forbid_unknown_fields=True):
    """The new value of one key: any JSON."""

    value: msgspec.Raw


class IncrBody(msgspec.Struct, forbid_unknown_fields=True):
    by: int = 1


# -- answers -------------------------------------------------------------------------------------


class Online(msgspec.Struct):
    """Users online on the server (``online`` counts them all; ``users`` lists up to ``limit``,
    in the order they came online)."""

    online: int
    users: list[str]


class UserPresence(msgspec.Struct):
    user: str
    online: bool
    guest: bool
    connections: int
    rooms: list[str]
    last_seen: int | None  # Unix time in ms of going offline; null while online


class RoomList(msgspec.Struct):
    rooms: list[p.RoomInfo]


class Members(msgspec.Struct):
    """A room's members, the online ones first."""

    room: str
    online: int
    users: list[p.UserInfo]


class HistoryPage(msgspec.Struct):
    """Messages before ``before``, oldest first; ``more``: older ones are still kept."""

    room: str
    messages: list[p.Message]
    more: bool


class Posted(msgspec.Struct):
    room: str
    seq: int
    ts: int


class Sent(msgspec.Struct):
    to: str
    msg: int
    ts: int


class Token(msgspec.Struct):
    """A sign-in token for ``hello``; ``expires`` is a Unix time in seconds, 0 for never."""

    user: str
    token: str
    expires: int


class Kicked(msgspec.Struct):
    user: str
    closed: int


class StateDocument(msgspec.Struct):
    user: str
    state: dict[str, Any]


class StateValue(msgspec.Struct):
    key: str
    value: Any  # null when the key is not set


class StateSize(msgspec.Struct):
    key: str
    size: int


class StateNumber(msgspec.Struct):
    key: str
    value: int


class StateDeleted(msgspec.Struct):
    key: str
    deleted: bool


class ApiError(msgspec.Struct, omit_defaults=True):
    error: str
    detail: str = ""
    field: str | None = None


# -- errors --------------------------------------------------------------------------------------


class Refused(Exception):
    """A request the API answers with an error status."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str = "",
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.body = ApiError(code, detail, field)
        self.headers = headers


# Status of the chat's own error codes; any other is 409 (the request is fine, the world refuses).
CHAT_STATUS = {"no-such-room": 404, "no-such-user": 404, "too-long": 400}

_FIELD_PATH = re.compile(r"at `\$\.([^`.\[]+)")
_MISSING = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")


def bad_input(where: str, error: msgspec.ValidationError | msgspec.DecodeError) -> Refused:
    """A 400 naming the field of ``where`` (``body``, ``query``) that failed."""
    detail = str(error)
    found = _MISSING.search(detail) or _FIELD_PATH.search(detail)
    field = found.group(1) if found else where
    return Refused(400, "bad-request", f"{where}: {detail}", field)


_encode = msgspec.json.Encoder().encode

# -- routing -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One API request, as its handler sees it."""

    hub: Hub
    app: ChatApp
    request: HttpRequest
    params: dict[str, str]
    query_values: dict[str, str]

    def body(self, kind: type[Any]) -> Any:
        try:
            return msgspec.json.decode(self.request.body or b"{}", type=kind)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise bad_input("body", error) from None

    def query(self, name: str, default: int, low: int, high: int) -> int:
        text = self.query_values.get(name)
        if text is None:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            raise Refused(400, "bad-request", f"{name} must be {low} to {high}", name)
        return int(text)

    def user(self) -> User:
        user = self.hub.presence.get(self.params["user"])
        if user is None:
            raise ChatError("no-such-user", self.params["user"])
        return user


Handler = Callable[[Call], Any]
_NAME = re.compile(r"^[\w.-]{1,32}$")
_PARAMS = {"user": _NAME, "room": _NAME, "key": re.compile(r"^.{1,64}$", re.DOTALL)}


class Route:
    """A path pattern (its segments, ``{name}`` for a parameter) and its handler by method.
    ``literal_at`` picks a path's segments where the pattern has literals, in one call, for
    one comparison with the pattern's own."""

    __slots__ = ("literal", "literal_at", "methods", "params", "parts")

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts
        self.params = tuple((i, part[1:-1]) for i, part in enumerate(parts) if part[:1] == "{")
        literal = [i for i, part in enumerate(parts) if part[:1] != "{"]  # the first, at least
        self.literal_at = itemgetter(*literal)
        self.literal = self.literal_at(parts)
        self.methods: dict[str, Handler] = {}


# Routes by their number of segments and their first one (always a literal): a request is
# matched against the two or three patterns that could fit, not all of them.
ROUTES: dict[tuple[int, str], list[Route]] = {}


def route(pattern: str, method: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``method`` on ``pattern`` (``/rooms/{room}``, under BASE)."""
    parts = tuple(pattern.strip("/").split("/"))

    def register(handler: Handler) -> Handler:
        routes = ROUTES.setdefault((len(parts), parts[0]), [])
        found = next((known for known in routes if known.parts == parts), None)
        if found is None:
            found = Route(parts)
            routes.append(found)
        found.methods[method] = handler
        return handler

    return register


def _match(segments: list[str]) -> tuple[dict[str, Handler], dict[str, str]] | None:
    for known in ROUTES.get((len(segments), segments[0]), ()):
        if known.literal_at(segments) == known.literal:
            return known.methods, {name: segments[i] for i, name in known.params}
    return None


def answer(app: ChatApp, request: HttpRequest) -> bytes:
    """The bytes of the response to a request under ``/api/``."""
    try:
        status, body, headers = 200, _answer(app, request), None
    except Refused as refused:
        status, body, headers = refused.status, refused.body, refused.headers
    except ChatError as error:
        status = CHAT_STATUS.get(error.code, 409)
        field = "text" if error.code == "too-long" else None  # the one text over max_text
        body, headers = ApiError(error.code, error.detail, field), None
    data = body if type(body) is bytes else _encode(body)
    return reply(request, status, data, JSON, headers)


def _answer(app: ChatApp, request: HttpRequest) -> Any:
    keys = app.api_keys
    if not keys:
        raise Refused(404, "api-off", "the API is off: set api_keys or api_keys_file")
    check_key(keys, request.headers.get("authorization", ""))
    raw_path = request.raw_path
    if not raw_path.startswith(_ROOT):
        raise Refused(404, "not-found", f"no such path; the API is under {_ROOT}")
    segments = raw_path[_ROOT_LENGTH:].split("/")
    if "%" in raw_path:
        segments = [unquote(part) for part in segments]
    found = _match(segments)
    if found is None:
        raise Refused(404, "not-found", f"no such path: {raw_path[:200]}")
    methods, params = found
    method = "GET" if request.method == "HEAD" else request.method
    handler = methods.get(method)
    if handler is None:
        allow = ", ".join(sorted({*methods, *(("HEAD",) if "GET" in methods else ())}))
        raise Refused(
            405, "method-not-allowed", f"{request.method} on this path", None, {"Allow": allow}
        )
    for name, value in params.items():
        if not _PARAMS[name].match(value):
            raise Refused(400, "bad-request", f"bad {name} in the path: {value[:80]!r}", name)
    query = request.query if "?" in request.target else {}
    return handler(Call(app.hub, app, request, params, query))


def check_key(keys: tuple[bytes, ...], authorization: str) -> None:
    """Refuse unless ``authorization`` is ``Bearer KEY`` with one of ``keys``; every key is
    compared, each in constant time."""
    scheme, _, given = authorization.partition(" ")
    realm = 'Bearer realm="residentd chat API"'
    if scheme.lower() != "bearer" or not given:
        challenge = {"WWW-Authenticate": realm}
        raise Refused(401, "unauthorized", "send Authorization: Bearer KEY", None, challenge)
    candidate = given.strip().encode("latin-1")
    good = False
    for key in keys:
        good |= hmac.compare_digest(candidate, key)
    if not good:
        challenge = {"WWW-Authenticate": realm + ', error="invalid_token"'}
        raise Refused(401, "unauthorized", "the API key is not one of api_keys", None, challenge)


def load_keys(settings: ChatSettings) -> tuple[bytes, ...]:
    """The API keys in force: ``api_keys`` and the lines of ``api_keys_file``. Called at start
    and reload (not on the loop's hot path); a bad key or file is a ``ConfigError``."""
    keys = list(settings.api_keys)
    if settings.api_keys_file:
        try:
            with open(settings.api_keys_file, encoding="utf-8") as file:
                lines = file.read().splitlines()
        except OSError as error:
            raise ConfigError(f"api_keys_file = {settings.api_keys_file!r}: {error}") from None
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for key in keys:
        if len(key) < MIN_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
            raise ConfigError(
                f"an API key must be at least {MIN_KEY_LENGTH} printable ASCII characters "
                f"without spaces (a key of length {len(key)} is not)"
            )
    return tuple(key.encode() for key in keys)


# -- endpoints -----------------------------------------------------------------------------------


@route("/openapi.json", "GET")
def _openapi(call: Call) -> bytes:
    from residentd.apps.chat.openapi import document

    return document()


@route("/online", "GET")
def _online(call: Call) -> Online:
    online = call.hub.presence.online
    limit = call.query("limit", 100, 1, MAX_LISTED)
    users: list[str] = []
    for name in online:
        if len(users) >= limit:
            break
        users.append(name)
    return Online(len(online), users)


@route("/users/{user}", "GET")
def _presence(call: Call) -> UserPresence:
    user = call.user()
    rooms = [room.name for room in user.rooms]
    return UserPresence(
        user.name, user.online, user.guest, len(user.sessions), rooms, user.last_seen or None
    )


@route("/users/{user}/token", "POST")
def _token(call: Call) -> Token:
    secret = call.hub.settings.secret
    if not secret:
        raise Refused(409, "no-secret", "the server has no secret, so it can sign no tokens")
    ttl = call.body(TokenBody).ttl
    token = make_token(secret, call.params["user"], ttl)
    return Token(call.params["user"], token, int(token.partition(".")[0]))


@route("/users/{user}/messages", "POST")
def _direct(call: Call) -> Sent:
    body = call.body(DirectBody)
    reply = send_direct(call.hub, body.sender, call.params["user"], body.text)
    return Sent(reply.to, reply.msg, reply.ts)


@route("/users/{user}/kick", "POST")
def _kick(call: Call) -> Kicked:
    user = call.user()
    return Kicked(user.name, call.hub.kick(user, call.body(KickBody).reason))


@route("/users/{user}/state", "GET")
def _state_document(call: Call) -> StateDocument:
    user = call.user()
    document = user.state.document() if user.state is not None else msgspec.Raw(b"{}")
    return StateDocument(user.name, cast("dict[str, Any]", document))


@route("/users/{user}/state/{key}", "GET")
def _state_get(call: Call) -> StateValue:
    user = call.user()
    key = call.params["key"]
    return StateValue(key, user.state.get(key) if user.state is not None else None)


@route("/users/{user}/state/{key}", "PUT")
def _state_set(call: Call) -> StateSize:
    value = call.body(StateValueBody).value
    state, key, limits = _writable_state(call)
    return StateSize(key, state.set(key, value, *limits))


@route("/users/{user}/state/{key}", "DELETE")
def _state_del(call: Call) -> StateDeleted:
    user = call.user()
    key = call.params["key"]
    return StateDeleted(key, user.state is not None and user.state.delete(key))


@route("/users/{user}/state/{key}/incr", "POST")
def _state_incr(call: Call) -> StateNumber:
    by = call.body(IncrBody).by
    state, key, limits = _writable_state(call)
    return StateNumber(key, state.incr(key, by, *limits))


def _writable_state(call: Call) -> tuple[UserState, str, tuple[int, int]]:
    """The path's user's state document (the user made if unknown), key, and size limits."""
    settings = call.hub.settings
    state = user_state(call.hub.known_user(call.params["user"]))
    return state, call.params["key"], (settings.state_max_keys, settings.state_max_bytes)


@route("/rooms", "GET")
def _rooms(call: Call) -> RoomList:
    rooms = call.hub.rooms.values()
    return RoomList([room.info() for _, room in zip(range(MAX_LISTED), rooms, strict=False)])


@route("/rooms/{room}", "GET")
def _room(call: Call) -> p.RoomInfo:
    return call.hub.room(call.params["room"]).info()


@route("/rooms/{room}/members", "GET")
def _members(call: Call) -> Members:
    room = call.hub.room(call.params["room"])
    limit = call.query("limit", 100, 1, MAX_LISTED)
    return Members(room.name, room.online, member_list(room, limit))


@route("/rooms/{room}/history", "GET")
def _history(call: Call) -> HistoryPage:
    room = call.hub.room(call.params["room"])
    limit = call.query("limit", 50, 1, 200)
    before = call.query_values.get("before")
    if before is not None and not before.isdigit():
        raise Refused(400, "bad-request", "before must be a sequence number", "before")
    messages, more = room.history.page(None if before is None else int(before), limit)
    return HistoryPage(room.name, cast("list[p.Message]", messages), more)


@route("/rooms/{room}/messages", "POST")
def _post(call: Call) -> Posted:
    body = call.body(PostBody)
    room = call.hub.room(call.params["room"])
    reply = post_message(call.hub, room, body.user, body.text)
    return Posted(reply.room, reply.seq, reply.ts)


__all__ = ["PREFIX", "ROUTES", "answer", "load_keys"]
