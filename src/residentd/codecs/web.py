"""A web port's codec: HTTP/1.1 requests, then WebSocket once a request upgrades.

A connection to a web port starts as HTTP: ``HttpRequestCodec`` reads its requests, keep-alive
and pipelined ones included, and the session answers each in order. A request that asks to
switch to WebSocket stops the HTTP codec (see ``HttpRequestCodec.take_upgrade``); if the session
takes it, ``upgrade()`` hands that request's raw head and every byte after it to a new
``WebSocketCodec``, which checks the handshake (websockets' ``ServerProtocol``, the Origin
allowlist) and from then on frames the connection. Before the upgrade, messages are
``HttpRequest`` objects and errors are HTTP responses; after it, they are the WebSocket codec's.

A live upgrade hands an open WebSocket over: ``unparsed()`` is the WebSocket codec's (a
connection still on HTTP gives back nothing, so it is not handed over), and in the next
generation ``resume_websocket()`` makes the WebSocket codec open from the start, with no
handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from websockets.frames import CloseCode

from residentd.codecs.http import HttpRequest, HttpRequestCodec
from residentd.codecs.websocket import Request, WebSocketCodec
from residentd.errors import ProtocolError, ProtocolErrorCode

__all__ = ["WebCodec"]


class WebCodec:
    # Once upgraded, the WebSocket's pongs and close echoes (see ``data_to_send``).
    sends_own_data: ClassVar[bool] = True

    __slots__ = ("_make_websocket", "feed", "http", "websocket")

    def __init__(
        self, http: HttpRequestCodec, make_websocket: Callable[..., WebSocketCodec]
    ) -> None:
        """``make_websocket(handshake=True)``: a new WebSocket codec (``handshake=False``: one
        open already)."""
        self.http = http
        self.websocket: WebSocketCodec | None = None
        self._make_websocket = make_websocket
        # ``feed(data)``: the current protocol's codec's own, so a chunk costs no call here.
        self.feed: Callable[[bytes], list[Any]] = http.feed

    @property
    def open(self) -> bool:
        """True while the connection is an open WebSocket."""
        return self.websocket is not None and self.websocket.open

    @property
    def buffered(self) -> int:
        if self.websocket is not None:
            return self.websocket.buffered
        return self.http.buffered

    def upgrade(self, request: HttpRequest) -> tuple[bytes, list[Any]]:
        """Switch to WebSocket for ``request`` (the last one the HTTP codec read): the handshake
        response (101, or an HTTP error after which the connection must close, ``open``
        staying false) and the messages that arrived after the request."""
        assert self.websocket is None and request.upgrade is not None
        websocket = self.websocket = self._make_websocket()
        self.feed = websocket.feed
        try:
            items = websocket.feed(self.http.take_upgrade())
        except ProtocolError as error:
            return websocket.error_reply(error) or b"", []
        if not items or type(items[0]) is not Request:
            return websocket.error_reply(
                ProtocolError(ProtocolErrorCode.BAD_REQUEST, "no handshake")
            ) or b"", []
        return websocket.accept(items[0]), items[1:]

    def resume_websocket(self) -> None:
        """The connection is an open WebSocket already (handed over by a live upgrade): frames
        from the first byte. Before any input."""
        assert self.websocket is None and not self.http.buffered
        websocket = self.websocket = self._make_websocket(handshake=False)
        self.feed = websocket.feed

    def unparsed(self) -> bytes | None:
        """The open WebSocket's held input (codecs/base.py); None on HTTP with input held."""
        if self.websocket is not None:
            return self.websocket.unparsed()
        return None if self.http.buffered else b""

    def data_to_send(self) -> list[bytes]:
        """The WebSocket protocol's own bytes (none before the upgrade)."""
        if self.websocket is None:
            return []
        return self.websocket.data_to_send()

    def encode(self, message: Any) -> bytes:
        if self.websocket is not None:
            return self.websocket.encode(message)
        return bytes(message)

    def error_reply(self, error: ProtocolError) -> bytes | None:
        if self.websocket is not None:
            return self.websocket.error_reply(error)
        return self.http.error_reply(error)

    def close_frame(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> bytes:
        """A close frame when the WebSocket is open, else nothing."""
        if self.websocket is None:
            return b""
        return self.websocket.close_frame(code, reason)
