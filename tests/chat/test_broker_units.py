"""The broker's pieces without a Redis: the settings it is given, the workers hook, a node's
name, the message templates the scripts number, and events applied to a node's cache."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec
import pytest

from residentd.apps.chat import build_app
from residentd.apps.chat import protocol as p
from residentd.apps.chat.brokered import BrokeredHub, _split, node_name
from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.wire import LINES
from support import child_env, run_residentd


def test_a_bad_broker_address_stops_the_start() -> None:
    result = run_residentd("config", "chat", "--broker", "http://cache:6379", env=child_env())
    assert result.returncode == 2
    assert "a broker is redis://HOST:PORT/DB" in result.stderr
    good = run_residentd("config", "chat", "--broker", "unix:///run/redis.sock", env=child_env())
    assert good.returncode == 0 and 'broker = "unix:///run/redis.sock"' in good.stdout


def test_workers_need_a_broker() -> None:
    app = build_app()
    assert app.workers_refused(1, {}) is None
    reason = app.workers_refused(2, {"broker": None})
    assert reason is not None and "needs a broker" in reason and "workers = 2" in reason
    assert app.workers_refused(2, {"broker": "redis://127.0.0.1:6379/0"}) is None
    # the config being started decides, from whichever source gives the broker
    refused = run_residentd("config", "chat", "--workers", "2", env=child_env())
    assert refused.returncode == 2 and "needs a broker" in refused.stderr
    env = child_env() | {"RESIDENTD_BROKER": "redis://127.0.0.1:6379/0"}
    allowed = run_residentd("config", "chat", "--workers", "2", env=env)
    assert allowed.returncode == 0, allowed.stderr


def test_a_node_is_named_by_host_and_pid_or_its_id() -> None:
    assert node_name(None).endswith(f":{os.getpid()}")
    assert node_name("eu-1") == "eu-1"  # one process
    assert node_name("eu-1", worker=0) == f"eu-1/{os.getpid()}"  # each worker is a node


def test_templates_put_the_number_where_the_field_is() -> None:
    message = p.encode(p.Message(room="ops", seq=0, ts=5, user="ann", text='"seq":0, x'))
    before, after = _split(message, b"seq")
    numbered = before + b"42" + after
    decoded = msgspec.json.decode(numbered)
    assert decoded["seq"] == 42 and decoded["text"] == '"seq":0, x'
    direct = p.encode(p.DirectMessage(msg=0, ts=1, sender="a", to="b", text="hi"))
    before, after = _split(direct, b"msg")
    assert msgspec.json.decode(before + b"7" + after)["msg"] == 7


@pytest.mark.parametrize("wire_user", ["ann", "~guest"])
def test_events_reach_only_this_nodes_members(wire_user: str) -> None:
    hub = BrokeredHub(ChatSettings(), "redis://127.0.0.1:1/0", "n1")
    got: list[bytes] = []
    session = type("Session", (), {"wire": LINES, "push": got.append})()
    user = hub.presence.add(wire_user, wire_user.startswith("~"))
    hub.presence.attach(user, session)
    hub._rejoin(user, {"ops"})
    hub.on_event(b"Rops\n" + b'{"op":"message"}')
    hub.on_event(b"Rother\n" + b'{"op":"message"}')
    hub.on_event(b'L{"room":"ops","user":"' + wire_user.encode() + b'","push":true}\n')
    hub.on_event(b"Rops\n" + b'{"op":"message"}')
    left = b'{"op":"left","room":"ops","user":"%s"}\n' % wire_user.encode()
    assert got == [b'{"op":"message"}\n', left]  # one room's, once; none after the leave
    assert "ops" not in hub.rooms and user.rooms == ()


def test_replies_leave_in_request_order_whatever_order_their_scripts_end_in() -> None:
    """A session's requests run at once, but each reply waits for those of the requests
    before it; a refusal keeps its place too, and the backlog is gone once all are sent."""

    async def main() -> None:
        hub = BrokeredHub(ChatSettings(), "redis://127.0.0.1:1/0", "n1")
        scripts: dict[str, asyncio.Future[list[Any]]] = {}

        async def call(script: str, *args: Any) -> list[Any]:  # the broker, answered below
            scripts[args[1]] = asyncio.get_running_loop().create_future()
            return await scripts[args[1]]

        hub.link.call = call  # type: ignore[method-assign]
        sent: list[Any] = []
        session = type("Session", (), {})()  # hashable, as a session is
        session.user = hub.presence.add("ann", False)
        session.send = sent.append
        session.refuse = lambda request, error: sent.append((request.id, error.code.value))
        for number, key in enumerate("abcd"):
            hub.submit(session, p.StateIncr(id=number, key=key))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        assert sorted(scripts) == ["a", "b", "c", "d"]  # all four in flight at once
        scripts["d"].set_result([4])
        scripts["b"].set_exception(ChatError(ErrorCode.STATE_FULL, "full"))
        scripts["c"].set_result([3])
        await asyncio.sleep(0.01)
        assert sent == []  # all wait for the first
        scripts["a"].set_result([1])
        await asyncio.sleep(0.01)
        assert [reply if type(reply) is tuple else (reply.id, reply.value) for reply in sent] == [
            (0, 1),
            (1, "state-full"),
            (2, 3),
            (3, 4),
        ]
        assert hub.backlogs == {}

    asyncio.run(main())
