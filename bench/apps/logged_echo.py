"""The echo daemon with one INFO log line per message, for bench/log_lag.py."""

from __future__ import annotations

import logging

from residentd import App, LineCodec, Session

log = logging.getLogger("bench.logged_echo")

app = App("logged-echo", "echo that logs every line it answers")


class LoggedEcho(Session):
    __slots__ = ()

    def on_message(self, line: bytes) -> None:
        log.info("echo %d bytes", len(line), extra={"conn": self.conn.id})
        self.send(line)


app.service("echo", LoggedEcho, codec=LineCodec, listen=["127.0.0.1:7007"])
