"""The chat's limits over real sockets: sign-in rules, per-user rate and connection caps, garbage
and oversized input on TCP and WebSocket, sign-in deadline, heartbeat and dead peers. Each
hostile case checks that another user is still served meanwhile."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from core.helpers import wait_until
from residentd.apps.chat.tokens import make_token
from residentd.limits import Limits

from .helpers import Peer, TcpPeer, WsPeer, chat_server

Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def still_served(peer: Peer) -> None:
    reply = await peer.request("post", room="lobby", text="still served")
    assert reply["op"] == "post", reply


def test_tokens_and_guest_names(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(secret="sekrit", guests=False) as chat:
            peer = await chat.peer(transport)
            guest = await peer.request("hello", v=1, user="ann")
            assert guest["code"] == "bad-token" and "guests" in guest["detail"]
            forged = await peer.request("hello", v=1, user="ann", token=make_token("x", "ann"))
            assert forged["code"] == "bad-token"
            borrowed = await peer.request(
                "hello", v=1, user="ann", token=make_token("sekrit", "bob")
            )
            assert borrowed["code"] == "bad-token"
            expired = make_token("sekrit", "ann", ttl=10, now=1_000_000)
            late = await peer.request("hello", v=1, user="ann", token=expired)
            assert late["code"] == "bad-token" and "expired" in late["detail"]
            good = await peer.request("hello", v=1, user="ann", token=make_token("sekrit", "ann"))
            assert good["op"] == "hello" and good["guest"] is False
        async with chat_server(secret="sekrit") as chat:
            ann = await chat.signed_in(transport, "ann", token=make_token("sekrit", "ann"))
            gus = await chat.guest(transport, "gus")
            # A guest asking for a token user's name gets the guest's namespace, not the name.
            other = await chat.guest(transport, "ann")
            assert (await ann.request("seen", user="ann"))["online"] is True
            # An online guest's name is taken, asked for with or without its ~.
            for name in ("gus", "~gus"):
                impostor = await chat.peer(transport)
                taken = await impostor.request("hello", v=1, user=name)
                assert taken["code"] == "name-taken", taken
                assert taken["detail"] == "a guest named ~gus is online"
            # No token is good for a guest's name.
            tilde = await chat.peer(transport)
            refused = await tilde.request(
                "hello", v=1, user="~ann", token=make_token("sekrit", "ann")
            )
            assert refused["code"] == "bad-token" and "guest" in refused["detail"]
            # The token user and the guest who asked for its name are two users.
            who = await gus.request("who")
            assert sorted(user["user"] for user in who["users"]) == ["~ann", "~gus", "ann"]
            await other.close()
            assert (await ann.request("seen", user="ann"))["online"] is True


def test_rate_limit_per_user(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(rate_limit=2.0, rate_burst=5.0, secret="k") as chat:
            token = make_token("k", "ann")
            flood = await chat.signed_in(transport, "ann", token=token)
            second = await chat.signed_in("tcp", "ann", token=token)  # same user, same bucket
            other = await chat.signed_in(transport, "bob")
            await other.request("join", room="lobby")
            await flood.request("join", room="lobby")
            for _ in range(4):
                await flood.send("post", room="lobby", text="spam")
            replies = [await flood.reply(request_id) for request_id in range(3, 7)]
            assert [reply["op"] for reply in replies] == ["post", "post", "post", "post"]
            limited = await second.request("post", room="lobby", text="one more")
            assert limited["code"] == "rate-limited"
            assert 0 < limited["retry_after"] <= 0.5
            assert (await flood.request("ping"))["op"] == "pong"  # pings are free
            await still_served(other)
            await asyncio.sleep(limited["retry_after"] + 0.05)
            assert (await second.request("post", room="lobby", text="later"))["op"] == "post"

    run(main())


def test_connections_per_user(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(max_connections_per_user=2, secret="k") as chat:
            token = make_token("k", "ann")
            devices = [await chat.signed_in(transport, "ann", token=token) for _ in range(2)]
            third = await chat.peer(transport)
            await third.send("hello", v=1, user="ann", token=token)
            received = await third.closed()
            assert [m["code"] for m in received] == ["too-many-connections"]
            if isinstance(third, WsPeer):
                assert third.close_code == 1008  # policy violation, after the error message
            assert (await devices[0].request("who"))["online"] == 1

    run(main())


def test_garbage_gets_errors_then_a_close(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(limits=Limits(max_bad_messages=3)) as chat:
            other = await chat.signed_in(transport, "bob")
            await other.request("join", room="lobby")
            junk = await chat.signed_in(transport, "mallory")
            for garbage in ("\x00\xff", "{", '{"op":1}', "nope", "[]"):
                await junk.send_raw(garbage)
            received = await junk.closed()
            codes = [message["code"] for message in received]
            assert codes == ["invalid-json", "invalid-json", "wrong-type", "too-many-bad-messages"]
            last = "too many messages that did not decode (max_bad_messages = 3)"
            assert received[-1]["detail"] == last
            await still_served(other)

    run(main())


def test_oversized_tcp_line_is_refused(run: Run) -> None:
    async def main() -> None:
        async with chat_server(max_message=1024) as chat:
            other = await chat.signed_in("ws", "bob")
            await other.request("join", room="lobby")
            big = await chat.signed_in("tcp", "mallory")
            await big.request("join", room="lobby")
            # The request before the long line is still answered, then the close.
            await big.send_raw('{"op":"ping","id":"before"}\n{"op":"post","text":"' + "x" * 5000)
            received = await big.closed()
            assert received[0] == {"op": "pong", "id": "before"}
            assert received[-1]["code"] == "line-too-long"
            assert received[-1]["detail"] == "the line is longer than allowed (max_message = 1024)"
            await still_served(other)

    run(main())


def test_oversized_websocket_message_is_refused(run: Run) -> None:
    async def main() -> None:
        async with chat_server(max_message=1024) as chat:
            other = await chat.signed_in("tcp", "bob")
            await other.request("join", room="lobby")
            big = await chat.signed_in("ws", "mallory")
            assert isinstance(big, WsPeer)
            await big.send_raw('{"op":"post","room":"lobby","text":"' + "x" * 5000 + '"}')
            assert await big.closed() == []
            assert big.close_code == 1009  # message too big
            await still_served(other)
            binary = await chat.signed_in("ws", "bin")
            await binary.send_raw(b'{"op":"ping","id":1}')
            error = await binary.receive()
            assert error["code"] == "unsupported-frame"
            assert (await binary.request("ping"))["op"] == "pong"

    run(main())


def test_sign_in_deadline_and_dead_peers(run: Run) -> None:
    async def main() -> None:
        async with chat_server(hello_timeout=1.0, ping_interval=1.0, ping_timeout=1.0) as chat:
            silent = await chat.peer("tcp")
            lively = await chat.signed_in("ws", "ann")
            dead = await chat.signed_in("tcp", "bob")
            assert isinstance(dead, TcpPeer)
            # ann answers pings; bob's peer never reads nor writes again.
            deadline = asyncio.get_running_loop().time() + 3.5
            pings = 0
            while asyncio.get_running_loop().time() < deadline:
                try:
                    message = await lively.receive(0.2)
                except TimeoutError:
                    continue
                assert message == {"op": "ping"}
                pings += 1
                await lively.send_raw('{"op":"pong"}')
            assert pings >= 1
            [late] = await silent.closed()
            assert late["code"] == "hello-timeout"
            assert late["detail"] == "no accepted hello in time (hello_timeout = 1)"
            received = await dead.closed()
            assert received[0] == {"op": "ping"}
            assert received[-1]["code"] == "dead-peer"
            assert received[-1]["detail"] == "no answer to ping in time (ping_timeout = 1)"
            assert (await lively.request("who"))["online"] == 1

    run(main())


def test_max_users_forgets_the_longest_offline(run: Run) -> None:
    async def main() -> None:
        async with chat_server(max_users=2) as chat:
            first = await chat.signed_in("tcp", "ann")
            await first.request("state.set", key="k", value=1)
            await first.close()
            keeper = await chat.signed_in("tcp", "bob")
            await wait_until(lambda: not chat.app.hub.presence.online.get("ann"), what="ann gone")
            cid = await chat.signed_in("tcp", "cid")  # ann is forgotten to make room
            assert (await keeper.request("seen", user="ann"))["code"] == "no-such-user"
            full = await chat.peer("tcp")
            await full.send("hello", v=1, user="dan")
            assert [m["code"] for m in await full.closed()] == ["server-full"]
            assert (await cid.request("who"))["online"] == 2

    run(main())


def test_room_limits(run: Run) -> None:
    async def main() -> None:
        async with chat_server(max_rooms=4, max_rooms_per_user=2) as chat:
            ann = await chat.signed_in("tcp", "ann")
            assert (await ann.request("create", room="a"))["op"] == "create"
            assert (await ann.request("create", room="a"))["code"] == "room-exists"
            assert (await ann.request("create", room="b"))["op"] == "create"
            assert (await ann.request("create", room="c"))["code"] == "too-many-rooms"
            assert (await ann.request("join", room="lobby"))["code"] == "too-many-rooms"
            bob = await chat.signed_in("tcp", "bob")
            assert (await bob.request("create", room="d"))["op"] == "create"
            assert (await bob.request("create", room="e"))["code"] == "rooms-full"

    run(main())


def test_a_member_that_stops_reading_is_cut_off(run: Run) -> None:
    limits = Limits(max_output_buffer=256 * 1024, write_high_water=64 * 1024,
                    write_low_water=16 * 1024)  # fmt: skip

    async def main() -> None:
        async with chat_server(limits=limits, rate_limit=0.0, max_text=4000) as chat:
            stalled = socket.socket()
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stalled.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(stalled, (chat.tcp.host, chat.tcp.port))
            await loop.sock_sendall(stalled, b'{"op":"hello","v":1,"user":"slow"}\n'
                                             b'{"op":"join","room":"lobby"}\n')  # fmt: skip
            poster = await chat.signed_in("tcp", "ann")
            await poster.request("join", room="lobby")
            lobby = chat.app.hub.rooms["lobby"]
            await wait_until(lambda: len(lobby.members) == 2, what="the stalled member joined")
            text = "x" * 4000
            for _ in range(200):  # never more than ~40 MB, stops at the cut-off
                for _ in range(50):
                    await poster.send("post", room="lobby", text=text)
                reply = await poster.request("who", room="lobby")
                poster.pushes.clear()
                if reply["online"] == 1:
                    break
            else:
                raise AssertionError("the stalled member was never cut off")
            assert chat.server.stats.closed["output-buffer-full"] == 1
            await still_served(poster)
            stalled.close()

    run(main())


def test_reload_applies_new_limits_to_everyone(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            peer = await chat.signed_in("tcp", "ann")
            await peer.request("join", room="lobby")
            assert (await peer.request("post", room="lobby", text="123456"))["op"] == "post"
            # What the runner does on SIGHUP: new option values, then the reload hooks.
            chat.app.options.update(max_text=5, rate_limit=1.0, rate_burst=1.0)
            for hook in chat.app.reload_hooks:
                hook({"max_text": 5, "rate_limit": 1.0, "rate_burst": 1.0})
            assert (await peer.request("post", room="lobby", text="123456"))["code"] == "too-long"
            assert (await peer.request("who"))["code"] == "rate-limited"

    run(main())
