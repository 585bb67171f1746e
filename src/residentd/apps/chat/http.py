"""The HTTP side of the chat's web port: the page, the dashboard, their scripts and ``/stats``.

Pages are plain HTML, CSS and JavaScript from ``static/``, read once when first asked for and
then served from memory: no disk on the loop after that, no build step, no CDN. Connections
are kept alive by HTTP/1.1 rules (``Connection: close`` or HTTP/1.0 close them); ``/ws`` and
``/api/`` never get here (``ws.py`` upgrades the first, ``api.py`` answers the second).

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

from residentd.codecs.http import HttpRequest, reply

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


def answer(request: HttpRequest, stats: StatsSource | None) -> bytes:
    """The bytes of the response to a request for a page, a static file or ``/stats``."""
    if request.method not in ("GET", "HEAD"):
        return reply(request, 405, b"only GET\n", headers={"Allow": "GET, HEAD"})
    path = request.path
    if path == "/stats":
        body = stats.to_json() if stats is not None else b'{"interval":1.0,"samples":[]}'
        return reply(request, 200, body, "application/json", HEADERS)
    name = PAGES.get(path)
    if name is None and path.startswith("/static/"):
        name = path[len("/static/") :]
    page = static_file(name) if name else None
    if name is None or page is None:
        return reply(request, 404, b"not found\n", headers=HEADERS)
    content_type = TYPES["." + name.rpartition(".")[2]]
    return reply(request, 200, page, content_type, HEADERS)
