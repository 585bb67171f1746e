"""A libevent-style API on residentd's event loop: event bases, events, buffers, buffer events.

For code written against libevent (in C, or through PHP's libevent extension) and for people who
think in its terms. Everything runs on the same uvloop or asyncio loop as the rest of residentd,
so a daemon may mix both styles. docs/porting-from-libevent.md maps libevent's functions to these
names and states where the behaviour differs.

    base = EventBase()
    Event(base, listener, EV_READ | EV_PERSIST, on_accept).add()
    Timer(base, on_tick, persist=True).add(1.0)
    SignalEvent(base, signal.SIGTERM, on_term).add()
    base.dispatch()
"""

from residentd.libevent.base import EventBase
from residentd.libevent.buffer import Buffer
from residentd.libevent.bufferevent import (
    DEFAULT_READ_SIZE,
    Address,
    BevCallback,
    BevEventCallback,
    BufferEvent,
)
from residentd.libevent.errors import UnwatchableFileError
from residentd.libevent.event import Event, EventCallback, SignalEvent, Timer
from residentd.libevent.flags import (
    BEV_EVENT_CONNECTED,
    BEV_EVENT_EOF,
    BEV_EVENT_ERROR,
    BEV_EVENT_READING,
    BEV_EVENT_TIMEOUT,
    BEV_EVENT_WRITING,
    BEV_OPT_CLOSE_ON_FREE,
    EV_PERSIST,
    EV_READ,
    EV_SIGNAL,
    EV_TIMEOUT,
    EV_WRITE,
    EVBUFFER_EOF,
    EVBUFFER_EOL_ANY,
    EVBUFFER_EOL_CRLF,
    EVBUFFER_EOL_CRLF_STRICT,
    EVBUFFER_EOL_LF,
    EVBUFFER_EOL_NUL,
    EVBUFFER_ERROR,
    EVBUFFER_READ,
    EVBUFFER_TIMEOUT,
    EVBUFFER_WRITE,
    EVLOOP_NO_EXIT_ON_EMPTY,
    EVLOOP_NONBLOCK,
    EVLOOP_ONCE,
    describe,
)

__all__ = [
    "BEV_EVENT_CONNECTED",
    "BEV_EVENT_EOF",
    "BEV_EVENT_ERROR",
    "BEV_EVENT_READING",
    "BEV_EVENT_TIMEOUT",
    "BEV_EVENT_WRITING",
    "BEV_OPT_CLOSE_ON_FREE",
    "DEFAULT_READ_SIZE",
    "EVBUFFER_EOF",
    "EVBUFFER_EOL_ANY",
    "EVBUFFER_EOL_CRLF",
    "EVBUFFER_EOL_CRLF_STRICT",
    "EVBUFFER_EOL_LF",
    "EVBUFFER_EOL_NUL",
    "EVBUFFER_ERROR",
    "EVBUFFER_READ",
    "EVBUFFER_TIMEOUT",
    "EVBUFFER_WRITE",
    "EVLOOP_NONBLOCK",
    "EVLOOP_NO_EXIT_ON_EMPTY",
    "EVLOOP_ONCE",
    "EV_PERSIST",
    "EV_READ",
    "EV_SIGNAL",
    "EV_TIMEOUT",
    "EV_WRITE",
    "Address",
    "BevCallback",
    "BevEventCallback",
    "Buffer",
    "BufferEvent",
    "Event",
    "EventBase",
    "EventCallback",
    "SignalEvent",
    "Timer",
    "UnwatchableFileError",
    "describe",
]
