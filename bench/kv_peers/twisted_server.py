"""A minimal Redis on Twisted: a ``Protocol`` on the epoll reactor, one write per chunk."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import protocol, reactor  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import answer, new_reader, port_from_args  # noqa: E402


class Redis(protocol.Protocol):
    def connectionMade(self) -> None:
        self.reader = new_reader()

    def dataReceived(self, data: bytes) -> None:
        replies = answer(self.reader, data)
        if replies:
            self.transport.write(replies)


class Factory(protocol.Factory):
    protocol = Redis


if __name__ == "__main__":
    port = port_from_args(__doc__ or "")
    reactor_: Any = reactor
    reactor_.listenTCP(port, Factory(), backlog=1024, interface="127.0.0.1")
    reactor_.run()
