"""Chat over WebSocket, on the HTTP port: ``/ws`` upgrades, ``/api/`` is the backend API, every
other path is a page.

Each connection to the HTTP port starts as HTTP/1.1 (``WebCodec``: keep-alive and pipelined
requests, answered in order). ``WebSocketSession`` routes each request: ``GET /ws`` with an
upgrade goes through the WebSocket handshake (Origin allowlist included) and, once open, the
connection is a chat connection like a TCP one, one JSON message per text frame;
``/api/v1/...`` is answered by ``api.py``, anything else by ``http.py``. Bytes the WebSocket
protocol sends on its own (pongs, the echo of a close frame) are the connection's business
(``WebCodec.data_to_send``): they never reach the session.

``ChatFormat`` puts the chat protocol in text frames: the same decoder and error shape as the
TCP lines, so both transports speak exactly the same messages.
"""

from __future__ import annotations

from typing import Any

from residentd.apps.chat import api, http
from residentd.apps.chat import protocol as p
from residentd.apps.chat.session import ChatSession
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.wire import TEXT_FRAMES
from residentd.codecs.http import HttpRequest, HttpRequestCodec, reply
from residentd.codecs.web import WebCodec
from residentd.codecs.websocket import WebSocketCodec
from residentd.errors import ProtocolError

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


def websocket_codec(settings: ChatSettings, handshake: bool = True) -> WebSocketCodec:
    origins = None if "*" in settings.origins else tuple(settings.origins)
    return WebSocketCodec(
        FORMAT, origins=origins, max_message=settings.max_message, handshake=handshake
    )


def web_codec(settings: ChatSettings) -> WebCodec:
    """The HTTP port's codec: HTTP/1.1 with the API's body limit, WebSocket after ``/ws``."""
    return WebCodec(
        HttpRequestCodec(max_body=settings.api_max_body),
        lambda handshake=True: websocket_codec(settings, handshake),
    )


class WebSocketSession(ChatSession):
    __slots__ = ()
    wire = TEXT_FRAMES

    def on_connect(self) -> None:
        """Not a chat connection until the upgrade (see ``_upgrade``)."""

    # -- live upgrade ----------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any] | None:
        """An open WebSocket is handed over as a TCP chat connection is (``ChatSession``); one
        still on HTTP, or closing, is not: it gets the goodbye of a stop."""
        if not self.codec.open:
            return None
        return ChatSession.export_state(self)

    def import_state(self, state: dict[str, Any]) -> None:
        """Only open WebSockets are exported: this one's codec starts open, no handshake."""
        self.codec.resume_websocket()
        ChatSession.import_state(self, state)

    @property
    def codec(self) -> WebCodec:
        codec = self.conn.codec
        assert isinstance(codec, WebCodec)
        return codec

    def on_message(self, message: Any) -> None:
        if type(message) is HttpRequest:
            self._http(message)
        elif self.codec.open:
            ChatSession.on_message(self, message)

    def _http(self, request: HttpRequest) -> None:
        """Answer one HTTP request, in the order they came."""
        if self.conn.closing:
            return
        path = request.path
        if path == WEBSOCKET_PATH and request.upgrade is not None:
            self._upgrade(request)
            return
        app = self.app
        if path == WEBSOCKET_PATH:
            text = b"this path takes a WebSocket upgrade\n"
            answer = reply(request, 426, text, headers={"Upgrade": "websocket"})
        elif path.startswith(api.PREFIX):
            answer = api.answer(app, request, self.conn)
        else:
            answer = http.answer(request, app.sampler)
        self.send_bytes(answer)
        if not request.keep_alive or request.upgrade is not None:  # an upgrade not taken
            self.close("http-done")

    def _upgrade(self, request: HttpRequest) -> None:
        codec = self.codec
        answer, messages = codec.upgrade(request)
        self.send_bytes(answer)
        if not codec.open:
            self.close("handshake-refused")
            return
        self.hub.connected(self)
        for message in messages:  # frames sent right behind the handshake
            self.on_message(message)

    def close(self, reason: str = "closed") -> None:
        """Close, with a close frame first when the WebSocket is open (1008: the app's rule)."""
        frame = self.codec.close_frame(1008, reason)
        if frame:
            self.send_bytes(frame)
        super().close(reason)

    def on_shutdown(self) -> None:
        if self.codec.open:
            ChatSession.on_shutdown(self)
            self.send_bytes(self.codec.close_frame(1001, "server-shutdown"))
