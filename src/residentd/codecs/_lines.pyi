# Types of the C module _lines.c: the same class as lines.py's Python LineCodec.

from residentd.codecs.lines import PyLineCodec as LineCodec

__all__ = ["LineCodec"]
