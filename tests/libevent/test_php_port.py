"""What a port from PHP's libevent extension writes, word for word: its ``EVBUFFER_*`` names,
``event_buffer_timeout_set($bev, 0, 0)``, ``event_buffer_enable($bev, EV_READ | EV_PERSIST)``,
``event_buffer_fd_set``, ``event_buffer_set_callback``, ``event_timer_*``, and the talk's timer
on a tmpfile descriptor."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from residentd.errors import ResidentdError
from residentd.libevent import (
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
    EVBUFFER_ERROR,
    EVBUFFER_READ,
    EVBUFFER_TIMEOUT,
    EVBUFFER_WRITE,
    BufferEvent,
    Event,
    EventBase,
    Timer,
    UnwatchableFileError,
)

from .helpers import settle, until, until_len

Run = Callable[[Coroutine[Any, Any, None]], None]
Pair = tuple[socket.socket, socket.socket]


def test_php_evbuffer_names_have_libevents_values() -> None:
    # libevent's bufferevent_compat.h defines them as the BEV_EVENT_* flags; PHP exports them.
    assert (EVBUFFER_READ, EVBUFFER_WRITE, EVBUFFER_EOF, EVBUFFER_ERROR, EVBUFFER_TIMEOUT) == (
        0x01,
        0x02,
        0x10,
        0x20,
        0x40,
    )
    assert (EVBUFFER_READ, EVBUFFER_WRITE, EVBUFFER_EOF, EVBUFFER_ERROR, EVBUFFER_TIMEOUT) == (
        BEV_EVENT_READING,
        BEV_EVENT_WRITING,
        BEV_EVENT_EOF,
        BEV_EVENT_ERROR,
        BEV_EVENT_TIMEOUT,
    )


def test_zero_timeouts_mean_none_and_ev_persist_is_accepted(run: Run, socketpair: Pair) -> None:
    peer, sock = socketpair

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, sock)
        got: list[bytes] = []
        events: list[int] = []
        bev.setcb(lambda bev, arg: got.append(bev.read()), None, lambda b, e, a: events.append(e))
        bev.set_timeouts(0, 0)  # event_buffer_timeout_set($bev, 0, 0)
        bev.enable(EV_READ | EV_PERSIST)  # event_buffer_enable($bev, EV_READ | EV_PERSIST)
        assert bev.enabled == EV_READ | EV_WRITE
        bev.write(b"hello")
        await settle(0.15)
        assert events == []  # Zero is no timeout, not an immediate one.
        assert peer.recv(100) == b"hello"
        peer.sendall(b"one")
        await until(lambda: got)
        peer.sendall(b"two")
        await until(lambda: b"".join(got) == b"onetwo")  # Reading persists.
        # A zero read timeout with a real write timeout: only writing can time out.
        bev.set_timeouts(0, 0.05)
        await settle(0.15)
        assert events == []
        bev.disable(EV_READ | EV_PERSIST)
        assert bev.enabled == EV_WRITE
        with pytest.raises(ValueError, match="timeout"):
            bev.set_timeouts(-1, None)
        with pytest.raises(ValueError, match="EV_SIGNAL"):
            bev.enable(EV_SIGNAL)
        bev.free()
        base.free()

    run(main())


def test_set_callback_replaces_the_callbacks_of_a_live_buffer_event(
    run: Run, socketpair: Pair
) -> None:
    peer, sock = socketpair

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, sock)
        first: list[bytes] = []
        second: list[tuple[bytes, Any]] = []
        bev.setcb(lambda bev, arg: first.append(bev.read()), None, None)
        bev.enable(EV_READ)
        peer.sendall(b"a")
        await until(lambda: first)
        # event_buffer_set_callback($bev, $readcb, $writecb, $errorcb, $arg)
        bev.setcb(lambda bev, arg: second.append((bev.read(), arg)), None, None, "arg")
        peer.sendall(b"b")
        await until(lambda: second)
        assert first == [b"a"]
        assert second == [(b"b", "arg")]
        bev.free()
        base.free()

    run(main())


def test_setfd_moves_the_buffer_event_to_another_descriptor(run: Run, socketpair: Pair) -> None:
    peer_a, a = socketpair
    peer_b, b = socket.socketpair()

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, a)
        got: list[bytes] = []
        bev.setcb(lambda bev, arg: got.append(bev.read()), None, None)
        bev.enable(EV_READ)
        peer_a.sendall(b"one")
        await until(lambda: got)
        bev.setfd(b)  # event_buffer_fd_set($bev, $fd)
        assert bev.fd == b.fileno()
        assert bev.enabled == EV_READ | EV_WRITE  # Carried over, as in libevent.
        peer_a.sendall(b"not any more")
        peer_b.sendall(b"two")
        await until_len(got, 2)
        await settle()
        assert got == [b"one", b"two"]
        bev.write(b"reply")
        await until(lambda: not bev.output)
        assert peer_b.recv(100) == b"reply"
        # The old descriptor was not the buffer event's: it is open, its data unread.
        assert a.recv(100) == b"not any more"
        bev.setfd(None)
        assert bev.fd == -1
        bev.free()
        assert b.fileno() >= 0
        base.free()

    try:
        run(main())
    finally:
        peer_b.close()
        b.close()


def test_setfd_closes_an_old_descriptor_the_buffer_event_owned(run: Run) -> None:
    peer_a, a = socket.socketpair()
    peer_b, b = socket.socketpair()

    async def main() -> None:
        base = EventBase()
        bev = BufferEvent(base, a, BEV_OPT_CLOSE_ON_FREE)
        bev.setfd(b.fileno())
        assert a.fileno() == -1
        bev.free()
        with pytest.raises(OSError):
            b.getsockname()  # The new descriptor was closed by free, as the option says.
        b.detach()
        base.free()

    try:
        run(main())
    finally:
        for sock in (peer_a, a, peer_b):
            sock.close()


def test_event_timer_add_del_pending(run: Run) -> None:
    async def main() -> None:
        base = EventBase()
        fired: list[int] = []
        timer = Timer(base, lambda fd, what, arg: fired.append(what))  # event_timer_set
        assert not timer.pending(EV_TIMEOUT)  # event_timer_pending
        timer.add(0.01)  # event_timer_add($ev, 10000)
        assert timer.pending(EV_TIMEOUT)
        await until(lambda: fired)
        assert fired == [EV_TIMEOUT]
        assert not timer.pending(EV_TIMEOUT)
        timer.add(0.01)
        timer.delete()  # event_timer_del
        assert not timer.pending(EV_TIMEOUT)
        await settle(0.05)
        assert fired == [EV_TIMEOUT]
        base.free()

    run(main())


def test_the_tmpfile_timer_trick_says_to_use_timer(run: Run) -> None:
    """The talk's daemon hung its periodic job on a tmpfile: ``event_set($ev, $tmpfile,
    EV_READ | EV_PERSIST, $cb)``, ``event_add($ev, $timeout)``. epoll cannot watch a regular
    file, so the port gets an error that says what to use instead."""

    async def main() -> None:
        base = EventBase()
        with tempfile.TemporaryFile() as tmp:
            fd = tmp.fileno()
            for flags in (EV_READ | EV_PERSIST, EV_WRITE):
                event = Event(base, fd, flags, lambda *_: None)
                with pytest.raises(UnwatchableFileError) as info:
                    event.add(0.05)
                message = str(info.value)
                assert f"fd {fd}" in message
                assert "regular file" in message
                assert "Timer(base, callback, persist=True)" in message
                assert isinstance(info.value, ResidentdError)
                assert isinstance(info.value, PermissionError)  # What callers caught before.
                assert info.value.fd == fd
                assert not event.pending()
                assert base.num_events() == 0
            # Without EV_READ (``event_set($ev, $tmpfile, 0, $cb)``) it is a timeout-only event,
            # as in libevent: the descriptor is only passed to the callback.
            fired: list[tuple[int, int]] = []
            Event(base, fd, 0, lambda fd, what, arg: fired.append((fd, what))).add(0.01)
            await until(lambda: fired)
            assert fired == [(fd, EV_TIMEOUT)]
        base.free()

    run(main())
