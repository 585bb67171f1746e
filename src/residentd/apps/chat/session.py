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

from residentd.app import Session, Transport
from residentd.apps.chat import protocol as p
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

    if TYPE_CHECKING:  # the chat still keys its rooms by the network layer's connections
        conn: Connection

    def __init__(self, conn: Transport) -> None:
        super().__init__(conn)
        self.hub: Hub = cast("ChatApp", conn.app).hub
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

    def fail(self, code: str, detail: str = "") -> None:
        """Tell the peer why in an ``error`` message, then close with ``code`` as the reason."""
        self.send(p.Error(code=code, detail=detail))
        self.close(code)

    def __repr__(self) -> str:
        name = self.user.name if self.user is not None else "-"
        return f"<{type(self).__name__} conn={self.conn.id} user={name}>"
