"""Who is who, over real sockets (TCP and WebSocket): a guest inherits nothing of an earlier
guest of the same name, names are checked against exactly the documented rule, and requests that
cannot be read one way only are refused (a repeated ``op``; a WebSocket text message that is not
UTF-8, closed with 1007 as RFC 6455 requires, seen by a raw socket and by the websockets client).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from core.helpers import wait_until
from residentd.apps.chat.names import GUEST_RULE, KEY_RULE, ROOM_RULE
from residentd.limits import Limits

from .helpers import WsPeer, chat_server

Run = Callable[[Coroutine[Any, Any, Any]], Any]


def test_a_guest_inherits_nothing_of_an_earlier_guest(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            ann = await chat.signed_in(transport, "ann")
            await ann.request("join", room="lobby")
            await ann.request("create", room="plans", private=True)
            await ann.request("post", room="plans", text="the plan")
            first = await chat.guest(transport, "gus")
            assert (await first.request("join", room="lobby"))["op"] == "join"
            assert (await first.request("create", room="hideout", private=True))["op"] == "create"
            assert (await ann.request("invite", room="plans", user="~gus"))["op"] == "invite"
            assert (await first.request("join", room="plans"))["room"]["members"] == 2
            await ann.request("create", room="later", private=True)
            await ann.request("invite", room="later", user="~gus")  # not used before it leaves
            await first.request("state.set", key="diary", value="private notes")
            await first.close()
            # Its rooms see it leave; it is not offline-but-member, it is gone.
            assert {(await ann.push("left"))["room"] for _ in range(2)} == {"lobby", "plans"}
            assert (await ann.request("seen", user="~gus"))["code"] == "no-such-user"
            hub = chat.app.hub
            assert "hideout" not in hub.rooms  # private, and its only member left
            assert not hub.rooms["later"].invited
            # The next guest asking for the name starts from nothing.
            second = await chat.guest(transport, "gus")
            listed = [room["room"] for room in (await second.request("rooms"))["rooms"]]
            assert listed == ["lobby"]
            for room in ("plans", "later"):
                assert (await second.request("join", room=room))["code"] == "not-invited"
                assert (await second.request("history", room=room))["code"] == "not-a-member"
                assert (await second.request("post", room=room, text="hi"))["code"] == (
                    "not-a-member"
                )
            assert (await second.request("post", room="lobby", text="hi"))["code"] == (
                "not-a-member"
            )
            assert (await second.request("join", room="hideout"))["code"] == "no-such-room"
            assert (await second.request("state.get"))["value"] == {}
            members = await ann.request("who", room="plans")
            assert [user["user"] for user in members["users"]] == ["ann"]
            # The guest namespace keeps guests off token users' names.
            impostor = await chat.guest(transport, "ann")
            await impostor.request("join", room="lobby")
            await impostor.request("post", room="lobby", text="it's me, ann")
            message = await ann.push("message")
            assert message["user"] == "~ann" and message["text"] == "it's me, ann"

    run(main())


def test_a_guest_created_room_outlives_it_while_others_are_in(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            guest = await chat.guest("ws", "gus")
            await guest.request("create", room="den", private=True)
            ann = await chat.signed_in("tcp", "ann")
            await guest.request("invite", room="den", user="ann")
            await ann.request("join", room="den")
            await guest.close()
            assert (await ann.push("left")) == {"op": "left", "room": "den", "user": "~gus"}
            den = await ann.request("who", room="den")
            assert den["online"] == 1 and [u["user"] for u in den["users"]] == ["ann"]
            await ann.request("leave", room="den")
            await wait_until(lambda: "den" not in chat.app.hub.rooms, what="den deleted")

    run(main())


def test_names_are_checked_against_the_documented_rule(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server(limits=Limits(max_bad_messages=100)) as chat:
            peer = await chat.peer(transport)
            # Raw bytes, so the server sees exactly these: JSON escapes and real UTF-8.
            lookalikes = [
                '"bob\\n"',  # a final newline: a regex $ lets it through
                '"\u042cob"',  # Cyrillic soft sign, as UTF-8
                '"\\u042cob"',  # the same, escaped
                '"\uff42ob"',  # fullwidth b
                '"bob\\u0000"',
                '"bo b"',
                '"b\\u200bob"',  # zero-width space
                '"\u212aelvin"',  # Kelvin sign, which lowercases to k
                '""',
            ]
            for index, name in enumerate(lookalikes, 1):
                await peer.send_raw(f'{{"op":"hello","v":1,"user":{name},"id":{index}}}')
                error = await peer.reply(index)
                assert error["code"] == "invalid-value", (name, error)
                assert error["detail"] == GUEST_RULE, error
            long = await peer.request("hello", v=1, user="b" * 33)
            assert long["code"] == "invalid-value" and long["detail"] == GUEST_RULE
            assert (await peer.request("hello", v=1, user="bob"))["user"] == "~bob"
            for raw, rule in [
                ('{"op":"join","room":"lobby\\n","id":"r"}', ROOM_RULE),
                ('{"op":"create","room":"l\u043ebby","id":"r"}', ROOM_RULE),  # Cyrillic o
                ('{"op":"state.set","key":"k\\n","value":1,"id":"r"}', KEY_RULE),
                ('{"op":"dm","to":"~~bob","text":"x","id":"r"}', GUEST_RULE),
            ]:
                await peer.send_raw(raw)
                error = await peer.reply("r")
                assert (error["code"], error["detail"]) == ("invalid-value", rule), raw
            assert "lobby\n" not in chat.app.hub.rooms
            assert (await peer.request("join", room="lobby"))["op"] == "join"

    run(main())


def test_a_repeated_op_is_invalid_json(run: Run, transport: str) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            peer = await chat.signed_in(transport, "ann")
            await peer.request("join", room="lobby")
            for raw in [
                '{"op":"post","op":"join","room":"lobby","text":"x","id":5}',
                '{"op":"join","room":"lobby","op":"post","text":"x","id":5}',
                '{"op":"post","room":"lobby","text":"x","op":"post","id":5}',
                '{"op":"nope","op":"post","room":"lobby","text":"x","id":5}',
            ]:
                await peer.send_raw(raw)
                error = await peer.reply(5)
                assert error["code"] == "invalid-json", (raw, error)
                assert error["detail"] == "the key op is in the message more than once"
            # An op in a value, or in a text, is no repeated key.
            text = 'say "op" twice: "op"'
            ok = await peer.request("post", room="lobby", text=text)
            assert ok["op"] == "post"
            assert (await peer.request("state.set", key="op", value={"op": "op"}))["size"]

    run(main())


def masked_text_frame(payload: bytes) -> bytes:
    """A client's text frame, masked, built by hand (no library refuses the payload)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def raw_websocket(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its first byte (FIN and opcode) and its payload."""
    head = await asyncio.wait_for(reader.readexactly(2), 5)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    return head[0], await reader.readexactly(length)


def test_invalid_utf8_in_a_text_frame_closes_with_1007(run: Run) -> None:
    async def main() -> None:
        async with chat_server() as chat:
            other = await chat.signed_in("tcp", "bob")
            await other.request("join", room="lobby")
            host, port = chat.http.host, chat.http.port
            reader, writer = await raw_websocket(host, port)
            hello = json.dumps({"op": "hello", "v": 1, "user": "ann", "id": 1}).encode()
            writer.write(masked_text_frame(hello))
            opcode, body = await read_frame(reader)
            assert opcode == 0x81 and json.loads(body)["op"] == "hello"
            # "é" then a lone continuation byte: not UTF-8 from byte 2 on.
            writer.write(masked_text_frame('{"op":"ping","x":"é'.encode() + b'\x80"}'))
            rest = await asyncio.wait_for(reader.read(), 5)  # everything until the server closes
            assert rest[0] == 0x88, rest  # a close frame, and nothing before it
            length = rest[1] & 0x7F
            code = struct.unpack("!H", rest[2:4])[0]
            assert code == 1007, code
            assert rest[4 : 2 + length].startswith(b"text message is not UTF-8")
            assert len(rest) == 2 + length
            writer.close()
            # The websockets client can send such a frame too (text=True with bytes).
            peer = await chat.signed_in("ws", "cid")
            assert isinstance(peer, WsPeer)
            await peer.connection.send(b'{"op":"ping","x":"\xff"}', text=True)
            assert await peer.closed() == []
            assert peer.close_code == 1007
            assert chat.server.stats.closed["invalid-utf8"] == 2
            still = await other.request("post", room="lobby", text="still served")
            assert still["op"] == "post"

    run(main())
