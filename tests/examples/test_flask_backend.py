"""examples/flask_backend.py, driven by Flask's test client against a real chat daemon: the
online page shows the daemon's users, a sign-in mints a token the daemon accepts at hello."""

from __future__ import annotations

import importlib.util
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs, urlsplit

import pytest

from chat.daemon import ChatDaemon
from residentd.chat.client import ChatClient

KEY = "flask-example-key-0123456789"
EXAMPLE = Path(__file__).parents[2] / "examples" / "flask_backend.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_backend_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def daemon() -> Iterator[ChatDaemon]:
    with ChatDaemon("--api-keys", KEY, "--secret", "flask-example-secret") as running:
        yield running


def hello(daemon: ChatDaemon, user: str, token: str | None = None) -> tuple[socket.socket, dict]:
    sock = socket.create_connection(("127.0.0.1", daemon.tcp_port), timeout=5)
    request = {"op": "hello", "v": 1, "user": user}
    if token is not None:
        request["token"] = token
    sock.sendall(json.dumps(request).encode() + b"\n")
    return sock, json.loads(sock.makefile("rb").readline())


def test_online_page_and_sign_in(daemon: ChatDaemon) -> None:
    example = load_example()
    with ChatClient(daemon.url, KEY) as chat:
        web = example.create_app(chat, daemon.url).test_client()
        page = web.get("/")
        assert page.status_code == 200 and b"<h1>0 online</h1>" in page.data
        bob, reply = hello(daemon, "bob")  # a guest: ~bob, not the app's user bob
        assert (reply["op"], reply["user"]) == ("hello", "~bob")
        page = web.get("/")
        assert b"<h1>1 online</h1>" in page.data and b"<li>~bob</li>" in page.data
        assert b"lobby: 0 of 0 online" in page.data

        refused = web.post("/signin", data={"user": "ann", "password": "guess"})
        assert refused.status_code == 401 and b"wrong user or password" in refused.data
        signed = web.post("/signin", data={"user": "ann", "password": "wonderland"})
        assert signed.status_code == 303
        location = urlsplit(signed.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == daemon.url
        fragment = parse_qs(location.fragment)
        assert fragment["user"] == ["ann"]
        # The daemon takes the minted token: ann is signed in as a token user, not a guest.
        ann, reply = hello(daemon, "ann", fragment["token"][0])
        assert (reply["op"], reply["user"], reply["guest"]) == ("hello", "ann", False)
        assert b"<li>ann</li>" in web.get("/").data
        _, forged = hello(daemon, "ann", fragment["token"][0][:-2] + "xx")
        assert forged["code"] == "bad-token"

        posted = web.post("/announce", data={"room": "lobby", "text": "maintenance at 5"})
        assert posted.status_code == 200 and posted.json["seq"] >= 1
        assert chat.history("lobby", limit=1).messages[0].user == "announcer"
        assert web.post("/announce", data={"room": "nowhere", "text": "x"}).status_code == 404
        bob.close()
        ann.close()


def test_a_chat_that_does_not_answer_is_a_503(daemon: ChatDaemon) -> None:
    example = load_example()
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{gone.getsockname()[1]}"
    with ChatClient(url, KEY, timeout=1.0) as chat:
        web = example.create_app(chat, url).test_client()
        assert web.get("/").status_code == 503
