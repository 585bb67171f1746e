"""The app as a WSGI application, for gunicorn's sync workers (``classic.wsgi:app``).

Each worker opens its store once, at its first request, and keeps it (a pooled worker's
persistent database connection); ``CLASSIC_STORE`` names it (``sqlite:PATH`` or a
``redis://`` URL), or ``make_app(spec)`` does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from .app import MAX_BODY, REASONS, Reply, handle
from .stores import open_store

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def make_app(spec: str | None = None) -> WSGIApp:
    store: Any = None

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        nonlocal store
        if store is None:
            store = open_store(spec or os.environ["CLASSIC_STORE"])
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        reply: Reply
        if length > MAX_BODY:
            reply = 413, {"error": "too-large", "detail": f"body over {MAX_BODY} bytes"}
        elif length < 0:
            reply = 400, {"error": "bad-length", "detail": "Content-Length"}
        else:
            body = environ["wsgi.input"].read(length) if length else b""
            method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
            reply = handle(store, method, path, environ.get("QUERY_STRING", ""), body)
        status, answer = reply
        data = json.dumps(answer).encode()
        start_response(
            f"{status} {REASONS.get(status, '')}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    return application


app = make_app()
