"""Sans-IO codecs: bytes in, messages out, limits enforced, no sockets and no loop.

base.py states the contract every codec follows and the connection relies on."""

from residentd.codecs.base import Codec
from residentd.codecs.jsonlines import JsonLinesCodec
from residentd.codecs.length_prefixed import LengthPrefixedCodec
from residentd.codecs.lines import LineCodec
from residentd.codecs.raw import RawCodec

__all__ = ["Codec", "JsonLinesCodec", "LengthPrefixedCodec", "LineCodec", "RawCodec"]
