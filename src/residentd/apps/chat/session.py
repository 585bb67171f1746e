"""A chat connection, whatever its transport: requests in, replies and errors out.

``ChatSession`` is what TCP and WebSocket connections share once their codec has decoded a
request: it hands the request to the hub, echoes the request's ``id`` in the reply, and turns a
``ChatError`` into an ``error`` reply; errors that end the connection (``too-many-connections``,
``server-full``) are followed by a close. Subclasses say which wire format their connection
takes pushes in (``wire``) and, for WebSocket, deal with the HTTP request first.

A session is three slots on top of ``Session``'s one: the hub, the signed-in user and when it
was last pinged; the transport's codec does the framing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from residentd.app import Session
from residentd.apps.chat import protocol as p
from residentd.apps.chat.ratelimit import TokenBucket
from residentd.apps.chat.rooms import TCP

if TYPE_CHECKING:
    from residentd.apps.chat.daemon import ChatApp
    from residentd.apps.chat.hub import Hub
    from residentd.apps.chat.presence import User
    from residentd.net.connection import Connection

# Errors after which the server closes the connection.
CLOSING = frozenset({"too-many-connections", "server-full", "hello-timeout", "dead-peer"})


class ChatSession(Session):
    __slots__ = ("hub", "pinged", "user")

    wire: ClassVar[int] = TCP

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        self.hub: Hub = cast("ChatApp", conn.server.app).hub
        self.user: User | None = None
        self.pinged = 0.0

    @property
    def defer_writes(self) -> bool:  # type: ignore[override]
        """With a journal, replies leave at the commit point, once their records are written
        (and with ``appendfsync always``, fsynced); without one, as soon as they are made."""
        return self.hub.journal is not None

    def on_connect(self) -> None:
        self.hub.connected(self)

    def on_message(self, request: Any) -> None:
        try:
            reply = self.hub.handle(self, request)
        except p.ChatError as error:
            self.send(
                p.Error(
                    id=request.id,
                    code=error.code,
                    detail=error.detail,
                    retry_after=error.retry_after,
                )
            )
            if error.code in CLOSING:
                self.close(error.code)
            return
        if reply is not None:
            reply.id = request.id
            self.send(reply)

    def on_close(self, reason: str) -> None:
        self.hub.disconnected(self)

    def on_shutdown(self) -> None:
        self.send(p.Bye(reason="server-shutdown"))

    # -- live upgrade ----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any] | None:
        """The signed-in user (or None), its rooms (a guest's are kept nowhere else) and its
        rate bucket; the rooms, users and history come with the app's snapshot."""
        user = self.user
        if user is None:
            return {"user": None}
        bucket = user.bucket
        return {
            "user": user.name,
            "guest": user.guest,
            "rooms": [room.name for room in user.rooms],
            # time.monotonic() is the machine's clock, the same in the next process.
            "bucket": None if bucket is None else [bucket.tokens, bucket.stamp],
        }

    def import_state(self, state: dict[str, Any]) -> None:
        """Sign the user in again without a word to anyone: it never went offline."""
        hub = self.hub
        name = state["user"]
        if name is None:
            hub.connected(self)  # not signed in yet: its hello_timeout runs again
            return
        user = hub.presence.get(name) or hub.presence.add(name, state["guest"])
        if state["bucket"] is not None and user.bucket is None:
            user.bucket = TokenBucket(0.0, 0.0)
            user.bucket.tokens, user.bucket.stamp = state["bucket"]
        for room_name in state["rooms"]:
            room = hub.rooms.get(room_name)
            if room is not None and user not in room.members:
                room.add_member(user)  # a guest's membership: not in the snapshot
                user.rooms += (room,)
        self.user = user
        hub.connections[self.wire] += 1
        if hub.presence.attach(user, self):
            for room in user.rooms:
                room.online += 1
        for room in user.rooms:
            room.sinks[self.wire][self.conn] = None

    def fail(self, code: str, detail: str = "") -> None:
        """Tell the peer why in an ``error`` message, then close with ``code`` as the reason."""
        self.send(p.Error(code=code, detail=detail))
        self.close(code)

    def __repr__(self) -> str:
        name = self.user.name if self.user is not None else "-"
        return f"<{type(self).__name__} conn={self.conn.id} user={name}>"
