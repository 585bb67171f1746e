"""A chat connection, whatever its transport: requests in, replies and errors out.

``ChatSession`` is what TCP and WebSocket connections share once their codec has decoded a
request: it hands the request to the dispatcher (handlers.py), echoes the request's ``id`` in
the reply, and turns a ``ChatError`` into an ``error`` reply; errors that end the connection
(``too-many-connections``, ``server-full``) are followed by a close. Subclasses name the wire
their connection takes pushes in (``wire``, wire.py) and, for WebSocket, deal with the HTTP
request first.

A session is four slots on top of ``Session``'s one: the hub, the signed-in user, when it was
last pinged, and ``push``: its connection's ``send_bytes``, bound once, which is what fan-out
calls for each delivery (the one call per member on the hot path, without the frame of
``Session.send_bytes``). The transport's codec does the framing of replies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from residentd.app import Session, Transport
from residentd.apps.chat import protocol as p
from residentd.apps.chat.errors import CLOSING, ChatError, ErrorCode
from residentd.apps.chat.handlers import dispatch
from residentd.apps.chat.ratelimit import TokenBucket
from residentd.apps.chat.wire import LINES, Wire

if TYPE_CHECKING:
    from residentd.apps.chat.daemon import ChatApp  # noqa: F401 (Session["ChatApp"])
    from residentd.apps.chat.hub import Hub
    from residentd.apps.chat.presence import User
    from residentd.net.connection import Connection


class ChatSession(Session["ChatApp"]):
    __slots__ = ("hub", "pinged", "push", "user")

    wire: ClassVar[Wire] = LINES

    if TYPE_CHECKING:  # the chat still keys its rooms by the network layer's connections
        conn: Connection

    def __init__(self, conn: Transport) -> None:
        super().__init__(conn)
        self.hub: Hub = self.app.hub
        self.user: User | None = None
        self.pinged = 0.0
        self.push: Callable[[bytes], None] = conn.send_bytes  # this session's send_bytes

    @property
    def defer_writes(self) -> bool:  # type: ignore[override]
        """With a journal, replies leave at the commit point, once their records are written
        (and with ``appendfsync always``, fsynced); without one, as soon as they are made."""
        return self.hub.journal is not None

    def on_connect(self) -> None:
        self.hub.connected(self)

    def on_message(self, request: Any) -> None:
        broker = self.hub.broker
        if broker is not None:  # the request may need Redis: answered in turn (brokered.py)
            broker.submit(self, request)
            return
        try:
            reply = dispatch(self.hub, self, request)
        except ChatError as error:
            self.refuse(request, error)
            return
        if reply is not None:
            reply.id = request.id
            self.send(reply)

    def refuse(self, request: Any, error: ChatError) -> None:
        """Answer ``request`` with the ``error`` reply of ``error``; close after a closing one."""
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
        if hub.broker is not None:  # the rooms are in Redis: this node registers the session
            hub.broker.adopt_rooms(self, user, state["rooms"])
            return
        for room_name in state["rooms"]:
            room = hub.rooms.get(room_name)
            if room is not None and user not in room.members:
                room.add_member(user)  # a guest's membership: not in the snapshot
                user.rooms += (room,)
        hub.adopt(self, user)

    def fail(self, code: ErrorCode, detail: str = "") -> None:
        """Tell the peer why in an ``error`` message, then close with ``code`` as the reason."""
        self.send(p.Error(code=code, detail=detail))
        self.close(code)

    def __repr__(self) -> str:
        name = self.user.name if self.user is not None else "-"
        return f"<{type(self).__name__} conn={self.id} user={name}>"
