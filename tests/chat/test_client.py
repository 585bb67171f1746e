"""residentd.chat.client against a real ``residentd run chat`` subprocess: the sync and the
asyncio client, typed answers, errors as exceptions, connection reuse, timeouts."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from residentd.apps.chat import api
from residentd.apps.chat.names import USER_RULE
from residentd.apps.chat.tokens import check_token, make_token
from residentd.chat.client import (
    AsyncChatClient,
    BadRequest,
    ChatClient,
    ChatUnavailable,
    Conflict,
    NotFound,
    Unauthorized,
)
from residentd.errors import ResidentdError

from .daemon import ChatDaemon

KEY = "client-test-key-0123456789"
SECRET = "client-test-secret"


@pytest.fixture(scope="module")
def daemon() -> Iterator[ChatDaemon]:
    with ChatDaemon("--api-keys", KEY, "--secret", SECRET) as running:
        yield running


def signed_in(daemon: ChatDaemon, user: str, token: bool = True) -> socket.socket:
    """A TCP connection signed in as ``user`` with a token, or as the guest ``~user``."""
    sock = socket.create_connection(("127.0.0.1", daemon.tcp_port), timeout=5)
    hello = {"op": "hello", "v": 1, "user": user}
    if token:
        hello["token"] = make_token(SECRET, user)
    sock.sendall(json.dumps(hello).encode() + b"\n")
    reply = json.loads(sock.makefile("rb").readline())
    assert reply["op"] == "hello" and reply["guest"] is not token, reply
    return sock


def test_sync_client(daemon: ChatDaemon) -> None:
    ann = signed_in(daemon, "ann")
    with ChatClient(daemon.url, KEY) as chat:
        online = chat.online()
        assert isinstance(online, api.Online) and online.users == ["ann"]
        assert chat.presence("ann").online is True
        posted = chat.post("lobby", "hello from the backend", user="backend")
        assert posted.room == "lobby" and posted.seq >= 1
        page = chat.history("lobby", limit=20)
        assert page.messages[-1].text == "hello from the backend"
        assert page.messages[-1].user == "backend"
        assert [room.room for room in chat.rooms()] == ["lobby"]
        assert chat.room("lobby").members == 0
        assert chat.members("lobby").users == []
        assert chat.direct("ann", "psst").to == "ann"
        assert b'"op":"direct"' in ann.recv(4096)
        assert chat.set_state("ann", "theme", {"dark": True}) > 0
        assert chat.incr_state("ann", "visits") == 1
        assert chat.incr_state("ann", "visits", by=10) == 11
        assert chat.get_state("ann", "theme") == {"dark": True}
        assert chat.state("ann") == {"theme": {"dark": True}, "visits": 11}
        assert chat.delete_state("ann", "theme") is True
        assert chat.delete_state("ann", "theme") is False
        minted = chat.token("zoe", ttl=60)
        assert check_token(SECRET, "zoe", minted.token) is None
        with pytest.raises(BadRequest) as guest_token:
            chat.token("~zoe")
        assert (guest_token.value.field, guest_token.value.detail) == ("user", USER_RULE)
        # Errors are exceptions under residentd's root error, with the daemon's code.
        with pytest.raises(NotFound) as missing:
            chat.presence("nobody")
        assert missing.value.code == "no-such-user" and isinstance(missing.value, ResidentdError)
        with pytest.raises(BadRequest) as bad:
            chat.post("lobby", "")
        assert bad.value.field == "text"
        chat.set_state("zoe", "x", 1)  # known to the chat now, and offline
        with pytest.raises(Conflict) as offline:
            chat.direct("zoe", "hi")
        assert offline.value.code == "user-offline"
        assert chat.kick("ann", "bye now") == 1
        assert b'"code":"kicked"' in ann.recv(4096)
        assert chat.presence("ann").online is False
        # A guest by its ~ name (the client puts it in the path as it is).
        gus = signed_in(daemon, "gus", token=False)
        assert chat.presence("~gus").guest is True
        assert chat.set_state("~gus", "seen", True) > 0
        assert chat.kick("~gus") == 1
        with pytest.raises(NotFound):
            chat.state("~gus")  # gone with its connection
        gus.close()
        # One connection served all of it.
        pool = chat.http._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1
    ann.close()


def test_wrong_key_and_unreachable_daemon(daemon: ChatDaemon) -> None:
    with ChatClient(daemon.url, "not-the-key-0123456789") as chat, pytest.raises(Unauthorized):
        chat.online()
    with socket.socket() as idle:
        idle.bind(("127.0.0.1", 0))
        idle.listen(1)  # accepts, never answers
        url = f"http://127.0.0.1:{idle.getsockname()[1]}"
        with ChatClient(url, KEY, timeout=0.3) as chat, pytest.raises(ChatUnavailable):
            chat.online()
    # closed now: nothing listens
    with ChatClient(url, KEY) as chat, pytest.raises(ChatUnavailable):
        chat.online()


def test_sync_client_from_threads(daemon: ChatDaemon) -> None:
    """A Flask or Django process shares one client between its worker threads."""
    with ChatClient(daemon.url, KEY) as chat:

        def work() -> None:
            for _ in range(25):
                chat.incr_state("threads", "count")

        workers = [threading.Thread(target=work) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert chat.get_state("threads", "count") == 100


def test_async_client(daemon: ChatDaemon) -> None:
    async def main() -> None:
        async with AsyncChatClient(daemon.url, KEY) as chat:
            results = await asyncio.gather(*(chat.incr_state("bea", "n") for _ in range(50)))
            assert sorted(results) == list(range(1, 51))
            assert (await chat.post("lobby", "async hello")).room == "lobby"
            assert (await chat.history("lobby", limit=1)).messages[0].text == "async hello"
            assert (await chat.online()).online >= 0
            with pytest.raises(NotFound):
                await chat.room("nowhere")

    asyncio.run(main())


def test_without_httpx_the_import_error_says_what_to_install() -> None:
    code = "import sys; sys.modules['httpx'] = None; import residentd.chat.client"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "pip install 'residentd[client]'" in result.stderr
