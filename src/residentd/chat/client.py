"""Clients of the chat daemon's backend API, so an application's backend writes one line per
call: ``ChatClient`` for synchronous code (a Django or Flask view), ``AsyncChatClient`` for
asyncio. Both are thin layers on httpx (``pip install 'residentd[client]'``), which keeps their
connections to the daemon open between calls (HTTP/1.1 keep-alive), so a call costs one round
trip and no connect.

    chat = ChatClient("http://127.0.0.1:7780", api_key="...")
    chat.online().users                      # ['ann', 'bob']
    chat.post("lobby", "deploy done", user="ops-bot")
    token = chat.token("ann").token          # for the browser's hello

Each endpoint is described once, by a function below that returns a ``Call`` (method, path,
body, the struct the answer decodes into, and what of it to return); the two clients only
send it. Answers decode into the same msgspec structs the daemon encodes them from
(``residentd.apps.chat.api``). Errors are exceptions under ``residentd.errors.ResidentdError``:
an error answer raises ``ChatApiError`` (``BadRequest``, ``Unauthorized``, ``NotFound``,
``Conflict``, ...) with the daemon's ``code``, ``detail`` and ``field``; a daemon that cannot
be reached or does not answer within ``timeout`` seconds raises ``ChatUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from residentd.apps.chat import api
from residentd.apps.chat.protocol import RoomInfo
from residentd.errors import ResidentdError

try:
    import httpx
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError(
        "residentd.chat.client needs httpx: pip install 'residentd[client]'"
    ) from error

__all__ = [
    "AsyncChatClient",
    "BadRequest",
    "ChatApiError",
    "ChatClient",
    "ChatClientError",
    "ChatUnavailable",
    "Conflict",
    "NotFound",
    "Unauthorized",
]

DEFAULT_TIMEOUT = 5.0

T = TypeVar("T")
R = TypeVar("R")

# -- errors --------------------------------------------------------------------------------------


class ChatClientError(ResidentdError):
    """Any failure of a call to the chat daemon's API."""


class ChatUnavailable(ChatClientError):
    """The daemon could not be reached, or did not answer in time."""


class ChatApiError(ChatClientError):
    """The daemon answered with an error: ``status``, and its ``code``, ``detail``, ``field``."""

    def __init__(self, status: int, code: str, detail: str = "", field: str | None = None) -> None:
        text = f"{status} {code}" + (f": {detail}" if detail else "")
        super().__init__(text)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field


class BadRequest(ChatApiError):
    """400: a bad value; ``field`` names it."""


class Unauthorized(ChatApiError):
    """401: no API key, or not one the daemon takes."""


class NotFound(ChatApiError):
    """404: no such user, room or path (or the daemon's API is off: ``code == "api-off"``)."""


class Conflict(ChatApiError):
    """409: the request is fine but the chat refuses it (``user-offline``, ``state-full``, ...)."""


_ERRORS: dict[int, type[ChatApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
}
_error_decoder = msgspec.json.Decoder(api.ApiError)


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    try:
        body = _error_decoder.decode(response.content)
        code, detail, field = body.error, body.detail, body.field
    except (msgspec.ValidationError, msgspec.DecodeError):
        code, detail, field = "http-error", response.text.strip()[:200], None
    raise _ERRORS.get(status, ChatApiError)(status, code, detail, field)


# -- the endpoints -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call(Generic[T, R]):
    """One request: decode the answer as ``answer``, return ``pick`` of it."""

    method: str
    path: str
    answer: type[T]
    pick: Callable[[T], R]
    body: Any = None
    params: dict[str, Any] | None = None

    def result(self, response: httpx.Response) -> R:
        _raise_for(response)
        return self.pick(msgspec.json.decode(response.content, type=self.answer))


def _same(value: Any) -> Any:
    return value


def _segment(name: str) -> str:
    return quote(name, safe="")


def _user(user: str, *rest: str) -> str:
    return "/".join(("/users", _segment(user), *rest))


def _room(room: str, *rest: str) -> str:
    return "/".join(("/rooms", _segment(room), *rest))


def online(limit: int = 100) -> Call[api.Online, api.Online]:
    return Call("GET", "/online", api.Online, _same, params={"limit": limit})


def presence(user: str) -> Call[api.UserPresence, api.UserPresence]:
    return Call("GET", _user(user), api.UserPresence, _same)


def token(user: str, ttl: int = 86_400) -> Call[api.Token, api.Token]:
    return Call("POST", _user(user, "token"), api.Token, _same, {"ttl": ttl})


def direct(user: str, text: str, sender: str = "system") -> Call[api.Sent, api.Sent]:
    body = {"from": sender, "text": text}
    return Call("POST", _user(user, "messages"), api.Sent, _same, body)


def kick(user: str, reason: str = "kicked") -> Call[api.Kicked, int]:
    return Call("POST", _user(user, "kick"), api.Kicked, lambda r: r.closed, {"reason": reason})


def state(user: str) -> Call[api.StateDocument, dict[str, Any]]:
    return Call("GET", _user(user, "state"), api.StateDocument, lambda r: r.state)


def get_state(user: str, key: str) -> Call[api.StateValue, Any]:
    return Call("GET", _user(user, "state", _segment(key)), api.StateValue, lambda r: r.value)


def set_state(user: str, key: str, value: Any) -> Call[api.StateSize, int]:
    path = _user(user, "state", _segment(key))
    return Call("PUT", path, api.StateSize, lambda r: r.size, {"value": value})


def delete_state(user: str, key: str) -> Call[api.StateDeleted, bool]:
    path = _user(user, "state", _segment(key))
    return Call("DELETE", path, api.StateDeleted, lambda r: r.deleted)


def incr_state(user: str, key: str, by: int = 1) -> Call[api.StateNumber, int]:
    path = _user(user, "state", _segment(key), "incr")
    return Call("POST", path, api.StateNumber, lambda r: r.value, {"by": by})


def rooms() -> Call[api.RoomList, list[RoomInfo]]:
    return Call("GET", "/rooms", api.RoomList, lambda r: r.rooms)


def room(name: str) -> Call[RoomInfo, RoomInfo]:
    return Call("GET", _room(name), RoomInfo, _same)


def members(name: str, limit: int = 100) -> Call[api.Members, api.Members]:
    return Call("GET", _room(name, "members"), api.Members, _same, params={"limit": limit})


def history(
    name: str, limit: int = 50, before: int | None = None
) -> Call[api.HistoryPage, api.HistoryPage]:
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        params["before"] = before
    return Call("GET", _room(name, "history"), api.HistoryPage, _same, params=params)


def post(name: str, text: str, user: str = "system") -> Call[api.Posted, api.Posted]:
    body = {"user": user, "text": text}
    return Call("POST", _room(name, "messages"), api.Posted, _same, body)


# -- the clients ---------------------------------------------------------------------------------


def _options(url: str, api_key: str, timeout: float) -> dict[str, Any]:
    return {
        "base_url": url.rstrip("/") + api.BASE,
        "headers": {"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        "timeout": timeout,
    }


def _request(call: Call[Any, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"params": call.params}
    if call.body is not None:
        request["content"] = msgspec.json.encode(call.body)
        request["headers"] = {"Content-Type": "application/json"}
    return request


class ChatClient:
    """A synchronous client; its connection is reused from call to call. Thread-safe, as
    httpx's ``Client`` is: one per process is enough."""

    def __init__(self, url: str, api_key: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.http = httpx.Client(**_options(url, api_key, timeout))

    def send(self, call: Call[Any, R]) -> R:
        try:
            response = self.http.request(call.method, call.path, **_request(call))
        except httpx.TransportError as error:
            raise ChatUnavailable(f"{call.method} {call.path}: {error!r}") from error
        return call.result(response)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def online(self, limit: int = 100) -> api.Online:
        return self.send(online(limit))

    def presence(self, user: str) -> api.UserPresence:
        return self.send(presence(user))

    def token(self, user: str, ttl: int = 86_400) -> api.Token:
        return self.send(token(user, ttl))

    def direct(self, user: str, text: str, sender: str = "system") -> api.Sent:
        return self.send(direct(user, text, sender))

    def kick(self, user: str, reason: str = "kicked") -> int:
        return self.send(kick(user, reason))

    def state(self, user: str) -> dict[str, Any]:
        return self.send(state(user))

    def get_state(self, user: str, key: str) -> Any:
        return self.send(get_state(user, key))

    def set_state(self, user: str, key: str, value: Any) -> int:
        return self.send(set_state(user, key, value))

    def delete_state(self, user: str, key: str) -> bool:
        return self.send(delete_state(user, key))

    def incr_state(self, user: str, key: str, by: int = 1) -> int:
        return self.send(incr_state(user, key, by))

    def rooms(self) -> list[RoomInfo]:
        return self.send(rooms())

    def room(self, name: str) -> RoomInfo:
        return self.send(room(name))

    def members(self, name: str, limit: int = 100) -> api.Members:
        return self.send(members(name, limit))

    def history(self, name: str, limit: int = 50, before: int | None = None) -> api.HistoryPage:
        return self.send(history(name, limit, before))

    def post(self, name: str, text: str, user: str = "system") -> api.Posted:
        return self.send(post(name, text, user))


class AsyncChatClient:
    """The same calls for asyncio; its connections are reused from call to call."""

    def __init__(self, url: str, api_key: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.http = httpx.AsyncClient(**_options(url, api_key, timeout))

    async def send(self, call: Call[Any, R]) -> R:
        try:
            response = await self.http.request(call.method, call.path, **_request(call))
        except httpx.TransportError as error:
            raise ChatUnavailable(f"{call.method} {call.path}: {error!r}") from error
        return call.result(response)

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncChatClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def online(self, limit: int = 100) -> api.Online:
        return await self.send(online(limit))

    async def presence(self, user: str) -> api.UserPresence:
        return await self.send(presence(user))

    async def token(self, user: str, ttl: int = 86_400) -> api.Token:
        return await self.send(token(user, ttl))

    async def direct(self, user: str, text: str, sender: str = "system") -> api.Sent:
        return await self.send(direct(user, text, sender))

    async def kick(self, user: str, reason: str = "kicked") -> int:
        return await self.send(kick(user, reason))

    async def state(self, user: str) -> dict[str, Any]:
        return await self.send(state(user))

    async def get_state(self, user: str, key: str) -> Any:
        return await self.send(get_state(user, key))

    async def set_state(self, user: str, key: str, value: Any) -> int:
        return await self.send(set_state(user, key, value))

    async def delete_state(self, user: str, key: str) -> bool:
        return await self.send(delete_state(user, key))

    async def incr_state(self, user: str, key: str, by: int = 1) -> int:
        return await self.send(incr_state(user, key, by))

    async def rooms(self) -> list[RoomInfo]:
        return await self.send(rooms())

    async def room(self, name: str) -> RoomInfo:
        return await self.send(room(name))

    async def members(self, name: str, limit: int = 100) -> api.Members:
        return await self.send(members(name, limit))

    async def history(
        self, name: str, limit: int = 50, before: int | None = None
    ) -> api.HistoryPage:
        return await self.send(history(name, limit, before))

    async def post(self, name: str, text: str, user: str = "system") -> api.Posted:
        return await self.send(post(name, text, user))
