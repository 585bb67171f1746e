"""The load generator of bench/classic_vs_resident.py: a fixed number of clients, each a user in
a room, each sending one request at a time and the next when the answer is in (closed loop).

Two framings, on one uvloop loop:

* ``HttpClient``: HTTP/1.1 with keep-alive; when the server closes after an answer (gunicorn's
  sync workers do, ``Connection: close``) it connects again for the next request, and that
  request's latency includes the new connection. A 200 answer counts; anything else is an
  error.
* ``ChatClient``: the chat's JSON lines over TCP: ``hello`` and ``join`` once, then the
  workload. A line with an ``"id"`` is the answer (pushes never carry one); an ``error``
  answer is an error; ``message`` pushes from the room are counted and skipped.

Each client cycles through the workload's requests (``mix``: heartbeat, who, post, history,
incr; or one of them alone). Latencies go to an HdrHistogram in microseconds. ``reset`` starts
the counted window after a warm-up; ``stop`` lets every client finish its request and close.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from residentd.apps.chat.tokens import make_token

OPS = ("heartbeat", "who", "post", "history", "incr")
TEXT = "the quick brown fox jumps over the lazy dog"
HISTORY = 20  # messages read by a history request
COUNTER = "visits"


def user_name(prefix: str, index: int) -> str:
    return f"{prefix}u{index}"


def room_name(index: int, room_size: int) -> str:
    return f"room{index // room_size}"


def ops_of(workload: str) -> tuple[str, ...]:
    if workload == "mix":
        return OPS
    if workload not in OPS:
        raise ValueError(f"unknown workload {workload!r}: mix or one of {', '.join(OPS)}")
    return (workload,)


# -- the requests ----------------------------------------------------------------------------------


def http_request(
    method: str, target: str, body: dict[str, object] | None = None, headers: str = ""
) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return head.encode() + b"\r\n" + data


def classic_requests(user: str, room: str) -> dict[str, bytes]:
    """The classic app's request for each operation (bench/classic/app.py)."""
    return {
        "heartbeat": http_request("POST", "/heartbeat", {"user": user, "room": room}),
        "who": http_request("GET", f"/who?room={room}"),
        "post": http_request("POST", "/post", {"user": user, "room": room, "text": TEXT}),
        "history": http_request("GET", f"/history?room={room}&limit={HISTORY}"),
        "incr": http_request("POST", "/incr", {"user": user, "key": COUNTER}),
    }


def api_requests(user: str, room: str, key: str) -> dict[str, bytes]:
    """The chat daemon's backend HTTP API for each operation (docs/chat-protocol.md), with the
    API key ``key``. The API has no heartbeat (presence is a socket's): the heartbeat writes
    the user's state key ``seen``, as the classic app writes its presence row."""
    auth = f"Authorization: Bearer {key}\r\n"
    users, rooms = f"/api/v1/users/{user}", f"/api/v1/rooms/{room}"
    return {
        "heartbeat": http_request("PUT", f"{users}/state/seen", {"value": 1}, auth),
        "who": http_request("GET", f"{rooms}/members?limit=100", None, auth),
        "post": http_request("POST", f"{rooms}/messages", {"user": user, "text": TEXT}, auth),
        "history": http_request("GET", f"{rooms}/history?limit={HISTORY}", None, auth),
        "incr": http_request("POST", f"{users}/state/{COUNTER}/incr", {"by": 1}, auth),
    }


def chat_line(op: str, id: int, **fields: object) -> bytes:
    return json.dumps({"op": op, **fields, "id": id}, separators=(",", ":")).encode() + b"\n"


def chat_requests(user: str, room: str) -> dict[str, bytes]:
    """The chat protocol's request for each operation (docs/chat-protocol.md). The heartbeat
    of a signed-in connection is ``ping``: presence is the connection itself."""
    return {
        "heartbeat": chat_line("ping", 1),
        "who": chat_line("who", 2, room=room),
        "post": chat_line("post", 3, room=room, text=TEXT),
        "history": chat_line("history", 4, room=room, limit=HISTORY),
        "incr": chat_line("state.incr", 5, key=COUNTER),
    }


def chat_sign_in(user: str, room: str, secret: str) -> list[bytes]:
    """Sign ``user`` in with a token made with the daemon's ``secret`` and join ``room``: a
    token user keeps its name, rooms and state, as the classic app's users do, and is the user
    the backend API names (a guest would be ``~user``, forgotten when it closes)."""
    hello = chat_line("hello", 6, v=1, user=user, token=make_token(secret, user))
    return [hello, chat_line("join", 7, room=room)]


# -- counting --------------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    pushes: int = 0
    per_op: dict[str, int] = field(default_factory=dict)
    first_error: str = ""
    latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000, 3))

    def answer(self, op: str, micros: int) -> None:
        self.requests += 1
        self.per_op[op] = self.per_op.get(op, 0) + 1
        self.latency.record_value(max(1, micros))

    def error(self, what: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = what[:300]


# -- the clients -----------------------------------------------------------------------------------


class Client:
    """One user: sends its setup requests, then cycles through ``cycle`` until the load stops.
    Its connection is a ``Conn`` of the load's framing; an HTTP client connects again when the
    server closes, a chat client's connection is its sign-in and lives as long as the client."""

    def __init__(self, load: Load, setup: Sequence[bytes], cycle: Sequence[tuple[str, bytes]],
                 local: str) -> None:  # fmt: skip
        self.load = load
        self.setup = list(setup)
        self.cycle = cycle
        self.local = local
        self.next = 0
        self.op = ""
        self.request = b""
        self.sent_at = 0
        self.conn: Conn | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()

    def advance(self) -> None:
        """Send the next request (connecting first when there is no connection)."""
        if self.setup:
            self.op, self.request = "setup", self.setup.pop(0)
        elif not self.load.running:
            self.finish()
            return
        elif not self.cycle:  # a member that only listens
            self.op = ""
            if not self.ready.done():
                self.ready.set_result(None)
            return
        else:
            if not self.ready.done():
                self.ready.set_result(None)
            self.op, self.request = self.cycle[self.next]
            self.next = (self.next + 1) % len(self.cycle)
        self.sent_at = time.perf_counter_ns()
        if self.conn is None:
            task = asyncio.get_running_loop().create_task(self.connect())
            self.load.connecting.add(task)  # a task nothing refers to may be collected
            task.add_done_callback(self.load.connecting.discard)
        else:
            self.conn.send(self.request)

    async def connect(self) -> None:
        load = self.load
        conn = load.framing(self)
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: conn, load.host, load.port, local_addr=(self.local, 0)
            )
        except OSError as error:
            load.tally.error(f"connect: {error}")
            self.finish(error)
            return
        self.conn = conn
        conn.send(self.request)

    def answered(self, conn: Conn, ok: bool, what: bytes, close: bool) -> None:
        if conn is not self.conn:
            return
        tally = self.load.tally
        if not ok:
            tally.error(f"{self.op}: {what!r}")
        elif self.op != "setup":
            tally.answer(self.op, (time.perf_counter_ns() - self.sent_at) // 1000)
        if close:
            self.conn = None
            conn.close()
        self.advance()

    def lost(self, conn: Conn, exc: Exception | None) -> None:
        if conn is not self.conn:
            return  # closed after its answer
        self.conn = None
        if self.op:
            self.load.tally.error(f"{self.op}: connection lost ({exc})")
        self.finish(ConnectionError(f"connection lost: {exc}"))

    def finish(self, error: Exception | None = None) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.op = ""
        if not self.ready.done():
            self.ready.set_exception(error or ConnectionError("stopped before ready"))
        if not self.done.done():
            self.done.set_result(None)


class Conn(asyncio.Protocol):
    """One connection of a client: frames the answers and hands them to the client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self, exc)


class HttpConn(Conn):
    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4 : end + 4 + length]
            buffer = buffer[end + 4 + length :]
            ok = head[9:12] == b"200"
            if head.startswith(b"http/1.0"):
                close = b"connection: keep-alive" not in head
            else:
                close = b"connection: close" in head
            self.client.answered(self, ok, head[:12] + b" " + body[:200], close)
        self.buffer = buffer


class ChatConn(Conn):
    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            if b'"id":' in line:
                self.client.answered(self, not line.startswith(b'{"op":"error"'), line, False)
            else:
                self.client.load.tally.pushes += 1


class Load:
    """The clients of one round against one server, and their tally."""

    def __init__(self, host: str, port: int, framing: Callable[[Client], Conn]) -> None:
        self.host = host
        self.port = port
        self.framing = framing
        self.running = True
        self.tally = Tally()
        self.clients: list[Client] = []
        self.connecting: set[asyncio.Task[None]] = set()

    def add(self, setup: Sequence[bytes], cycle: Sequence[tuple[str, bytes]], local: str) -> None:
        self.clients.append(Client(self, setup, cycle, local))

    async def start(self, timeout: float) -> None:
        """Connect every client and wait until each has done its setup."""
        for client in self.clients:
            client.advance()
        await asyncio.wait_for(asyncio.gather(*(c.ready for c in self.clients)), timeout)

    def reset(self) -> Tally:
        """Start a new count; return the old one."""
        old, self.tally = self.tally, Tally()
        return old

    async def stop(self, timeout: float) -> Tally:
        """Let every client finish its request and close; return the tally."""
        self.running = False
        for client in self.clients:
            if not client.op:
                client.finish()
        try:
            await asyncio.wait_for(asyncio.gather(*(c.done for c in self.clients)), timeout)
        except TimeoutError:
            for client in self.clients:
                client.finish()
        return self.tally
