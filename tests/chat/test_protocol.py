"""The chat protocol end to end over real sockets, once over TCP and once over WebSocket (with
the ``websockets`` client), on both loops: sign-in, rooms, fan-out, presence, history, direct
messages, per-user state and bad requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from core.helpers import wait_until
from residentd.apps.chat.tokens import make_token

from .helpers import chat_server

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def test_hello_echoes_the_id_and_gates_every_other_request(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            peer = await chat.peer(transport)
            early = await peer.request("who")
            assert early["op"] == "error" and early["code"] == "not-signed-in"
            assert (await peer.request("ping")) == {"op": "pong", "id": 2}
            wrong = await peer.request("hello", v=2, user="ann")
            assert wrong["code"] == "unsupported-version"
            await peer.send_raw('{"op":"hello","v":1,"user":"ann","id":"first"}')
            hello = await peer.reply("first")
            assert hello["op"] == "hello" and hello["user"] == "~ann" and hello["guest"] is True
            assert hello["v"] == 1 and hello["online"] == 1 and hello["rooms"] == []
            again = await peer.request("hello", v=1, user="ann")
            assert again["code"] == "already-signed-in"
            assert again["detail"] == "signed in as ~ann already"
            await peer.close()

    run(main())


def test_room_messages_reach_every_member_in_one_order(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            ann = await chat.signed_in(transport, "ann")
            bob = await chat.signed_in("tcp", "bob")  # the other transport, mixed in
            cid = await chat.signed_in("ws", "cid")
            created = await ann.request("create", room="dev", topic="builds")
            assert created["room"] == {
                "room": "dev", "topic": "builds", "private": False, "members": 1, "online": 1,
                "epoch": created["room"]["epoch"], "last": 0,
            }  # fmt: skip
            assert isinstance(created["room"]["epoch"], str) and created["room"]["epoch"]
            for peer in (bob, cid):
                joined = await peer.request("join", room="dev")
                assert joined["op"] == "join" and joined["last"] == 0
            # Joins are pushed to the whole room, the joiner's own connections included.
            joins = [(await ann.push("joined"))["user"] for _ in range(3)]
            assert joins == ["ann", "bob", "cid"]
            # Three senders at once: every member sees the same sequence, senders included.
            senders = [(ann, "a"), (bob, "b"), (cid, "c")]
            for round_ in range(5):
                for peer, name in senders:
                    await peer.send("post", room="dev", text=f"{name}{round_}")
            seen = []
            for peer, _ in senders:
                texts = [(await peer.push("message"))["text"] for _ in range(15)]
                seen.append(texts)
            assert seen[0] == seen[1] == seen[2]
            assert sorted(seen[0]) == sorted(f"{n}{r}" for r in range(5) for n in "abc")
            page = await bob.request("history", room="dev", limit=4)
            assert [m["seq"] for m in page["messages"]] == [12, 13, 14, 15]
            assert page["more"] is True
            older = await bob.request("history", room="dev", before=12, limit=20)
            assert [m["seq"] for m in older["messages"]] == list(range(1, 12))
            assert older["more"] is False
            assert [m["text"] for m in page["messages"] + older["messages"]] == (
                seen[0][11:] + seen[0][:11]
            )
            topic = await cid.request("topic", room="dev", topic="green")
            assert topic == {"op": "topic", "room": "dev", "topic": "green", "id": topic["id"]}
            assert (await ann.push("topic-changed"))["by"] == "cid"
            await bob.request("leave", room="dev")
            assert (await ann.push("left"))["user"] == "bob"
            listed = await ann.request("rooms")
            dev = next(room for room in listed["rooms"] if room["room"] == "dev")
            assert dev["members"] == 2 and dev["topic"] == "green"
            for peer in (ann, bob, cid):
                await peer.close()

    run(main())


def test_presence_counts_a_user_once_and_keeps_last_seen(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(secret="s3") as chat:
            secret = {"token": make_token("s3", "ann")}
            watcher = await chat.signed_in(transport, "bob")
            await watcher.request("join", room="lobby")
            phone = await chat.signed_in(transport, "ann", **secret)
            laptop = await chat.signed_in("tcp", "ann", **secret)
            await phone.request("join", room="lobby")
            assert (await watcher.push("joined"))["user"] == "bob"  # its own join
            assert (await watcher.push("joined"))["user"] == "ann"
            who = await watcher.request("who")
            assert who["online"] == 2
            assert sorted(u["user"] for u in who["users"]) == ["ann", "bob"]
            room = await watcher.request("who", room="lobby")
            assert room["online"] == 2
            # A post reaches both of ann's connections, the one that did not join too.
            await watcher.request("post", room="lobby", text="hi ann")
            assert (await laptop.push("message"))["text"] == "hi ann"
            assert (await phone.push("message"))["text"] == "hi ann"
            await phone.close()
            await watcher.no_push("presence")
            seen = await watcher.request("seen", user="ann")
            assert seen["online"] is True and "last_seen" not in seen
            await laptop.close()
            gone = await watcher.push("presence")
            assert gone["user"] == "ann" and gone["online"] is False and gone["last_seen"] > 0
            seen = await watcher.request("seen", user="ann")
            assert seen["online"] is False and seen["last_seen"] == gone["last_seen"]
            members = await watcher.request("who", room="lobby")
            assert members["online"] == 1
            assert members["users"] == [
                {"user": "bob", "online": True},
                {"user": "ann", "online": False, "last_seen": gone["last_seen"]},
            ]
            assert (await watcher.request("who"))["online"] == 1
            back = await chat.signed_in(transport, "ann", **secret)
            assert (await back.request("hello", v=1, user="ann"))["code"] == "already-signed-in"
            came = await watcher.push("presence")
            assert came == {"op": "presence", "room": "lobby", "user": "ann", "online": True}
            unknown = await watcher.request("seen", user="nobody")
            assert unknown["code"] == "no-such-user"

    run(main())


def test_private_rooms_refuse_outsiders(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            owner = await chat.signed_in(transport, "ann")
            outsider = await chat.signed_in(transport, "eve")
            friend = await chat.signed_in(transport, "bob")
            await owner.request("create", room="secret", private=True, topic="plans")
            await owner.request("post", room="secret", text="the plan")
            for peer in (outsider, friend):
                refused = await peer.request("join", room="secret")
                assert refused["code"] == "not-invited"
                history = await peer.request("history", room="secret")
                assert history["code"] == "not-a-member"
                members = await peer.request("who", room="secret")
                assert members["code"] == "not-a-member"
                post = await peer.request("post", room="secret", text="let me in")
                assert post["code"] == "not-a-member"
                listed = await peer.request("rooms")
                assert [room["room"] for room in listed["rooms"]] == ["lobby"]
            uninvited = await outsider.request("invite", room="secret", user="eve")
            assert uninvited["code"] == "not-a-member"
            invited = await owner.request("invite", room="secret", user="bob")
            assert invited["op"] == "invite"
            assert (await friend.push("invited")) == {
                "op": "invited",
                "room": "secret",
                "by": "ann",
            }
            assert "secret" in [room["room"] for room in (await friend.request("rooms"))["rooms"]]
            assert (await friend.request("join", room="secret"))["room"]["members"] == 2
            page = await friend.request("history", room="secret")
            assert [m["text"] for m in page["messages"]] == ["the plan"]
            assert (await outsider.request("join", room="secret"))["code"] == "not-invited"
            missing = await outsider.request("join", room="nowhere")
            assert missing["code"] == "no-such-room"

    run(main())


def test_direct_messages_reach_every_connection_of_both_users(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(secret="k") as chat:
            ann = await chat.signed_in(transport, "ann", token=make_token("k", "ann"))
            ann_tablet = await chat.signed_in("ws", "ann", token=make_token("k", "ann"))
            bob = await chat.signed_in(transport, "bob")
            reply = await bob.request("dm", to="ann", text="psst")
            assert reply["op"] == "dm" and reply["to"] == "ann" and reply["msg"] == 1
            for peer in (ann, ann_tablet, bob):
                direct = await peer.push("direct")
                assert direct == {
                    "op": "direct", "msg": 1, "ts": reply["ts"], "to": "ann", "text": "psst",
                    "from": "bob",
                }  # fmt: skip
            await bob.close()
            await wait_until(lambda: not chat.app.hub.presence.online.get("bob"), what="bob gone")
            assert (await ann.request("dm", to="bob", text="?"))["code"] == "user-offline"
            assert (await ann.request("dm", to="zed", text="?"))["code"] == "no-such-user"

    run(main())


def test_state_document_with_limits(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(state_max_keys=3, state_max_bytes=40) as chat:
            peer = await chat.signed_in(transport, "ann")
            doc = await peer.request("state.get")
            assert doc["value"] == {} and "key" not in doc
            assert (await peer.request("state.get", key="x"))["value"] is None
            put = await peer.request("state.set", key="pos", value={"x": 1, "y": [2, 3]})
            # Values are kept as the bytes the client sent (json.dumps puts spaces in).
            assert put["size"] == len("pos") + len(json.dumps({"x": 1, "y": [2, 3]}))
            assert (await peer.request("state.incr", key="n"))["value"] == 1
            assert (await peer.request("state.incr", key="n", by=41))["value"] == 42
            assert (await peer.request("state.get", key="pos"))["value"] == {"x": 1, "y": [2, 3]}
            assert (await peer.request("state.incr", key="pos"))["code"] == "not-a-number"
            full = await peer.request("state.set", key="big", value="x" * 40)
            assert full["code"] == "state-full"
            assert (await peer.request("state.set", key="k3", value=True))["op"] == "state.set"
            assert (await peer.request("state.set", key="k4", value=1))["code"] == "state-full"
            assert (await peer.request("state.del", key="k3"))["deleted"] is True
            assert (await peer.request("state.del", key="k3"))["deleted"] is False
            assert (await peer.request("state.get"))["value"] == {"pos": {"x": 1, "y": [2, 3]},
                                                                 "n": 42}  # fmt: skip
            await peer.close()
            # The document lives with the user, not with the connection.
            again = await chat.signed_in(transport, "ann")
            assert (await again.request("state.get", key="n"))["value"] == 42

    run(main())


def test_bad_requests_get_coded_errors_and_the_connection_stays(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            peer = await chat.signed_in(transport, "ann")
            cases = [
                ('{"op":"shout","id":1}', "unknown-op", 1),
                ('{"op":"post","room":"lobby","id":2}', "missing-field", 2),
                ('{"op":"post","room":7,"text":"x","id":"s"}', "wrong-type", "s"),
                ('{"op":"join","room":"' + "r" * 40 + '","id":4}', "too-long", 4),
                ('{"op":"join","room":"no spaces","id":5}', "invalid-value", 5),
                ('{"op":"history","room":"lobby","limit":0,"id":6}', "invalid-value", 6),
                ('{"op":"post", "id":7', "invalid-json", None),
                ('[1,2,3]', "not-an-object", None),
                ('{"op":"post","room":"lobby","text":"' + "t" * 2001 + '","id":9}', "too-long", 9),
            ]  # fmt: skip
            await peer.request("join", room="lobby")
            for raw, code, request_id in cases:
                await peer.send_raw(raw)
                while True:
                    error = await peer.receive()
                    if error["op"] == "error":
                        break
                assert error["code"] == code, (raw, error)
                assert error.get("id") == request_id, (raw, error)
                assert error["detail"]
            ok = await peer.request("post", room="lobby", text="still here")
            assert ok["op"] == "post"

    run(main())
