"""Live upgrade of chat's WebSocket connections: the websockets client library's connections
stay open across upgrades (no handshake again, no ``bye``), and a frame cut at the handover is
carried on by the new generation (real processes and sockets)."""

from __future__ import annotations

import json
import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from websockets.frames import Frame, Opcode
from websockets.sync.client import ClientConnection, connect

from .helpers import free_port
from .upgrading import Generations


def chat(tmp_path: Path) -> tuple[Generations, str]:
    web = free_port()
    daemon = Generations(tmp_path, "chat", "--rate-limit", "0", "--http-listen", f"127.0.0.1:{web}")
    return daemon, f"ws://127.0.0.1:{web}/ws"


def request(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` and return the reply with its id (pushes before it are skipped, but no
    goodbye or error may come)."""
    ws.send(json.dumps(message))
    while True:
        reply = json.loads(ws.recv(timeout=20))
        assert reply["op"] not in ("bye", "error"), reply
        if reply.get("id") == message["id"]:
            return dict(reply)


def seqs(ws: ClientConnection, count: int) -> list[int]:
    """The room seqs of the next ``count`` messages; besides them only the pushes of the
    members joining may come (nobody leaves, nobody goes offline)."""
    got: list[int] = []
    while len(got) < count:
        push = json.loads(ws.recv(timeout=20))
        assert push["op"] in ("message", "joined", "presence"), push
        assert push.get("online", True), push
        if push["op"] == "message":
            got.append(push["seq"])
    return got


def test_websocket_users_keep_their_connection_room_and_every_message(tmp_path: Path) -> None:
    daemon, url = chat(tmp_path)
    with daemon, ExitStack() as stack:
        members = [stack.enter_context(connect(url, open_timeout=20)) for _ in range(5)]
        for i, ws in enumerate(members):
            request(ws, {"op": "hello", "v": 1, "user": f"w{i}", "id": 1})
            request(ws, {"op": "join", "room": "lobby", "id": 2})
        poster = stack.enter_context(connect(url, open_timeout=20))
        request(poster, {"op": "hello", "v": 1, "user": "poster", "id": 1})
        request(poster, {"op": "join", "room": "lobby", "id": 2})
        posted: list[int] = []

        def post(count: int) -> None:
            for _ in range(count):
                reply = request(poster, {"op": "post", "room": "lobby", "text": "m", "id": 3})
                posted.append(reply["seq"])

        post(10)
        for _ in range(2):
            daemon.upgrade_ok()
            post(10)
        for ws in members:
            assert seqs(ws, len(posted)) == posted  # each once, in order
            ws.ping().wait(timeout=20)  # the WebSocket's own ping, answered by the new codec
            assert request(ws, {"op": "ping", "id": 4})["op"] == "pong"
        # A member posts after the upgrades: every other member (and the poster) gets it.
        seq = request(members[0], {"op": "post", "room": "lobby", "text": "after", "id": 5})
        for ws in [*members[1:], poster]:
            assert seqs(ws, 1) == [seq["seq"]]
    assert daemon.log().count("(6 connections handed over") == 2


def _read_frame(sock: socket.socket, buffer: bytearray) -> dict[str, Any]:
    """The next text frame's JSON from the server (unmasked, under 64 KiB)."""
    while True:
        if len(buffer) >= 2:
            size, start = buffer[1] & 0x7F, 2
            assert size < 127
            if size == 126:
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            if len(buffer) >= 4 and len(buffer) >= start + size:
                assert buffer[0] == 0x81, bytes(buffer[:2])  # a final text frame
                payload = bytes(buffer[start : start + size])
                del buffer[: start + size]
                return dict(json.loads(payload))
        chunk = sock.recv(65536)
        assert chunk, "closed"
        buffer += chunk


def test_half_a_frame_inside_a_fragmented_message_arrives_whole(tmp_path: Path) -> None:
    daemon, url = chat(tmp_path)
    port = int(url.split(":")[2].split("/")[0])
    with daemon, socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        # The opening handshake, then frames, written by hand (to cut one where it must be).
        sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, "closed"
            buffer += chunk
        assert buffer.startswith(b"HTTP/1.1 101 "), bytes(buffer)
        del buffer[: buffer.index(b"\r\n\r\n") + 4]
        hello = b'{"op":"hello","v":1,"user":"cut","id":1}'
        sock.sendall(Frame(Opcode.TEXT, hello).serialize(mask=True))
        assert _read_frame(sock, buffer)["id"] == 1
        # A message in two fragments; the upgrade comes after the first and half the second.
        first = Frame(Opcode.TEXT, b'{"op":"ping",', fin=False).serialize(mask=True)
        second = Frame(Opcode.CONT, b'"id":7}' + b" " * 300).serialize(mask=True)
        sock.sendall(first + second[:5])
        time.sleep(0.2)  # read by the old generation: its codec holds them at the handover
        daemon.upgrade_ok()
        sock.sendall(second[5:])
        assert _read_frame(sock, buffer)["id"] == 7
        sock.sendall(Frame(Opcode.TEXT, b'{"op":"ping","id":8}').serialize(mask=True))
        assert _read_frame(sock, buffer)["id"] == 8
