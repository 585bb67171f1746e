"""The chat's web port: the WebSocket handshake and its Origin allowlist, the pages, ``/stats``
and bad HTTP, on both loops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus

from .helpers import Chat, WsPeer, chat_server

Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def http(chat: Chat, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; return the status, headers and body of the answer."""
    reader, writer = await asyncio.open_connection(chat.http.host, chat.http.port)
    writer.write(raw)
    data = await asyncio.wait_for(reader.read(), 5.0)  # the server closes after answering
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: chat.test\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("allowlist", "origin", "admitted"),
    [
        ([], None, True),  # not a browser
        ([], "same", True),
        ([], "http://evil.example", False),
        (["http://app.example"], "http://app.example", True),
        (["http://app.example"], "http://evil.example", False),
        (["*"], "http://anything.example", True),
    ],
)
def test_origin_allowlist(
    run: Run, allowlist: list[str], origin: str | None, admitted: bool
) -> None:
    async def main() -> None:
        async with chat_server(origins=allowlist) as chat:
            sent = chat.origin if origin == "same" else origin
            if admitted:
                peer = await WsPeer.open(chat.ws_url, origin=sent)
                assert (await peer.request("ping"))["op"] == "pong"
                await peer.close()
            else:
                with pytest.raises(InvalidStatus) as refused:
                    await WsPeer.open(chat.ws_url, origin=sent)
                assert refused.value.response.status_code == 403

    run(main())


def test_pages_and_stats(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            for path, kind, marker in [
                ("/", "text/html", b"<title>residentd chat</title>"),
                ("/dashboard", "text/html", b"chart-lag"),
                ("/static/chat.js", "text/javascript", b'from "./client.js"'),
                ("/static/client.js", "text/javascript", b"new WebSocket"),
                ("/static/dashboard.js", "text/javascript", b'fetch("/stats"'),
                ("/static/style.css", "text/css", b"body"),
            ]:
                status, headers, body = await http(chat, get(path))
                assert status == 200, path
                assert headers["content-type"].startswith(kind)
                assert "script-src 'self'" in headers["content-security-policy"]
                assert headers["connection"] == "close"
                assert marker in body
            head_status, head_headers, head_body = await http(
                chat, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert head_status == 200 and head_body == b"" and int(head_headers["content-length"])
            for path in ("/nope", "/static/../daemon.py", "/static/missing.js", "/static/"):
                assert (await http(chat, get(path)))[0] == 404, path
            status, headers, _ = await http(chat, b"DELETE / HTTP/1.0\r\n\r\n")
            assert status == 405 and "GET" in headers["allow"]
            assert (await http(chat, get("/ws")))[0] == 426  # no upgrade headers
            peer = await WsPeer.open(chat.ws_url)
            await peer.request("hello", v=1, user="ann")
            for _ in range(50):  # the sampler runs once a second
                status, headers, body = await http(chat, get("/stats"))
                assert status == 200 and headers["content-type"] == "application/json"
                samples = json.loads(body)["samples"]
                if samples and samples[-1]["online"] == 1:
                    break
                await asyncio.sleep(0.1)
            last = samples[-1]
            assert last["online"] == 1 and last["ws"] == 1 and last["tcp"] == 0
            assert last["rss"] > 0 and last["lag_ms"] >= 0 and last["rooms"] == 1

    run(main())


def test_bad_http_is_refused_and_others_are_served(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            peer = await chat.signed_in("ws", "ann")
            status, _, _ = await http(chat, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
            assert status == 431  # too many header lines
            reader, writer = await asyncio.open_connection(chat.http.host, chat.http.port)
            writer.write(b"\x16\x03\x01 not http at all\r\n\r\n")
            assert (await asyncio.wait_for(reader.read(), 5.0)).startswith(b"HTTP/1.1 400 ")
            writer.close()
            assert (await peer.request("ping"))["op"] == "pong"

    run(main())
