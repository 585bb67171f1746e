"""The HTTP side of the chat's web port: the page, the dashboard, their scripts and ``/stats``.

Pages are plain HTML, CSS and JavaScript from ``static/``, read once when first asked for and
then served from memory: no disk on the loop after that, no build step, no CDN. Every answer
closes its connection (the pages are a handful of requests); ``/ws`` never gets here, the
WebSocket session upgrades it first.

    GET /            the chat page: sign in, who is online, rooms, messages
    GET /dashboard   users online, messages/s, memory per user, loop lag, every second
    GET /static/F    the pages' scripts, style sheet and icon
    GET /stats       the dashboard's samples as JSON

Answers carry a Content-Security-Policy that allows only this origin's own scripts, styles and
WebSocket, so the pages run no inline or foreign code.
"""

from __future__ import annotations

from importlib import resources
from typing import Protocol

from residentd.codecs.websocket import Request, WebSocketCodec

PAGES = {"/": "index.html", "/index.html": "index.html", "/dashboard": "dashboard.html"}
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}

_files: dict[str, bytes] = {}


class StatsSource(Protocol):
    def to_json(self) -> bytes: ...


def static_file(name: str) -> bytes | None:
    """A file of ``static/`` (read once, then kept), or None if there is no such file."""
    if name not in _files:
        if "/" in name or name.startswith(".") or not name.endswith(tuple(TYPES)):
            return None
        path = resources.files("residentd.apps.chat").joinpath("static", name)
        if not path.is_file():
            return None
        _files[name] = path.read_bytes()
    return _files[name]


def answer(codec: WebSocketCodec, request: Request, stats: StatsSource | None) -> bytes:
    """The bytes of the response to a plain HTTP request."""
    head = request.method == "HEAD"
    if request.method not in ("GET", "HEAD"):
        return codec.respond(405, b"only GET\n", headers={"Allow": "GET, HEAD"})
    path = request.path.partition("?")[0]
    if path == "/stats":
        body = stats.to_json() if stats is not None else b'{"interval":1.0,"samples":[]}'
        return codec.respond(200, body, "application/json", HEADERS, head=head)
    name = PAGES.get(path)
    if name is None and path.startswith("/static/"):
        name = path[len("/static/") :]
    page = static_file(name) if name else None
    if name is None or page is None:
        return codec.respond(404, b"not found\n", headers=HEADERS, head=head)
    content_type = TYPES["." + name.rpartition(".")[2]]
    return codec.respond(200, page, content_type, HEADERS, head=head)
