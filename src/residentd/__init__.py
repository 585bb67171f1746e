"""residentd: resident, event-driven, in-memory network daemons in Python.

The names a daemon author needs are importable from here: ``App``, ``Service`` and ``Session``
to write one, the codecs (``LineCodec``, ``JsonLinesCodec``, ``LengthPrefixedCodec``,
``RawCodec``) to frame its protocol, ``Limits`` to bound it, ``setting`` to declare an app's
own settings (a field of a frozen dataclass: flag, environment variable, config key and help
in one place), ``Server`` to run it in a program of your own (``residentd run`` does it for
you, with signals, logs and reloads), the errors (``ResidentdError``, the root of every
exception residentd raises; ``ProtocolError`` and ``ConfigError``) and ``CloseCode``, the
reasons a connection closes for.

A line echo daemon in a program of your own, stopped gracefully by SIGTERM::

    import asyncio
    import signal

    from residentd import App, LineCodec, Server, Session

    class Echo(Session):
        def on_message(self, line: bytes) -> None:
            self.send(line)

    app = App("echo")
    app.service("echo", Echo, codec=LineCodec, listen=["127.0.0.1:7007"])

    async def main() -> None:
        server = Server(app)
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop()  # the lines already read are answered before the close

    asyncio.run(main())
"""

from residentd.app import App, Service, Session
from residentd.codecs import JsonLinesCodec, LengthPrefixedCodec, LineCodec, RawCodec
from residentd.errors import CloseCode, ConfigError, ProtocolError, ResidentdError
from residentd.limits import Limits
from residentd.net.server import Server
from residentd.settings import setting

__version__ = "0.1.0"

__all__ = [
    "App",
    "CloseCode",
    "ConfigError",
    "JsonLinesCodec",
    "LengthPrefixedCodec",
    "Limits",
    "LineCodec",
    "ProtocolError",
    "RawCodec",
    "ResidentdError",
    "Server",
    "Service",
    "Session",
    "setting",
]
