"""``chat`` and ``chat-idle``: users of ``residentd run chat`` (docs/chat-protocol.md).

``chat`` signs in (``hello``, as a guest asking for ``bot<index>``, so named ``~bot<index>``),
joins ``rooms_per_bot`` rooms (its home room, shared with the ``room_size`` bots of neighbouring
indices, and others already made by lower indices; a room that does not exist yet is created),
then mixes by weight:
post to one of its rooms (4), read a room's history (2), update its state document (2), send a
direct message to another bot online in the same generator (1), ask who is in a room (1).
Between tasks it thinks ``uniform:1:3`` seconds, well below the daemon's default rate limit.

``chat-idle`` signs in, joins its home room and stays online, sending ``ping`` every 25
seconds (below the daemon's 30 s ``ping_interval``): the load of users who are merely online,
which is what memory per online user is measured with.

Every request carries an ``id`` and its reply is matched by it; an ``error`` reply fails the
step with the error's code. Pushes (room messages, presence, the server's ``ping``, which is
answered with ``pong``) are counted, not timed. Both run over TCP JSON lines (port 7700) or,
with ``--transport websocket``, over WebSocket at ``/ws`` on port 7780.
"""

from __future__ import annotations

from typing import Any, ClassVar

from residentd.bots.scenario import Scenario, StepFailed, task

# Error replies that are a valid outcome of a race between bots, not a failure of the server.
NO_SUCH_ROOM = frozenset({"no-such-room"})
ROOM_EXISTS = frozenset({"room-exists"})
USER_GONE = frozenset({"user-offline", "no-such-user"})


class ChatBot(Scenario):
    """What ``chat`` and ``chat-idle`` share: signing in, requests matched by id, pushes."""

    transport = "json"
    port = 7700
    ports = {"websocket": 7780}
    path = "/ws"
    options: ClassVar[dict[str, Any]] = {
        "prefix": "bot",
        "room_size": 20,
        "rooms_per_bot": 2,
        "text_size": 40,
        "history": 20,
    }

    async def on_start(self) -> None:
        self._next_id = 0
        self.conn.on_push = self._on_push
        attempt = self.context.shared.setdefault("attempts", {}).get(self.index, 0) + 1
        self.context.shared["attempts"][self.index] = attempt
        prefix = str(self.opts.get("prefix", "bot"))
        self.user = f"{prefix}{self.index}" if attempt == 1 else f"{prefix}{self.index}-{attempt}"
        room_size = max(1, int(self.opts.get("room_size", 20)))
        self.home = f"{prefix}-room-{self.index // room_size}"
        hello = await self.call("hello", {"op": "hello", "v": 1, "user": self.user})
        self.user = str(hello["user"])  # a guest's name, as the server gives it: ~bot<index>
        self.rooms: list[str] = []
        await self.enter(self.home)
        online: list[str] = self.context.shared.setdefault("online", [])
        online.append(self.user)

    async def on_stop(self) -> None:
        online: list[str] = self.context.shared.get("online", [])
        if self.user in online:
            online.remove(self.user)

    def _on_push(self, message: Any) -> None:
        self.context.recorder.pushes += 1
        if type(message) is dict and message.get("op") == "ping":
            self.conn.send_nowait({"op": "pong"})

    async def call(
        self, step: str, request: dict[str, Any], expected: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """One request, timed as ``step``, its reply matched by ``id``. An error reply fails
        the step with its code, unless the code is ``expected`` (the caller handles it)."""
        self._next_id += 1
        rid = request["id"] = self._next_id
        with self.step(step):
            reply: dict[str, Any] = await self.conn.request(
                request, lambda m: type(m) is dict and m.get("id") == rid
            )
            if reply.get("op") == "error" and reply.get("code") not in expected:
                raise StepFailed(str(reply.get("code")), str(reply.get("detail", "")))
        return reply

    async def enter(self, room: str) -> None:
        """Join ``room``, creating it when it does not exist yet (another bot may create it
        first: then join it)."""
        join = {"op": "join", "room": room}
        reply = await self.call("join", join, NO_SUCH_ROOM)
        if reply.get("op") == "error":
            reply = await self.call("create", {"op": "create", "room": room}, ROOM_EXISTS)
            if reply.get("op") == "error":
                await self.call("join", join)
        self.rooms.append(room)


class Chat(ChatBot):
    name = "chat"
    think = "uniform:1:3"

    async def on_start(self) -> None:
        await super().on_start()
        room_size = max(1, int(self.opts.get("room_size", 20)))
        highest = self.index // room_size
        wanted = min(max(1, int(self.opts.get("rooms_per_bot", 2))), highest + 1)
        while len(self.rooms) < wanted:
            room = f"{self.opts.get('prefix', 'bot')}-room-{self.random.randint(0, highest)}"
            if room not in self.rooms:
                await self.enter(room)
        size = max(1, int(self.opts.get("text_size", 40)))
        self.text = (f"hello from {self.user} ").ljust(size, ".")[:size]

    @task(4)
    async def post(self) -> None:
        room = self.random.choice(self.rooms)
        await self.call("post", {"op": "post", "room": room, "text": self.text})

    @task(2)
    async def history(self) -> None:
        room = self.random.choice(self.rooms)
        limit = max(1, min(200, int(self.opts.get("history", 20))))
        await self.call("history", {"op": "history", "room": room, "limit": limit})

    @task(2)
    async def state(self) -> None:
        if self.random.random() < 0.5:
            await self.call("state.incr", {"op": "state.incr", "key": "visits"})
        else:
            status = self.random.choice(("here", "away", "busy"))
            await self.call("state.set", {"op": "state.set", "key": "status", "value": status})

    @task(1)
    async def direct(self) -> None:
        online: list[str] = self.context.shared.get("online", [])
        if len(online) < 2:
            return
        to = self.random.choice(online)
        if to == self.user:
            return
        await self.call("dm", {"op": "dm", "to": to, "text": self.text}, USER_GONE)

    @task(1)
    async def who(self) -> None:
        room = self.random.choice(self.rooms)
        await self.call("who", {"op": "who", "room": room, "limit": 20})


class ChatIdle(ChatBot):
    name = "chat-idle"
    think = "25"

    @task()
    async def ping(self) -> None:
        with self.step("ping"):
            reply = await self.conn.request(
                {"op": "ping"}, lambda m: type(m) is dict and m.get("op") == "pong"
            )
        if reply.get("op") != "pong":
            raise StepFailed("wrong-reply", str(reply)[:80])
