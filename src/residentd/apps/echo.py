"""The echo daemon: every line comes back as it was sent.

``residentd run echo --listen 127.0.0.1:7007``. A line over ``max_line`` bytes (64 KiB by
default) gets ``ERR line-too-long limit=65536`` and the connection is closed. It is the smallest
complete residentd app and the one bench/echo.py measures against raw servers.
"""

from __future__ import annotations

from dataclasses import dataclass

from residentd.app import App, Session
from residentd.codecs.lines import DEFAULT_MAX_LINE, LineCodec
from residentd.settings import setting


@dataclass(frozen=True, slots=True)
class EchoSettings:
    max_line: int = setting(DEFAULT_MAX_LINE, "longest line accepted, in bytes", minimum=1)


app = App("echo", "line echo over TCP or Unix sockets")
app.declare(EchoSettings)


class Echo(Session[App]):
    __slots__ = ()

    def on_message(self, line: bytes) -> None:
        self.send(line)

    def on_messages(self, lines: list[bytes]) -> None:
        # Every line of a chunk goes back in one buffer: pipelined peers cost one call, made on
        # the transport itself (Session.send_many would add a Python frame per chunk).
        self.conn.send_many(lines)

    # A live upgrade hands an echo connection over as it is: it has no state of its own.
    def export_state(self) -> dict[str, object]:
        return {}

    def import_state(self, state: dict[str, object]) -> None:
        pass


def line_codec() -> LineCodec:
    return LineCodec(max_line=app.current(EchoSettings).max_line)


app.service("echo", Echo, codec=line_codec, listen=["127.0.0.1:7007"])
