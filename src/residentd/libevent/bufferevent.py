"""``BufferEvent``: libevent's socket buffer event, buffered I/O on one stream with callbacks.

A buffer event owns an input and an output ``Buffer`` and two persistent events on its fd. The
read event moves up to ``read_size`` bytes from the fd into the input per readiness and then
calls ``readcb(bev, arg)`` if the input holds at least the read low watermark. At the read high
watermark the read event is deleted; the input's drain callback adds it again as soon as the
reader has taken the input below the mark. ``write`` appends to the output and adds the write
event, which writes what the fd accepts and calls ``writecb(bev, arg)`` once the output is down
to the write low watermark (0 unless set: "all sent"); with nothing left to write it is deleted.

Everything else goes to ``eventcb(bev, events, arg)``: ``BEV_EVENT_CONNECTED`` when
``socket_connect`` succeeds, and ``BEV_EVENT_EOF``, ``BEV_EVENT_ERROR`` or ``BEV_EVENT_TIMEOUT``
with ``BEV_EVENT_READING`` or ``BEV_EVENT_WRITING``, after which that direction is disabled, as
in libevent. The read and write timeouts are the timeouts of the two events, so they measure
time without progress: a read timeout runs while reading is enabled and nothing arrives, a write
timeout while output is waiting and the peer takes none of it.

A new buffer event has writing enabled and reading disabled, as in libevent: call
``enable(EV_READ)`` to start reading. The fd is made non-blocking. With
``BEV_OPT_CLOSE_ON_FREE``, and always for a socket that ``socket_connect`` created, ``free``
closes it.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from typing import Any, Final

from residentd.libevent.base import EventBase
from residentd.libevent.buffer import Buffer
from residentd.libevent.event import Event
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
    EV_TIMEOUT,
    EV_WRITE,
    describe,
)

BevCallback = Callable[["BufferEvent", Any], object]
"""``readcb(bev, arg)`` and ``writecb(bev, arg)``."""
BevEventCallback = Callable[["BufferEvent", int, Any], object]
"""``eventcb(bev, events, arg)`` with ``BEV_EVENT_*`` flags."""
Address = tuple[str, int] | tuple[str, int, int, int] | str
"""A numeric ``(host, port)`` (IPv4 or IPv6) or a Unix socket path."""

DEFAULT_READ_SIZE: Final = 64 * 1024
_RETRY: Final = (BlockingIOError, InterruptedError)


class BufferEvent:
    __slots__ = (
        "__weakref__",
        "_arg",
        "_base",
        "_connecting",
        "_enabled",
        "_error",
        "_eventcb",
        "_fd",
        "_freed",
        "_input",
        "_options",
        "_output",
        "_owns_fd",
        "_read_ev",
        "_read_high",
        "_read_low",
        "_read_size",
        "_read_suspended",
        "_readcb",
        "_sock",
        "_timeout_read",
        "_timeout_write",
        "_wrapped",
        "_write_ev",
        "_write_low",
        "_writecb",
    )

    def __init__(
        self,
        base: EventBase,
        fd: socket.socket | int | None = None,
        options: int = 0,
        *,
        read_size: int = DEFAULT_READ_SIZE,
    ) -> None:
        """``bufferevent_socket_new``: ``fd`` may be None until ``socket_connect``."""
        if read_size < 1:
            raise ValueError(f"read_size must be at least 1, not {read_size!r}")
        self._base = base
        self._read_size = read_size
        self._input = Buffer()
        self._output = Buffer()
        self._readcb: BevCallback | None = None
        self._writecb: BevCallback | None = None
        self._eventcb: BevEventCallback | None = None
        self._arg: Any = None
        self._enabled = EV_WRITE
        self._read_suspended = False
        self._connecting = False
        self._read_low = self._read_high = self._write_low = 0
        self._timeout_read: float | None = None
        self._timeout_write: float | None = None
        self._error: OSError | None = None
        self._freed = False
        self._options = options
        self._owns_fd = bool(options & BEV_OPT_CLOSE_ON_FREE)
        self._sock: socket.socket | None = None
        self._wrapped = False  # _sock was made here around the caller's int fd.
        self._fd = -1
        self._read_ev: Event | None = None
        self._write_ev: Event | None = None
        if fd is not None:
            self._attach(fd)

    def __repr__(self) -> str:
        state = "freed" if self._freed else f"enabled={describe(self._enabled)}"
        return (
            f"<BufferEvent fd={self._fd} {state} input={len(self._input)}"
            f" output={len(self._output)}>"
        )

    # Accessors.

    @property
    def base(self) -> EventBase:
        return self._base

    @property
    def fd(self) -> int:
        """The descriptor, or -1 before ``socket_connect`` (``bufferevent_getfd``)."""
        return self._fd

    @property
    def input(self) -> Buffer:
        """Bytes read and not yet taken (``bufferevent_get_input``)."""
        return self._input

    @property
    def output(self) -> Buffer:
        """Bytes written and not yet sent (``bufferevent_get_output``)."""
        return self._output

    @property
    def enabled(self) -> int:
        """``EV_READ``/``EV_WRITE``, whichever is enabled (``bufferevent_get_enabled``)."""
        return self._enabled

    @property
    def error(self) -> OSError | None:
        """The error behind the last ``BEV_EVENT_ERROR``."""
        return self._error

    # Setup.

    def setcb(
        self,
        readcb: BevCallback | None,
        writecb: BevCallback | None,
        eventcb: BevEventCallback | None,
        arg: Any = None,
    ) -> None:
        """Set the three callbacks and the argument they get (``bufferevent_setcb``)."""
        self._readcb = readcb
        self._writecb = writecb
        self._eventcb = eventcb
        self._arg = arg

    def enable(self, what: int) -> None:
        """Start reading and/or writing (``EV_READ``, ``EV_WRITE``; ``EV_PERSIST``, which PHP
        code often adds, is accepted and changes nothing: a buffer event's I/O persists)."""
        self._check_live()
        self._enabled |= _directions(what)
        self._update()

    def disable(self, what: int) -> None:
        """Stop reading and/or writing; buffered data stays where it is."""
        self._check_live()
        self._enabled &= ~_directions(what)
        self._update()

    def setwatermark(self, what: int, low: int, high: int) -> None:
        """Set the ``EV_READ`` and/or ``EV_WRITE`` watermarks in bytes (0: none).

        Reading: ``readcb`` runs only when the input holds at least ``low`` bytes, and reading
        stops while it holds ``high`` or more. Writing: ``writecb`` runs when the output drains to
        ``low`` or less; a write ``high`` is accepted and, as in libevent's socket buffer events,
        not used.
        """
        if low < 0 or high < 0 or (high and high < low):
            raise ValueError(f"watermarks need 0 <= low <= high (or high 0), not {low}, {high}")
        if what & EV_READ:
            self._read_low = low
            self._read_high = high
            self._set_read_suspended(bool(high) and len(self._input) >= high)
        if what & EV_WRITE:
            self._write_low = low

    def set_timeouts(self, read: float | None, write: float | None) -> None:
        """Set the read and write timeouts in seconds (None or 0: no timeout, as in libevent
        and PHP's ``event_buffer_timeout_set``)."""
        read = _timeout(read, "read")
        write = _timeout(write, "write")
        self._timeout_read = read
        self._timeout_write = write
        for event, timeout in ((self._read_ev, read), (self._write_ev, write)):
            if event is not None and event.pending():
                event.delete()
                event.add(timeout)

    def socket_connect(self, address: Address) -> None:
        """Connect to a numeric address without blocking (``bufferevent_socket_connect``).

        Without an fd yet, a socket of the address's family is made (and closed on ``free``).
        ``eventcb`` later gets ``BEV_EVENT_CONNECTED`` or ``BEV_EVENT_ERROR``; reading and
        writing start, as enabled, once connected.
        """
        self._check_live()
        if self._connecting:
            raise RuntimeError("this BufferEvent is already connecting")
        if self._fd < 0:
            self._owns_fd = True
            self._attach(socket.socket(_family(address), socket.SOCK_STREAM))
        err = self._socket().connect_ex(address)
        if err in (0, errno.EINPROGRESS):
            # Either way the socket turns writable once the outcome is known.
            self._connecting = True
            self._update()
        else:
            self._base.event_loop.call_soon(self._connect_failed, err)

    def setfd(self, fd: socket.socket | int | None) -> None:
        """Operate on another descriptor (``bufferevent_setfd``, PHP's ``event_buffer_fd_set``).

        Buffers, callbacks, watermarks, timeouts and the enabled directions carry over, as in
        libevent; the new descriptor is made non-blocking and is closed by ``free`` only with
        ``BEV_OPT_CLOSE_ON_FREE``. The old descriptor is left open, unless the buffer event owned
        it (``BEV_OPT_CLOSE_ON_FREE``, or made by ``socket_connect``): then it is closed here,
        where libevent would leak it. ``None`` detaches the buffer event from any descriptor.
        """
        self._check_live()
        for event in (self._read_ev, self._write_ev):
            if event is not None:
                event.free()
        self._read_ev = self._write_ev = None
        self._release_fd()
        self._connecting = False
        self._error = None
        self._owns_fd = bool(self._options & BEV_OPT_CLOSE_ON_FREE)
        if fd is not None:
            self._attach(fd)
            self._update()

    # Reading and writing.

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` for sending (``bufferevent_write``)."""
        self._check_live()
        if data:
            self._output.add(data)
            self._update_write()

    def write_buffer(self, buf: Buffer) -> None:
        """Move all of ``buf`` to the output (``bufferevent_write_buffer``)."""
        self._check_live()
        self._output.add_buffer(buf)
        self._update_write()

    def read(self, n: int = -1) -> bytes:
        """Take up to ``n`` bytes (all for ``n < 0``) from the input (``bufferevent_read``)."""
        return self._input.remove(n)

    def read_buffer(self, buf: Buffer) -> None:
        """Move all of the input to ``buf`` (``bufferevent_read_buffer``)."""
        buf.add_buffer(self._input)

    def free(self) -> None:
        """Stop all I/O, drop the callbacks, and close the fd if it is owned
        (``bufferevent_free``). Output not yet sent is dropped."""
        if self._freed:
            return
        self._freed = True
        for event in (self._read_ev, self._write_ev):
            if event is not None:
                event.free()
        self._read_ev = self._write_ev = None
        self._input.drain_callback = None
        self.setcb(None, None, None)
        self._release_fd()

    # Internals.

    def _release_fd(self) -> None:
        # Forget the descriptor, closing it if it is owned.
        sock, self._sock = self._sock, None
        if sock is not None and self._wrapped and not self._owns_fd:
            sock.detach()
        elif sock is not None and self._owns_fd:
            sock.close()
        elif self._owns_fd and self._fd >= 0:
            os.close(self._fd)
        self._fd = -1
        self._wrapped = False

    def _check_live(self) -> None:
        if self._freed:
            raise RuntimeError("this BufferEvent was freed")

    def _attach(self, fd: socket.socket | int) -> None:
        if isinstance(fd, socket.socket):
            self._sock = fd
            fd.setblocking(False)
            self._fd = fd.fileno()
        else:
            os.set_blocking(fd, False)
            self._fd = fd
        self._read_ev = Event(self._base, self._fd, EV_READ | EV_PERSIST, self._on_read)
        self._write_ev = Event(self._base, self._fd, EV_WRITE | EV_PERSIST, self._on_write)

    def _socket(self) -> socket.socket:
        if self._sock is None:
            self._sock = socket.socket(fileno=self._fd)
            self._wrapped = True
        return self._sock

    def _update(self) -> None:
        self._update_read()
        self._update_write()

    def _update_read(self) -> None:
        event = self._read_ev
        if event is None:
            return
        if self._enabled & EV_READ and not self._read_suspended and not self._connecting:
            if not event.pending():
                event.add(self._timeout_read)
        elif event.pending():
            event.delete()

    def _update_write(self) -> None:
        event = self._write_ev
        if event is None:
            return
        if self._connecting or (self._enabled & EV_WRITE and self._output):
            if not event.pending():
                event.add(self._timeout_write)
        elif event.pending():
            event.delete()

    def _set_read_suspended(self, suspended: bool) -> None:
        self._read_suspended = suspended
        self._input.drain_callback = self._input_drained if suspended else None
        self._update_read()

    def _input_drained(self) -> None:
        if not self._read_high or len(self._input) < self._read_high:
            self._set_read_suspended(False)

    def _on_read(self, fd: int, what: int, arg: Any) -> None:
        if what & EV_TIMEOUT:
            self._fail(BEV_EVENT_READING | BEV_EVENT_TIMEOUT)
            return
        data = self._input
        size = self._read_size
        high = self._read_high
        if high:
            size = min(size, high - len(data))
            if size <= 0:
                self._set_read_suspended(True)
                return
        try:
            n = data.read_from(fd, size)
        except _RETRY:
            return
        except OSError as exc:
            self._fail(BEV_EVENT_READING | BEV_EVENT_ERROR, exc)
            return
        if not n:
            self._fail(BEV_EVENT_READING | BEV_EVENT_EOF)
            return
        if high and len(data) >= high:
            self._set_read_suspended(True)
        if self._readcb is not None and len(data) >= self._read_low:
            self._readcb(self, self._arg)

    def _on_write(self, fd: int, what: int, arg: Any) -> None:
        if what & EV_TIMEOUT:
            if self._connecting:
                self._abandon_connect()
            self._fail(BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT)
            return
        if self._connecting:
            self._connected()
            return
        data = self._output
        try:
            n = data.write_to(fd) if data else 0
        except _RETRY:
            return
        except OSError as exc:
            self._fail(BEV_EVENT_WRITING | BEV_EVENT_ERROR, exc)
            return
        if not data:
            self._update_write()
        if n and self._writecb is not None and len(data) <= self._write_low:
            self._writecb(self, self._arg)

    def _connected(self) -> None:
        err = self._socket().getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._connect_failed(err)
            return
        self._connecting = False
        self._update()
        if self._eventcb is not None:
            self._eventcb(self, BEV_EVENT_CONNECTED, self._arg)

    def _connect_failed(self, err: int) -> None:
        if self._freed:
            return
        self._abandon_connect()
        self._fail(BEV_EVENT_ERROR, OSError(err, os.strerror(err)))

    def _abandon_connect(self) -> None:
        # A socket whose connect failed can neither read nor write.
        self._connecting = False
        self._enabled = 0

    def _fail(self, events: int, exc: OSError | None = None) -> None:
        self._error = exc
        if events & BEV_EVENT_READING:
            self._enabled &= ~EV_READ
        if events & BEV_EVENT_WRITING:
            self._enabled &= ~EV_WRITE
        self._update()
        if self._eventcb is not None:
            self._eventcb(self, events, self._arg)


def _directions(what: int) -> int:
    if what & ~(EV_READ | EV_WRITE | EV_PERSIST):
        raise ValueError(f"a BufferEvent enables EV_READ and EV_WRITE only, not {describe(what)}")
    return what & (EV_READ | EV_WRITE)


def _timeout(seconds: float | None, name: str) -> float | None:
    if seconds is None or seconds == 0:
        return None
    if not seconds > 0:  # Negative or NaN.
        raise ValueError(f"the {name} timeout must be None, 0 or positive, not {seconds!r}")
    return seconds


def _family(address: Address) -> socket.AddressFamily:
    if isinstance(address, str):
        return socket.AF_UNIX
    return socket.AF_INET6 if ":" in address[0] else socket.AF_INET
