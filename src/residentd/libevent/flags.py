"""The constants of the libevent API: event flags, loop flags, buffer-event flags, EOL styles.

They keep libevent's names and values, so code and logs ported from C or from PHP's libevent
extension read the same. They are plain ints, not ``enum.IntFlag``: they are tested and combined
on every callback, and ``describe`` gives the readable form where one is wanted (reprs, logs).
"""

from __future__ import annotations

from typing import Final

# What an event waits for; also what its callback is told happened (``what``).
EV_TIMEOUT: Final = 0x01
EV_READ: Final = 0x02
EV_WRITE: Final = 0x04
EV_SIGNAL: Final = 0x08
# The event stays pending after it fires (and its timeout, if any, starts again).
EV_PERSIST: Final = 0x10

# ``EventBase.loop`` flags.
EVLOOP_ONCE: Final = 0x01
EVLOOP_NONBLOCK: Final = 0x02
EVLOOP_NO_EXIT_ON_EMPTY: Final = 0x04

# What a buffer event's event callback is told (``events``).
BEV_EVENT_READING: Final = 0x01
BEV_EVENT_WRITING: Final = 0x02
BEV_EVENT_EOF: Final = 0x10
BEV_EVENT_ERROR: Final = 0x20
BEV_EVENT_TIMEOUT: Final = 0x40
BEV_EVENT_CONNECTED: Final = 0x80
# The names PHP's libevent extension (and libevent 1's evbuffer.h) give the same flags.
EVBUFFER_READ: Final = BEV_EVENT_READING
EVBUFFER_WRITE: Final = BEV_EVENT_WRITING
EVBUFFER_EOF: Final = BEV_EVENT_EOF
EVBUFFER_ERROR: Final = BEV_EVENT_ERROR
EVBUFFER_TIMEOUT: Final = BEV_EVENT_TIMEOUT

# ``BufferEvent`` options.
BEV_OPT_CLOSE_ON_FREE: Final = 0x01

# End-of-line styles for ``Buffer.readln``.
EVBUFFER_EOL_ANY: Final = 0
EVBUFFER_EOL_CRLF: Final = 1
EVBUFFER_EOL_CRLF_STRICT: Final = 2
EVBUFFER_EOL_LF: Final = 3
EVBUFFER_EOL_NUL: Final = 4

_EV_NAMES: Final = (
    (EV_TIMEOUT, "EV_TIMEOUT"),
    (EV_READ, "EV_READ"),
    (EV_WRITE, "EV_WRITE"),
    (EV_SIGNAL, "EV_SIGNAL"),
    (EV_PERSIST, "EV_PERSIST"),
)
_BEV_NAMES: Final = (
    (BEV_EVENT_READING, "BEV_EVENT_READING"),
    (BEV_EVENT_WRITING, "BEV_EVENT_WRITING"),
    (BEV_EVENT_EOF, "BEV_EVENT_EOF"),
    (BEV_EVENT_ERROR, "BEV_EVENT_ERROR"),
    (BEV_EVENT_TIMEOUT, "BEV_EVENT_TIMEOUT"),
    (BEV_EVENT_CONNECTED, "BEV_EVENT_CONNECTED"),
)


def describe(flags: int, *, bev: bool = False) -> str:
    """``EV_READ|EV_PERSIST`` for ``0x12``; ``bev=True`` names ``BEV_EVENT_*`` flags instead."""
    table = _BEV_NAMES if bev else _EV_NAMES
    names = [name for bit, name in table if flags & bit]
    rest = flags & ~sum(bit for bit, _ in table)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"
