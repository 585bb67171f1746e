"""The backend API: HTTP + JSON under ``/api/v1/`` on the chat's HTTP port, for the
application's own backend (a Django or Flask view, a cron job), not for browsers.

It reads and changes the same world as the socket protocol, on the loop, one request at a
time: who is online, a user's presence, rooms with their members and history, a post to a room
as a named system user, a direct message, a user's state document, a sign-in token minted for a
user (the backend has signed its user in already; the browser hands the token to ``hello``, so
the chat keeps no passwords), and a kick. docs/chat-protocol.md describes every endpoint and
``/api/v1/openapi.json`` serves the OpenAPI document (``openapi.py``), built from the structs
below, so the document and the answers cannot drift apart.

Names follow the socket protocol's rules (names.py): a user in the path is a user name or a
guest's ``~`` name (a guest is there only while its connection is open), a token is minted only
for a user name, and the system user a post or a direct message comes from is a user name.

Every request needs ``Authorization: Bearer KEY`` with one of the ``api_keys`` (or a line of
``api_keys_file``), compared in constant time; with no key configured the API is off and every
path under ``/api/`` answers 404 with ``api-off``. Errors are JSON,
``{"error": CODE, "detail": TEXT, "field": NAME}`` (``field`` for a bad input): 400 for a bad
body, query or path value (the field is named, and the detail is the socket protocol's sentence
for the same mistake), 401 without a good key (with
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

from residentd.apps.chat import names
from residentd.apps.chat import protocol as p
from residentd.apps.chat.explain import explain
from residentd.apps.chat.handlers import (
    MAX_LISTED,
    delete_state,
    incr_state,
    member_list,
    post_message,
    send_direct,
    set_state,
)
from residentd.apps.chat.protocol import ChatError
from residentd.apps.chat.tokens import make_token
from residentd.codecs.http import HttpRequest, reply
from residentd.errors import ConfigError, ResidentdError

if TYPE_CHECKING:
    from residentd.apps.chat.daemon import ChatApp
    from residentd.apps.chat.hub import Hub
    from residentd.apps.chat.presence import User
    from residentd.apps.chat.settings import ChatSettings

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
    """A message to a room, posted as ``user``: a system user's name (a user name, not a
    guest's ``~`` name; it need not be a member)."""

    user: p.Name
    text: p.Text


class DirectBody(msgspec.Struct, forbid_unknown_fields=True):
    """A direct message to the user of the path, from ``from`` (a user name, as ``user`` of a
    post)."""

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


class Refused(ResidentdError):
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
CHAT_STATUS = {"no-such-room": 404, "no-such-user": 404, "too-long": 400, "storage-error": 503}

# The rule of each body field, as the detail of a refusal states it: the socket protocol's
# sentences (protocol.RULES), but ``user`` and ``from`` here are user names, never a guest's.
RULES = {
    **p.RULES,
    "user": names.USER_RULE,
    "from": names.USER_RULE,
    "ttl": f"ttl is 0-{MAX_TTL} seconds",
    "reason": "a reason is at most 200 characters",
}
_FIELD_PATH = re.compile(r"at `\$\.([^`.\[]+)")
_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"contains unknown field `([^`]+)`")


def bad_body(error: msgspec.ValidationError | msgspec.DecodeError) -> Refused:
    """A 400 naming the field of the body that failed, with its rule."""
    message = str(error)
    if not isinstance(error, msgspec.ValidationError):  # (a ValidationError is a DecodeError)
        return Refused(400, "bad-request", f"the body is not JSON: {message}", "body")
    unknown = _UNKNOWN.search(message)
    if unknown:
        field = unknown.group(1)
        return Refused(400, "bad-request", f"{field} is not a field of this body", field)
    code, detail = explain(message, None, RULES, whole="the body")
    found = _MISSING.search(message) or _FIELD_PATH.search(message)
    field = found.group(1) if found else "body"
    return Refused(400, "too-long" if code == "too-long" else "bad-request", detail, field)


@dataclass(frozen=True, slots=True)
class PathValue:
    """What a value in the path may be: the socket protocol's rule for the same field."""

    check: Callable[[str], bool]
    rule: str
    pattern: str
    max_length: int

    def refuse(self, name: str, value: str) -> None:
        """Raise a 400 naming ``name`` if ``value`` breaks the rule (``too-long`` if it is
        longer than any value could be, as over the socket)."""
        if not self.check(value):
            code = "too-long" if len(value) > self.max_length else "bad-request"
            raise Refused(400, code, self.rule, name)

    def schema(self) -> dict[str, Any]:
        """The value's JSON Schema (for the OpenAPI document)."""
        return {
            "type": "string",
            "pattern": self.pattern,
            "minLength": 1,
            "maxLength": self.max_length,
        }


# A user in the path is a user name or a guest's ``~`` name, as in ``seen``, ``invite``, ``dm``.
USER = PathValue(names.is_user, names.GUEST_RULE, names.USER_PATTERN, names.NAME_MAX + 1)
# Tokens are for user names only: a guest's ``~`` name signs in without one.
TOKEN_USER = PathValue(names.is_name, names.USER_RULE, names.NAME_PATTERN, names.NAME_MAX)
ROOM = PathValue(names.is_name, names.ROOM_RULE, names.NAME_PATTERN, names.NAME_MAX)
KEY = PathValue(names.is_key, names.KEY_RULE, names.NAME_PATTERN, names.KEY_MAX)
PATH_VALUES = {"user": USER, "room": ROOM, "key": KEY}


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
    #: The connection whose reply acknowledges a change: with a journal it leaves once the
    #: change's record is written (fsynced with ``appendfsync always``).
    waiter: object = None

    def body(self, kind: type[Any]) -> Any:
        try:
            return msgspec.json.decode(self.request.body or b"{}", type=kind)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            raise bad_body(error) from None

    def query(self, name: str, default: int, low: int, high: int) -> int:
        text = self.query_values.get(name)
        if text is None:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            raise Refused(400, "bad-request", f"{name} is {low}-{high}", name)
        return int(text)

    def user(self) -> User:
        return self.hub.user(self.params["user"])

    def changing(self) -> Call:
        """This call changes what a journal keeps: ``storage-error`` (503) while the disk
        refuses the journal, as on the socket protocol."""
        if self.hub.journal is not None:
            self.hub.journal.check()
        return self


Handler = Callable[[Call], Any]


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    values: dict[str, PathValue]  # the path's ``{name}`` values and what each may be


class Route:
    """A path pattern (its segments, ``{name}`` for a parameter) and its endpoint by method.
    ``literal_at`` picks a path's segments where the pattern has literals, in one call, for
    one comparison with the pattern's own."""

    __slots__ = ("literal", "literal_at", "methods", "params", "parts")

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts
        self.params = tuple((i, part[1:-1]) for i, part in enumerate(parts) if part[:1] == "{")
        literal = [i for i, part in enumerate(parts) if part[:1] != "{"]  # the first, at least
        self.literal_at = itemgetter(*literal)
        self.literal = self.literal_at(parts)
        self.methods: dict[str, Endpoint] = {}


# Routes by their number of segments and their first one (always a literal): a request is
# matched against the two or three patterns that could fit, not all of them.
ROUTES: dict[tuple[int, str], list[Route]] = {}


def route(pattern: str, method: str, **values: PathValue) -> Callable[[Handler], Handler]:
    """Register a handler for ``method`` on ``pattern`` (``/rooms/{room}``, under BASE); a
    ``{name}`` value must pass ``PATH_VALUES[name]``, or the one ``values`` gives instead."""
    parts = tuple(pattern.strip("/").split("/"))
    wanted = [part[1:-1] for part in parts if part.startswith("{")]
    checks = {name: values.get(name, PATH_VALUES[name]) for name in wanted}

    def register(handler: Handler) -> Handler:
        routes = ROUTES.setdefault((len(parts), parts[0]), [])
        found = next((known for known in routes if known.parts == parts), None)
        if found is None:
            found = Route(parts)
            routes.append(found)
        found.methods[method] = Endpoint(handler, checks)
        return handler

    return register


def path_values(pattern: str, method: str) -> dict[str, PathValue]:
    """What each ``{name}`` in the path of a route may be (for the OpenAPI document)."""
    parts = tuple(pattern.strip("/").split("/"))
    for known in ROUTES[len(parts), parts[0]]:
        if known.parts == parts:
            return known.methods[method.upper()].values
    raise KeyError(pattern)


def _match(segments: list[str]) -> tuple[dict[str, Endpoint], dict[str, str]] | None:
    for known in ROUTES.get((len(segments), segments[0]), ()):
        if known.literal_at(segments) == known.literal:
            return known.methods, {name: segments[i] for i, name in known.params}
    return None


def answer(app: ChatApp, request: HttpRequest, waiter: object = None) -> bytes:
    """The bytes of the response to a request under ``/api/``; ``waiter`` is the connection it
    goes to."""
    try:
        status, body, headers = 200, _answer(app, request, waiter), None
    except Refused as refused:
        status, body, headers = refused.status, refused.body, refused.headers
    except ChatError as error:
        status = CHAT_STATUS.get(error.code, 409)
        field = "text" if error.code == "too-long" else None  # the one text over max_text
        body, headers = ApiError(error.code, error.detail, field), None
    data = body if type(body) is bytes else _encode(body)
    return reply(request, status, data, JSON, headers)


def _answer(app: ChatApp, request: HttpRequest, waiter: object) -> Any:
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
    endpoint = methods.get(method)
    if endpoint is None:
        allow = ", ".join(sorted({*methods, *(("HEAD",) if "GET" in methods else ())}))
        raise Refused(
            405, "method-not-allowed", f"{request.method} on this path", None, {"Allow": allow}
        )
    for name, value in params.items():
        endpoint.values[name].refuse(name, value)
    query = request.query if "?" in request.target else {}
    return endpoint.handler(Call(app.hub, app, request, params, query, waiter))


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


@route("/users/{user}/token", "POST", user=TOKEN_USER)
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
    value = call.changing().body(StateValueBody).value
    key = call.params["key"]
    return StateSize(key, set_state(call.hub, _state_owner(call), key, value, call.waiter))


@route("/users/{user}/state/{key}", "DELETE")
def _state_del(call: Call) -> StateDeleted:
    key = call.changing().params["key"]
    return StateDeleted(key, delete_state(call.hub, call.user(), key, call.waiter))


@route("/users/{user}/state/{key}/incr", "POST")
def _state_incr(call: Call) -> StateNumber:
    by = call.changing().body(IncrBody).by
    key = call.params["key"]
    return StateNumber(key, incr_state(call.hub, _state_owner(call), key, by, call.waiter))


def _state_owner(call: Call) -> User:
    """The path's user, whose state is written: a user name unknown so far is made (a guest
    must be online)."""
    return call.hub.known_user(call.params["user"], call.waiter)


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
        raise Refused(400, "bad-request", p.RULES["before"], "before")
    messages, more = room.history.page(None if before is None else int(before), limit)
    return HistoryPage(room.name, cast("list[p.Message]", messages), more)


@route("/rooms/{room}/messages", "POST")
def _post(call: Call) -> Posted:
    body = call.body(PostBody)
    room = call.hub.room(call.params["room"])
    reply = post_message(call.changing().hub, room, body.user, body.text, call.waiter)
    return Posted(reply.room, reply.seq, reply.ts)


__all__ = ["PREFIX", "ROUTES", "answer", "load_keys"]
