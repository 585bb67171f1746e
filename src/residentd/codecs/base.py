"""The codec contract: sans-IO framing between bytes and messages, all of it in one place.

A codec is a pure object: it never touches a socket or the loop, so it is tested by feeding it
bytes. A connection owns one and uses it as follows (net/connection_core.py and its C twin do
exactly this; ``tests/core/helpers.feed_events`` does it without a socket).

Input, ``feed(data) -> list``
    Takes any chunk of bytes and returns the complete messages it now holds, in order, keeping a
    partial message for the next call, so the same messages come out however the bytes are
    split. ``feed(b"")`` is allowed and returns what the codec holds that needs no new input.

Errors, ``ProtocolError``
    Input that breaks the protocol or a limit is a ``ProtocolError`` (residentd/errors.py) with
    a stable kebab-case ``code`` and a human ``detail``. The messages decoded before the fault
    are returned normally; the error is *kept pending* and raised by the next ``feed``, whatever
    its data (at once, when no message came before it). So the session sees exactly the
    messages that came before the fault, then the error, as h11 and websockets order them.

    A *recoverable* error (``recoverable=True``: one bad message in a sound stream, such as a
    line that is not JSON) leaves the codec usable: the connection answers it with
    ``error_reply`` and feeds ``b""`` again; the messages after the bad one come out of that
    feed (and a later error waits behind them in turn). It counts toward the connection's
    ``max_bad_messages``. Any other error is fatal: the connection sends ``error_reply`` and
    closes with the error's code as the reason; the codec is not fed again.

Held input, ``buffered: int``
    How many bytes of input the codec holds that have not come out as messages yet. The
    connection reads it after every feed: 0, the common case, costs nothing more; otherwise it
    feeds ``b""`` until that returns nothing (which raises a pending error and gives the
    messages queued behind a recoverable one), then closes with ``input-buffer-full`` if
    ``buffered`` is over ``max_input_buffer``. So a codec keeps ``buffered`` above 0 while it
    holds a pending error or queued messages: 0 must mean that ``feed(b"")`` would return
    nothing and raise nothing.

Output, ``encode(message) -> bytes`` and the optional ``encode_many(messages) -> bytes``
    ``encode`` turns one outgoing message into bytes. ``encode_many``, when a codec has it,
    encodes a list in one call (``Session.send_many`` uses it; the bytes must be those of
    ``encode`` on each, joined); without it the connection joins ``encode`` of each.

The codec's own bytes, the optional ``data_to_send() -> list[bytes]``
    Some protocols answer on their own (a WebSocket pong, the echo of a close frame). Such a
    codec sets the class attribute ``sends_own_data = True`` and queues those bytes for
    ``data_to_send``, which the connection drains after each feed, as websockets' sans-I/O
    protocols do; an empty bytes object in the list means the protocol is over: the connection
    closes (``closed-by-peer``) once what came before it is out. The connection reads the class
    attribute once, so a codec without it costs nothing per chunk.

The error form, ``error_reply(error) -> bytes | None``
    The bytes that tell the peer about ``error`` in the protocol's own form (``ERR <code>``, a
    JSON object, Redis's ``-ERR``, an HTTP status, a WebSocket close frame), or ``None`` when the
    protocol has no error form. It is asked for the codec's own errors and for the core's
    closes that the peer should hear of: the ``CloseCode`` members (errors.py) such as
    ``idle-timeout``, ``input-buffer-full``, ``max-connections``, ``server-shutdown``.

Held input as bytes, the optional ``unparsed() -> bytes | None``
    The partial message held, as the bytes that came in (a pending error is not input), or
    None when the codec holds input it cannot give back (it is then not handed over). A
    codec that has it lets a live upgrade hand its connections over between the two halves of
    a message: the next generation's codec is fed these bytes first (net/handover.py).

Close codes
    A connection closes with a reason: a fatal ``ProtocolError``'s code, a ``CloseCode`` of the
    core, or what the app passes to ``Session.close``. docs/protocol.md lists the codecs' codes;
    ``residentd.errors.CloseCode`` is the list of the core's.
"""

from __future__ import annotations

from typing import Any, Protocol

from residentd.errors import ProtocolError

__all__ = ["Codec", "SendsOwnData"]


class Codec(Protocol):
    """What the connection needs from a codec (the module docstring is the contract)."""

    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> list[Any]: ...

    def encode(self, message: Any) -> bytes: ...

    def error_reply(self, error: ProtocolError) -> bytes | None: ...


class SendsOwnData(Codec, Protocol):
    """A codec with bytes of its own to send (``sends_own_data = True`` on its class)."""

    def data_to_send(self) -> list[bytes]: ...
