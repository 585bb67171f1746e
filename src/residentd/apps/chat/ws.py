"""Chat over WebSocket, on the HTTP port: ``/ws`` upgrades, every other path is a page.

Each connection to the HTTP port starts as an HTTP request, parsed by websockets' sans-I/O
protocol inside ``WebSocketCodec``. ``WebSocketSession`` routes it: ``GET /ws`` goes through
the handshake (Origin allowlist included) and, once open, the connection is a chat connection
like a TCP one, one JSON message per text frame; any other request is answered by ``http.py``
and the connection closes. Bytes the WebSocket protocol sends on its own (pongs, the echo of a
close frame) reach the session as ``Outgoing`` and are passed on.

``ChatFormat`` puts the chat protocol in text frames: the same decoder and error shape as the
TCP lines, so both transports speak exactly the same messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from residentd.apps.chat import http
from residentd.apps.chat import protocol as p
from residentd.apps.chat.rooms import WS
from residentd.apps.chat.session import ChatSession
from residentd.apps.chat.settings import ChatSettings
from residentd.codecs.websocket import Outgoing, Request, WebSocketCodec
from residentd.errors import ProtocolError

if TYPE_CHECKING:
    from residentd.apps.chat.daemon import ChatApp

WEBSOCKET_PATH = "/ws"


class ChatFormat:
    """The chat protocol in WebSocket text frames."""

    def decode(self, payload: bytes) -> Any:
        return p.decode_request(payload)

    def encode(self, message: Any) -> bytes:
        return p.encode(message)

    def error(self, error: ProtocolError) -> bytes:
        return p.protocol_error_payload(error)


FORMAT = ChatFormat()


def websocket_codec(settings: ChatSettings) -> WebSocketCodec:
    origins = None if "*" in settings.origins else tuple(settings.origins)
    return WebSocketCodec(FORMAT, origins=origins, max_message=settings.max_message)


class WebSocketSession(ChatSession):
    __slots__ = ()
    wire = WS

    def on_connect(self) -> None:
        """Not a chat connection until the upgrade (see ``_upgrade``)."""

    @property
    def codec(self) -> WebSocketCodec:
        codec = self.conn.codec
        assert isinstance(codec, WebSocketCodec)
        return codec

    def on_message(self, message: Any) -> None:
        kind = type(message)
        if kind is Outgoing:
            self.conn.send_bytes(message.data)
            if message.close:
                self.close("closed-by-peer")
        elif kind is Request:
            if message.path.partition("?")[0] == WEBSOCKET_PATH:
                self._upgrade(message)
            else:
                sampler = cast("ChatApp", self.conn.server.app).sampler
                self.conn.send_bytes(http.answer(self.codec, message, sampler))
                self.close("http-done")
        elif self.codec.open:
            ChatSession.on_message(self, message)

    def _upgrade(self, request: Request) -> None:
        codec = self.codec
        self.conn.send_bytes(codec.accept(request))
        if codec.open:
            self.hub.connected(self)
        else:
            self.close("handshake-refused")

    def close(self, reason: str = "closed") -> None:
        """Close, with a close frame first when the WebSocket is open (1008: the app's rule)."""
        frame = self.codec.close_frame(1008, reason)
        if frame:
            self.conn.send_bytes(frame)
        super().close(reason)

    def on_shutdown(self) -> None:
        if self.codec.open:
            ChatSession.on_shutdown(self)
            self.conn.send_bytes(self.codec.close_frame(1001, "server-shutdown"))
