"""The backend API's OpenAPI 3.1 document, served at ``/api/v1/openapi.json``.

The schemas come from the same msgspec structs ``api.py`` decodes bodies into and encodes
answers from (``msgspec.json.schema_components``), so the document describes exactly what the
server reads and writes; the paths' values take their schemas from the routes' own checks
(``api.PathValue``, names.py's patterns, which mean the same in ECMA-262 as in Python); the
paths, their query parameters and statuses are listed here. It is built once, on first request,
and kept as bytes. This module registers the ``/openapi.json`` route itself, so ``api.py``
does not import it back.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from residentd.apps.chat import api
from residentd.apps.chat import protocol as p

REF = "#/components/schemas/{name}"
ERRORS = {
    "400": "a bad body, query or path value (``field`` names it)",
    "401": "no API key, or not a good one",
    "404": "no such user, room or path; or the API is off (``api-off``)",
    "405": "the method is not allowed on this path (see ``Allow``)",
    "409": "the chat refuses (``user-offline``, ``state-full``, ``not-a-number``, ...)",
    "413": "the body is larger than api_max_body",
}

# (path, method, summary, body struct, answer struct, query parameters: name -> schema)
ENDPOINTS: list[tuple[str, str, str, type | None, type, dict[str, dict[str, Any]]]] = [
    ("/online", "get", "Users online on the server", None, api.Online,
     {"limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
    ("/users/{user}", "get", "A user's presence", None, api.UserPresence, {}),
    ("/users/{user}/token", "post", "Mint a sign-in token for the user", api.TokenBody,
     api.Token, {}),
    ("/users/{user}/messages", "post", "Send the user a direct message (they must be online)",
     api.DirectBody, api.Sent, {}),
    ("/users/{user}/kick", "post", "Close every connection of the user, with a reason",
     api.KickBody, api.Kicked, {}),
    ("/users/{user}/state", "get", "The user's whole state document", None,
     api.StateDocument, {}),
    ("/users/{user}/state/{key}", "get", "One key of the user's state (null: not set)", None,
     api.StateValue, {}),
    ("/users/{user}/state/{key}", "put", "Set one key of the user's state (makes the user if "
     "the server does not know it)", api.StateValueBody, api.StateSize, {}),
    ("/users/{user}/state/{key}", "delete", "Delete one key of the user's state", None,
     api.StateDeleted, {}),
    ("/users/{user}/state/{key}/incr", "post", "Add to the integer at the key (missing: 0)",
     api.IncrBody, api.StateNumber, {}),
    ("/rooms", "get", "Every room, private ones included", None, api.RoomList, {}),
    ("/rooms/{room}", "get", "One room", None, p.RoomInfo, {}),
    ("/rooms/{room}/members", "get", "The room's members, online ones first", None, api.Members,
     {"limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}),
    ("/rooms/{room}/history", "get", "The room's last messages, oldest first", None,
     api.HistoryPage,
     {"before": {"type": "integer", "minimum": 0},
      "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}),
    ("/rooms/{room}/messages", "post", "Post a message to the room as a named (system) user",
     api.PostBody, api.Posted, {}),
]  # fmt: skip


def _operation(
    path: str,
    method: str,
    summary: str,
    body: type | None,
    answer: type,
    query: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": value.schema()}
        for name, value in api.path_values(path, method).items()
    ]
    for name, schema in query.items():
        parameters.append({"name": name, "in": "query", "schema": schema})
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": parameters,
        "responses": {
            "200": {"description": "done", "content": _json(answer)},
            **{
                status: {"description": text, "content": _json(api.ApiError)}
                for status, text in ERRORS.items()
            },
        },
    }
    if body is not None:
        operation["requestBody"] = {"required": False, "content": _json(body)}
    return operation


def _json(kind: type) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=kind.__name__)}}}


@cache
def spec() -> dict[str, Any]:
    """The OpenAPI document as a dict."""
    kinds = {kind for *_, body, answer, _ in ENDPOINTS for kind in (body, answer) if kind}
    kinds.add(api.ApiError)
    _, components = msgspec.json.schema_components(
        sorted(kinds, key=lambda kind: kind.__name__), ref_template=REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, body, answer, query in ENDPOINTS:
        paths.setdefault(path, {})[method] = _operation(path, method, summary, body, answer, query)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "residentd chat backend API",
            "version": "1",
            "description": "The chat daemon's API for the application's own backend. Every "
            "request needs Authorization: Bearer KEY with one of the api_keys.",
        },
        "servers": [{"url": api.BASE}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


@cache
def document() -> bytes:
    """The OpenAPI document as JSON bytes."""
    return msgspec.json.encode(spec())


@api.route("/openapi.json", "GET")
def _serve(call: api.Call) -> bytes:
    return document()
