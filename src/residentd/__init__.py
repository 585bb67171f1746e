"""residentd: resident, event-driven, in-memory network daemons in Python.

The names a daemon author needs are importable from here: ``App`` and ``Session`` to write
one, the codecs to frame its protocol, ``Limits`` to bound it and ``serve`` to run it in a
program of your own (``residentd run`` does it for you).
"""

from residentd.app import App, Service, Session
from residentd.codecs import JsonLinesCodec, LengthPrefixedCodec, LineCodec, RawCodec
from residentd.errors import CloseCode, ConfigError, ProtocolError, ResidentdError
from residentd.limits import Limits
from residentd.net.server import Server

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
]
