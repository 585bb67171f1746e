"""The backend API on the chat's HTTP port: every endpoint against a real server over loopback,
guests by their ``~`` names and gone when they leave, names by the socket protocol's rules and
errors in its words, keys, errors with their statuses, keep-alive and pipelining in order beside
WebSocket chat, and the OpenAPI document, validated, checked against live answers, and its name
patterns against names.py's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from functools import cache
from typing import Any

import jsonschema
import pytest
from hypothesis import example, given, settings
from openapi_spec_validator import validate
from websockets.frames import Frame, Opcode

from residentd.apps.chat import api, openapi
from residentd.apps.chat.api import load_keys
from residentd.apps.chat.names import (
    GUEST_RULE,
    KEY_RULE,
    ROOM_RULE,
    USER_RULE,
    is_key,
    is_name,
    is_user,
)
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.tokens import check_token
from residentd.errors import ConfigError

from .daemon import ChatDaemon
from .helpers import Chat, TcpPeer, chat_server
from .test_names import names

Run = Callable[[Coroutine[Any, Any, Any]], Any]
KEY = "test-key-0123456789"
SECRET = "api-test-secret"


def build(method: str, path: str, body: Any = None, key: str | None = KEY, **fields: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: chat.test"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in fields.items()]
    data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    if data:
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


class Http:
    """One keep-alive connection that reads responses by their Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, chat: Chat) -> Http:
        return cls(*await asyncio.open_connection(chat.http.host, chat.http.port))

    async def response(self) -> tuple[int, dict[str, str], Any]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5.0)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        is_json = headers["content-type"] == "application/json"
        return int(lines[0].split()[1]), headers, json.loads(body) if is_json else body

    async def call(
        self, method: str, path: str, body: Any = None, key: str | None = KEY, **fields: Any
    ) -> Any:
        self.writer.write(build(method, path, body, key, **fields))
        return await self.response()

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5.0) == b""

    def close(self) -> None:
        self.writer.close()


def api_server(**options: Any) -> Any:
    return chat_server(api_keys=[KEY], secret=SECRET, **options)


def test_every_endpoint(run: Run) -> None:
    async def main() -> None:
        async with api_server() as chat:
            ann = await chat.signed_in("ws", "ann")
            bob = await chat.signed_in("tcp", "bob")
            http = await Http.open(chat)
            status, _, body = await http.call("GET", "/api/v1/online")
            assert status == 200 and body == {"online": 2, "users": ["ann", "bob"]}
            assert (await http.call("GET", "/api/v1/online?limit=1"))[2]["users"] == ["ann"]
            status, _, body = await http.call("GET", "/api/v1/users/bob")
            assert body == {
                "user": "bob", "online": True, "guest": False, "connections": 1,
                "rooms": [], "last_seen": None,
            }  # fmt: skip
            await ann.request("join", room="lobby")
            _, _, posted = await http.call(
                "POST", "/api/v1/rooms/lobby/messages", {"user": "deploy-bot", "text": "v2 is out"}
            )
            assert posted["room"] == "lobby" and posted["seq"] == 1
            push = await ann.push("message")
            assert (push["user"], push["text"], push["seq"]) == ("deploy-bot", "v2 is out", 1)
            _, _, page = await http.call("GET", "/api/v1/rooms/lobby/history?limit=20")
            assert page["more"] is False and [m["text"] for m in page["messages"]] == ["v2 is out"]
            _, _, rooms = await http.call("GET", "/api/v1/rooms")
            assert rooms["rooms"][0]["room"] == "lobby" and rooms["rooms"][0]["online"] == 1
            assert (await http.call("GET", "/api/v1/rooms/lobby"))[2]["members"] == 1
            _, _, members = await http.call("GET", "/api/v1/rooms/lobby/members")
            assert members == {
                "room": "lobby", "online": 1, "users": [{"user": "ann", "online": True}]
            }  # fmt: skip
            _, _, sent = await http.call("POST", "/api/v1/users/bob/messages", {"text": "hi bob"})
            direct = await bob.push("direct")
            assert (direct["from"], direct["text"], direct["msg"]) == (
                "system",
                "hi bob",
                sent["msg"],
            )
            # State: written by the API, read back by the user's own socket, and the reverse.
            answer = await http.call("PUT", "/api/v1/users/bob/state/prefs", {"value": {"a": [1]}})
            assert answer[2] == {"key": "prefs", "size": len("prefs") + len(json.dumps({"a": [1]}))}
            assert (await bob.request("state.get", key="prefs"))["value"] == {"a": [1]}
            await bob.request("state.set", key="visits", value=41)
            incr = await http.call("POST", "/api/v1/users/bob/state/visits/incr", {"by": 1})
            assert incr[2] == {"key": "visits", "value": 42}
            assert (await http.call("POST", "/api/v1/users/bob/state/visits/incr"))[2][
                "value"
            ] == 43
            _, _, document = await http.call("GET", "/api/v1/users/bob/state")
            assert document == {"user": "bob", "state": {"prefs": {"a": [1]}, "visits": 43}}
            assert (await http.call("GET", "/api/v1/users/bob/state/visits"))[2]["value"] == 43
            deleted = await http.call("DELETE", "/api/v1/users/bob/state/prefs")
            assert deleted[2] == {"key": "prefs", "deleted": True}
            assert (await http.call("GET", "/api/v1/users/bob/state/prefs"))[2]["value"] is None
            # A user the chat does not know yet gets one by a write.
            assert (await http.call("PUT", "/api/v1/users/carol/state/x", {"value": 1}))[0] == 200
            assert (await http.call("GET", "/api/v1/users/carol"))[2]["online"] is False
            # Tokens sign in; kick closes every connection of the user, with the reason.
            _, _, minted = await http.call("POST", "/api/v1/users/dave/token", {"ttl": 60})
            assert check_token(SECRET, "dave", minted["token"]) is None and minted["expires"] > 0
            dave = await chat.signed_in("tcp", "dave", token=minted["token"])
            dave2 = await chat.signed_in("ws", "dave", token=minted["token"])
            _, _, kicked = await http.call("POST", "/api/v1/users/dave/kick", {"reason": "spam"})
            assert kicked == {"user": "dave", "closed": 2}
            for peer in (dave, dave2):
                error = await peer.push("error")
                assert (error["code"], error["detail"]) == ("kicked", "spam")
            assert (await http.call("GET", "/api/v1/users/dave"))[2]["online"] is False
            assert (await http.call("GET", "/api/v1/online"))[2]["online"] == 2
            http.close()
            await ann.close()
            await bob.close()

    run(main())


@pytest.mark.parametrize(
    ("request_", "status", "code", "field"),
    [
        (build("GET", "/api/v1/online", key=None), 401, "unauthorized", None),
        (build("GET", "/api/v1/online", key="wrong-key-0123456789"), 401, "unauthorized", None),
        (build("GET", "/api/v1/online", Authorization="Basic eDp5"), 401, "unauthorized", None),
        (build("GET", "/api/v1/nope"), 404, "not-found", None),
        (build("GET", "/api/v2/online"), 404, "not-found", None),
        (build("GET", "/api/v1/users/nobody"), 404, "no-such-user", None),
        (build("GET", "/api/v1/rooms/nowhere/history"), 404, "no-such-room", None),
        (build("DELETE", "/api/v1/online"), 405, "method-not-allowed", None),
        (build("GET", "/api/v1/rooms/lobby/messages"), 405, "method-not-allowed", None),
        (build("POST", "/api/v1/rooms/lobby/messages", {"user": "x"}), 400, "bad-request", "text"),
        (build("POST", "/api/v1/rooms/lobby/messages", {"user": "x", "text": 5}), 400,
         "bad-request", "text"),
        (build("POST", "/api/v1/rooms/lobby/messages", {"user": "a b", "text": "t"}), 400,
         "bad-request", "user"),
        (build("POST", "/api/v1/rooms/lobby/messages", {"user": "x", "text": "t", "z": 1}), 400,
         "bad-request", "z"),
        (build("POST", "/api/v1/rooms/lobby/messages", b"{not json"), 400, "bad-request", "body"),
        (build("POST", "/api/v1/rooms/lobby/messages", [1]), 400, "bad-request", "body"),
        (build("GET", "/api/v1/online?limit=0"), 400, "bad-request", "limit"),
        (build("GET", "/api/v1/online?limit=x"), 400, "bad-request", "limit"),
        (build("GET", "/api/v1/rooms/lobby/history?before=-1"), 400, "bad-request", "before"),
        (build("GET", "/api/v1/users/a%20b"), 400, "bad-request", "user"),
        (build("GET", "/api/v1/users/ann%0A"), 400, "bad-request", "user"),
        (build("GET", "/api/v1/users/%D0%ACob"), 400, "bad-request", "user"),  # Cyrillic
        (build("GET", "/api/v1/users/~" + "a" * 33), 400, "too-long", "user"),
        (build("GET", "/api/v1/users/~ann"), 404, "no-such-user", None),  # no such guest
        (build("GET", "/api/v1/rooms/lobby%0A"), 400, "bad-request", "room"),
        (build("GET", "/api/v1/users/ann/state/a%20b"), 400, "bad-request", "key"),
        (build("PUT", "/api/v1/users/~ann/state/k", {"value": 1}), 404, "no-such-user", None),
        (build("POST", "/api/v1/users/~ann/state/k/incr"), 404, "no-such-user", None),
        (build("POST", "/api/v1/users/~ann/token"), 400, "bad-request", "user"),
        (build("POST", "/api/v1/users/a%20b/token"), 400, "bad-request", "user"),
        (build("POST", "/api/v1/users/" + "a" * 33 + "/token"), 400, "too-long", "user"),
        (build("POST", "/api/v1/rooms/lobby/messages", {"user": "~ann", "text": "t"}), 400,
         "bad-request", "user"),
        (build("POST", "/api/v1/users/ann/messages", {"from": "~bot", "text": "t"}), 400,
         "bad-request", "from"),
        (build("POST", "/api/v1/users/bob/token", {"ttl": -1}), 400, "bad-request", "ttl"),
        (build("POST", "/api/v1/users/ann/messages", {"text": "hi"}), 409, "user-offline", None),
        (build("POST", "/api/v1/rooms/lobby/messages", {"user": "a", "text": "x" * 2001}), 400,
         "too-long", "text"),
        (build("PUT", "/api/v1/users/ann/state/k", {"value": "x" * 20000}), 409, "state-full",
         None),
    ],
)  # fmt: skip
def test_errors(run: Run, request_: bytes, status: int, code: str, field: str | None) -> None:
    async def main() -> None:
        async with api_server() as chat:
            peer = await chat.signed_in("tcp", "ann")
            await peer.close()  # ann is known and offline
            await asyncio.sleep(0.05)
            http = await Http.open(chat)
            http.writer.write(request_)
            got, headers, body = await http.response()
            assert (got, body["error"], body.get("field")) == (status, code, field), body
            if status == 401:
                assert headers["www-authenticate"].startswith("Bearer")
            if status == 405:
                assert headers["allow"]
            # The connection is kept: a good request on it is answered.
            assert (await http.call("GET", "/api/v1/online"))[0] == 200
            http.close()

    run(main())


def test_guests_by_their_tilde_name_while_online_and_gone_after(run: Run) -> None:
    """A guest is ``~name`` in the API as on the socket: its presence, state, direct messages
    and kick work while it is online; once its connection closes (or it is kicked) nothing of it
    is left, a write cannot make it again, and a later guest of the name starts empty. Its
    plain name is nobody's."""

    async def main() -> None:
        async with api_server() as chat:
            http = await Http.open(chat)
            cy = await chat.guest("tcp", "cy")
            await cy.request("join", room="lobby")
            _, _, online = await http.call("GET", "/api/v1/online")
            assert online == {"online": 1, "users": ["~cy"]}
            status, _, body = await http.call("GET", "/api/v1/users/~cy")
            assert (status, body["user"], body["guest"], body["rooms"]) == (
                200, "~cy", True, ["lobby"]
            )  # fmt: skip
            status, _, body = await http.call("GET", "/api/v1/users/cy")
            assert (status, body["error"], body["detail"]) == (
                404, "no-such-user", "no user is named cy"
            )  # fmt: skip
            put = await http.call("PUT", "/api/v1/users/%7Ecy/state/theme", {"value": "dark"})
            assert put[:1] == (200,)  # ~ percent-encoded is the same name
            assert (await cy.request("state.get", key="theme"))["value"] == "dark"
            await cy.request("state.set", key="visits", value=1)
            incr = await http.call("POST", "/api/v1/users/~cy/state/visits/incr")
            assert incr[2] == {"key": "visits", "value": 2}
            _, _, document = await http.call("GET", "/api/v1/users/~cy/state")
            assert document == {"user": "~cy", "state": {"theme": "dark", "visits": 2}}
            _, _, sent = await http.call("POST", "/api/v1/users/~cy/messages", {"text": "hi"})
            direct = await cy.push("direct")
            assert (direct["to"], direct["from"], sent["to"]) == ("~cy", "system", "~cy")
            members = (await http.call("GET", "/api/v1/rooms/lobby/members"))[2]
            assert members["users"] == [{"user": "~cy", "online": True}]

            # The guest leaves: it is gone from the API, its state with it.
            await cy.close()
            await _until_gone(http, "~cy")
            for method, path, body in [
                ("GET", "/api/v1/users/~cy/state", None),
                ("GET", "/api/v1/users/~cy/state/theme", None),
                ("DELETE", "/api/v1/users/~cy/state/theme", None),
                ("PUT", "/api/v1/users/~cy/state/theme", {"value": "light"}),
                ("POST", "/api/v1/users/~cy/state/visits/incr", None),
                ("POST", "/api/v1/users/~cy/messages", {"text": "hi"}),
                ("POST", "/api/v1/users/~cy/kick", None),
            ]:
                status, _, refused = await http.call(method, path, body)
                assert (status, refused["error"], refused["detail"]) == (
                    404, "no-such-user", "no user is named ~cy"
                ), (method, path)  # fmt: skip
            members = (await http.call("GET", "/api/v1/rooms/lobby/members"))[2]
            assert members["users"] == []

            # A later guest of the name starts with nothing; kicked, it is gone too.
            again = await chat.guest("ws", "cy")
            _, _, document = await http.call("GET", "/api/v1/users/~cy/state")
            assert document == {"user": "~cy", "state": {}}
            assert (await http.call("GET", "/api/v1/users/~cy"))[2]["rooms"] == []
            _, _, kicked = await http.call("POST", "/api/v1/users/~cy/kick", {"reason": "bye"})
            assert kicked == {"user": "~cy", "closed": 1}
            assert (await again.push("error"))["code"] == "kicked"
            assert (await http.call("GET", "/api/v1/users/~cy"))[0] == 404
            http.close()

    run(main())


async def _until_gone(http: Http, user: str) -> None:
    """Wait for the server to see a closed connection (it is forgotten as it closes)."""
    for _ in range(100):
        if (await http.call("GET", f"/api/v1/users/{user}"))[0] == 404:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{user} still known")


def test_tokens_are_minted_for_user_names_only(run: Run) -> None:
    """A token for a guest's ``~`` name, or a name that breaks the rule, is a 400 that names
    the field and states the rule; a minted token signs its user in, not as a guest."""

    async def main() -> None:
        async with api_server() as chat:
            http = await Http.open(chat)
            for name in ["~ann", "a%20b", "ann%0A", "%D0%ACob", "%EF%BD%81nn", "ann!"]:
                status, _, body = await http.call("POST", f"/api/v1/users/{name}/token")
                assert (status, body) == (400, {
                    "error": "bad-request", "detail": USER_RULE, "field": "user"
                }), name  # fmt: skip
            status, _, body = await http.call("POST", "/api/v1/users/" + "a" * 33 + "/token")
            assert (status, body["error"], body["detail"]) == (400, "too-long", USER_RULE)
            _, _, minted = await http.call("POST", "/api/v1/users/" + "a" * 32 + "/token")
            peer = await chat.peer("tcp")
            hello = await peer.request("hello", v=1, user="a" * 32, token=minted["token"])
            assert (hello["user"], hello["guest"]) == ("a" * 32, False)
            await peer.close()
            http.close()

    run(main())


# The same mistake made over the socket and over the API: the API's detail is the socket's.
SAME_MISTAKES = [
    ("GET", "/api/v1/users/a%20b", None, {"op": "seen", "user": "a b"}, GUEST_RULE),
    ("GET", "/api/v1/users/bob%0A", None, {"op": "seen", "user": "bob\n"}, GUEST_RULE),
    ("GET", "/api/v1/users/nobody", None, {"op": "seen", "user": "nobody"},
     "no user is named nobody"),
    ("GET", "/api/v1/rooms/a%20b", None, {"op": "join", "room": "a b"}, ROOM_RULE),
    ("GET", "/api/v1/rooms/nowhere/history", None, {"op": "history", "room": "nowhere"},
     "no room is named nowhere"),
    ("GET", "/api/v1/users/ann/state/a%20b", None, {"op": "state.get", "key": "a b"}, KEY_RULE),
    ("GET", "/api/v1/rooms/lobby/members?limit=0", None,
     {"op": "who", "room": "lobby", "limit": 0}, "limit is 1-1000"),
    ("GET", "/api/v1/rooms/lobby/history?limit=201", None,
     {"op": "history", "room": "lobby", "limit": 201}, "limit is 1-200"),
    ("GET", "/api/v1/rooms/lobby/history?before=-1", None,
     {"op": "history", "room": "lobby", "before": -1}, None),
    ("POST", "/api/v1/rooms/lobby/messages", {"user": "ann", "text": 5},
     {"op": "post", "room": "lobby", "text": 5}, "text must be a string, not a number"),
    ("POST", "/api/v1/rooms/lobby/messages", {"user": "ann", "text": "x" * 2001},
     {"op": "post", "room": "lobby", "text": "x" * 2001}, None),
    ("POST", "/api/v1/users/ann/messages", {"text": "x" * 2001},
     {"op": "dm", "to": "ann", "text": "x" * 2001}, None),
    ("PUT", "/api/v1/users/ann/state/k", {"value": "x" * 2000},
     {"op": "state.set", "key": "k", "value": "x" * 2000}, None),
]  # fmt: skip


def test_errors_are_in_the_socket_protocols_words(run: Run) -> None:
    async def main() -> None:
        async with api_server(state_max_bytes=1000) as chat:
            http = await Http.open(chat)
            for method, path, body, request, detail in SAME_MISTAKES:
                ann = await chat.signed_in("tcp", "ann")  # a new one: mistakes count
                await ann.request("join", room="lobby")
                assert isinstance(ann, TcpPeer)
                await ann.send_raw(json.dumps({**request, "id": 9}))
                said = await ann.reply(9)
                status, _, answer = await http.call(method, path, body)
                await ann.close()
                assert said["op"] == "error" and status >= 400, (said, answer)
                assert answer["detail"] == said["detail"], (answer, said)
                if detail is not None:
                    assert answer["detail"] == detail
            http.close()

    run(main())


@cache
def name_schemas() -> list[tuple[str, dict[str, Any], Any]]:
    """The path values and body names of the OpenAPI document, and the check each stands for."""
    spec = openapi.spec()
    found = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for parameter in operation["parameters"]:
                if parameter["in"] == "path":
                    check = api.path_values(path, method)[parameter["name"]].check
                    found.append(
                        (f"{method} {path} {parameter['name']}", parameter["schema"], check)
                    )
    schemas = spec["components"]["schemas"]
    found.append(("PostBody.user", schemas["PostBody"]["properties"]["user"], is_name))
    found.append(("DirectBody.from", schemas["DirectBody"]["properties"]["from"], is_name))
    return found


def test_openapi_names_have_the_checks_of_names_py() -> None:
    checks = {label: check for label, _, check in name_schemas()}
    assert checks["post /users/{user}/token user"] is is_name
    assert checks["get /users/{user} user"] is is_user
    assert checks["get /users/{user}/state/{key} key"] is is_key
    assert checks["get /rooms/{room} room"] is is_name
    assert len(name_schemas()) == 2 + sum(path.count("{") for path, *_ in openapi.ENDPOINTS)


@settings(max_examples=300, deadline=None)
@given(text=names)
@example(text="bob\n")
@example(text="~bob")
@example(text="~" + "a" * 32)
@example(text="a" * 33)
@example(text="a" * 64)
@example(text="ann.Z")
@example(text="\u042cob")
def test_openapi_name_patterns_take_exactly_what_names_py_takes(text: str) -> None:
    """A JSON Schema validator (Python's ``re`` here; the browser test checks ECMA-262) takes a
    name in the OpenAPI document exactly when the server's own check does."""
    for label, schema, check in name_schemas():
        valid = jsonschema.Draft202012Validator(schema).is_valid(text)
        assert valid == check(text), (label, text)


def test_api_off_without_keys_and_a_token_needs_a_secret(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            http = await Http.open(chat)
            status, _, body = await http.call("GET", "/api/v1/online")
            assert (status, body["error"]) == (404, "api-off")
        async with chat_server(api_keys=[KEY], secret=None) as chat:
            http = await Http.open(chat)
            status, _, body = await http.call("POST", "/api/v1/users/ann/token")
            assert (status, body["error"]) == (409, "no-secret")
            http.close()

    run(main())


def test_keys_from_the_list_and_a_file_all_work(run: Run, tmp_path: Any) -> None:
    keys = tmp_path / "keys"
    other = "file-key-0123456789abc"
    keys.write_text(f"# backend keys\n\n{other}\n")

    async def main() -> None:
        async with chat_server(api_keys=[KEY], api_keys_file=str(keys)) as chat:
            http = await Http.open(chat)
            for key in (KEY, other):
                assert (await http.call("GET", "/api/v1/online", key=key))[0] == 200
            assert (await http.call("GET", "/api/v1/online", key=other + "x"))[0] == 401
            http.close()

    run(main())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api_keys": ["short"]}, "at least 16"),
        ({"api_keys": ["a key with spaces in it"]}, "without spaces"),
        ({"api_keys_file": "/nonexistent/keys"}, "api_keys_file"),
    ],
)
def test_bad_keys_are_refused_at_start(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_keys(ChatSettings(**options))


def test_a_body_over_the_limit_is_refused_before_it_is_read(run: Run) -> None:
    async def main() -> None:
        async with api_server(api_max_body=1024) as chat:
            http = await Http.open(chat)
            http.writer.write(build("PUT", "/api/v1/users/a/state/k", {"value": "x" * 2000}))
            status, headers, body = await http.response()
            assert status == 413 and headers["connection"] == "close"
            assert body.startswith(b"body-too-large")
            assert await http.closed()

    run(main())


def test_pipelined_requests_are_answered_in_order_beside_a_websocket(run: Run) -> None:
    """Today's regression: a second pipelined request, or a POST with a body, got no answer."""

    async def main() -> None:
        async with api_server() as chat:
            ann = await chat.signed_in("ws", "ann")
            await ann.request("join", room="lobby")
            http = await Http.open(chat)
            batch = b"".join(
                build("POST", "/api/v1/rooms/lobby/messages", {"user": "bot", "text": f"m{n}"})
                + build("GET", "/api/v1/rooms/lobby/history?limit=1")
                for n in range(20)
            )
            batch += b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n"
            batch += build("GET", "/api/v1/online", Connection="close")
            for start in range(0, len(batch), 100):  # in pieces, as a slow network would
                http.writer.write(batch[start : start + 100])
                await asyncio.sleep(0)
            for n in range(20):
                status, _, posted = await http.response()
                assert (status, posted["seq"]) == (200, n + 1)
                _, _, page = await http.response()
                assert [m["text"] for m in page["messages"]] == [f"m{n}"]
            status, headers, css = await http.response()
            assert status == 200 and headers["content-type"].startswith("text/css") and css
            status, headers, online = await http.response()
            assert online["online"] == 1 and headers["connection"] == "close"
            assert await http.closed()
            for n in range(20):
                assert (await ann.push("message"))["text"] == f"m{n}"
            assert (await ann.request("ping"))["op"] == "pong"
            assert not chat.server.stats.errors  # no internal error, no protocol error

    run(main())


def test_http_1_0_closes_unless_keep_alive(run: Run) -> None:
    async def main() -> None:
        async with api_server() as chat:
            auth = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
            http = await Http.open(chat)
            http.writer.write(b"GET /api/v1/online HTTP/1.0\r\n" + auth + b"\r\n")
            status, headers, _ = await http.response()
            assert (status, headers["connection"]) == (200, "close")
            assert await http.closed()
            http = await Http.open(chat)
            for path in (b"/api/v1/online", b"/static/style.css", b"/nope"):
                http.writer.write(
                    b"GET " + path + b" HTTP/1.0\r\nConnection: keep-alive\r\n" + auth + b"\r\n"
                )
                _, headers, _ = await http.response()
                assert headers["connection"] == "keep-alive"  # else a 1.0 client expects a close
            http.close()

    run(main())


def test_openapi_document_is_valid_and_describes_live_answers(run: Run) -> None:
    async def main() -> None:
        async with api_server() as chat:
            peer = await chat.signed_in("tcp", "ann")
            await peer.request("join", room="lobby")
            http = await Http.open(chat)
            status, _, spec = await http.call("GET", "/api/v1/openapi.json")
            assert status == 200
            validate(spec)  # openapi-spec-validator: a well-formed OpenAPI 3.1 document
            await http.call("POST", "/api/v1/rooms/lobby/messages", {"user": "bot", "text": "t"})
            await http.call("PUT", "/api/v1/users/ann/state/k", {"value": [1, {"b": None}]})
            checked = 0
            for path, methods in spec["paths"].items():
                if "get" not in methods:
                    continue
                concrete = path.format(user="ann", room="lobby", key="k")
                status, _, body = await http.call("GET", "/api/v1" + concrete)
                assert status == 200, (path, body)
                schema = methods["get"]["responses"]["200"]["content"]["application/json"]
                document = {**schema["schema"], "components": spec["components"]}
                jsonschema.validate(body, document)
                checked += 1
            assert checked == 8  # every GET endpoint
            status, _, body = await http.call("GET", "/api/v1/users/nobody")
            error_schema = {"$ref": "#/components/schemas/ApiError", **spec}
            jsonschema.validate(body, error_schema)
            http.close()

    run(main())


def test_upgrade_after_keep_alive_requests_on_one_connection(run: Run) -> None:
    """A page request, an API call, then the WebSocket upgrade and a frame sent right behind
    it, all on one connection, in one write."""

    async def main() -> None:
        async with api_server() as chat:
            http = await Http.open(chat)
            upgrade = (
                b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            hello = Frame(Opcode.TEXT, b'{"op":"hello","v":1,"user":"eve","id":1}')  # a guest
            http.writer.write(
                b"GET /static/style.css HTTP/1.1\r\nHost: x\r\n\r\n"
                + build("GET", "/api/v1/online")
                + upgrade
                + hello.serialize(mask=True)
            )
            assert (await http.response())[0] == 200
            assert (await http.response())[2] == {"online": 0, "users": []}
            head = await asyncio.wait_for(http.reader.readuntil(b"\r\n\r\n"), 5.0)
            assert head.startswith(b"HTTP/1.1 101 ")
            assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # RFC 6455's example accept key
            first = await asyncio.wait_for(http.reader.readexactly(2), 5.0)
            assert first[0] == 0x81  # a text frame
            length = first[1] & 0x7F
            if length == 126:
                length = int.from_bytes(await http.reader.readexactly(2), "big")
            reply = json.loads(await http.reader.readexactly(length))
            assert reply["op"] == "hello" and reply["user"] == "~eve"
            _, _, online = await Http(
                *await asyncio.open_connection(chat.http.host, chat.http.port)
            ).call("GET", "/api/v1/online")
            assert online["users"] == ["~eve"]
            http.close()

    run(main())


def test_reload_changes_the_keys(tmp_path: Any) -> None:
    """SIGHUP from another process re-reads api_keys: the new key works, the old one is 401."""
    config = tmp_path / "chat.toml"
    config.write_text(f'api_keys = ["{KEY}"]\n')
    with ChatDaemon("--config", str(config)) as daemon:

        def status(key: str) -> int:
            request = urllib.request.Request(
                daemon.url + "/api/v1/online", headers={"Authorization": f"Bearer {key}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as error:
                return error.code

        new_key = "rotated-key-0123456789"
        assert (status(KEY), status(new_key)) == (200, 401)
        config.write_text(f'api_keys = ["{new_key}"]\n')
        assert daemon.process is not None
        os.kill(daemon.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status(new_key) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (status(KEY), status(new_key)) == (401, 200)
        # A bad key at a reload is logged, and the keys in force stay.
        config.write_text('api_keys = ["short"]\n')
        os.kill(daemon.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "must be at least 16" not in daemon.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "must be at least 16" in daemon.log()
        assert (status(KEY), status(new_key), status("short")) == (401, 200, 401)


def test_posts_from_many_pipelined_connections_and_a_websocket_all_count(run: Run) -> None:
    """Five API connections each pipeline 100 posts in one write while a WebSocket user posts
    too: every request gets its answer, in order per connection, and every post gets one
    sequence number, seen by the room's member in that order."""

    async def main() -> None:
        async with api_server(rate_limit=0) as chat:
            watcher = await chat.signed_in("ws", "watcher")
            await watcher.request("join", room="lobby")

            async def backend(number: int) -> list[int]:
                http = await Http.open(chat)
                posts = [{"user": f"bot{number}", "text": f"{number}-{n}"} for n in range(100)]
                path = "/api/v1/rooms/lobby/messages"
                http.writer.write(b"".join(build("POST", path, post) for post in posts))
                seqs = []
                for _ in range(100):
                    status, _, posted = await http.response()
                    assert status == 200
                    seqs.append(posted["seq"])
                http.close()
                return seqs

            async def user() -> list[int]:
                return [(await watcher.request("post", room="lobby", text=f"w{n}"))["seq"]
                        for n in range(50)]  # fmt: skip

            results = await asyncio.gather(*(backend(n) for n in range(5)), user())
            for seqs in results:
                assert seqs == sorted(seqs)  # answered in the order sent
            every = sorted(seq for seqs in results for seq in seqs)
            assert every == list(range(1, 551))
            seen = []
            while len(seen) < 550:
                seen.append((await watcher.push("message"))["seq"])
            assert seen == list(range(1, 551))

    run(main())
