"""``unparsed()``: a codec's partial input, given back as bytes for a live upgrade.

Whatever the point where a stream is cut, the messages decoded before the cut, then those a
fresh codec decodes from the first codec's ``unparsed()`` and the rest of the stream, are the
messages of the whole stream: the next generation finishes a message the last one started.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from residentd.codecs import lines as lines_module
from residentd.codecs.jsonlines import JsonLinesCodec
from residentd.codecs.length_prefixed import LengthPrefixedCodec
from residentd.codecs.resp import RespCodec
from residentd.net.handover import loads

CODECS: dict[str, Callable[[], Any]] = {
    "lines-python": lines_module.PyLineCodec,
    "lines": lines_module.LineCodec,  # the C one when built
    "jsonlines": JsonLinesCodec,
    "length-prefixed": LengthPrefixedCodec,
    "resp": RespCodec,
}

words = st.binary(min_size=0, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)


def stream(kind: str, items: list[bytes]) -> bytes:
    if kind.startswith("lines"):
        return b"".join(item + b"\n" for item in items)
    if kind == "jsonlines":
        return b"".join(b'{"k": "%s"}\n' % item.hex().encode() for item in items)
    if kind == "length-prefixed":
        return b"".join(len(item).to_bytes(4, "big") + item for item in items)
    parts = []
    for item in items:  # each item a command of three arguments, one of them the item
        argv = [b"SET", b"key", item]
        parts.append(b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv))
    return b"".join(parts)


@pytest.mark.parametrize("kind", sorted(CODECS))
@given(items=st.lists(words, min_size=1, max_size=6), data=st.data())
def test_a_cut_stream_decodes_the_same_across_two_codecs(
    kind: str, items: list[bytes], data: st.DataObject
) -> None:
    wire = stream(kind, items)
    whole = CODECS[kind]().feed(wire)
    cut = data.draw(st.integers(0, len(wire)), label="cut")
    pieces = data.draw(st.integers(1, 3), label="pieces before the cut")
    first = CODECS[kind]()
    got: list[Any] = []
    step = max(1, cut // pieces)
    for start in range(0, cut, step):
        got += first.feed(wire[start : min(start + step, cut)])
    held = first.unparsed()
    assert isinstance(held, bytes)
    assert held or not first.buffered  # (RESP's buffered leaves out the headers parsed)
    second = CODECS[kind]()
    got += second.feed(held + wire[cut:])
    assert got == whole


def test_only_plain_data_crosses_a_handover() -> None:
    import pickle

    assert loads(pickle.dumps({"a": [b"x", 1, 2.5, None, (True,)]})) == {
        "a": [b"x", 1, 2.5, None, (True,)]
    }
    with pytest.raises(pickle.UnpicklingError, match="only plain data"):
        loads(pickle.dumps(ValueError("no classes")))
