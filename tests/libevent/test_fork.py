"""Forking with a base (``event_reinit``): a real ``fork()``; the child reinitialises its base
and runs it, the parent signals the child from outside, and the parent's base still sees its
descriptors and its signals after the child has come and gone."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import traceback
from typing import Any

import pytest

from residentd.libevent import (
    EV_PERSIST,
    EV_READ,
    Event,
    EventBase,
    SignalEvent,
    Timer,
)

from .helpers import PATIENCE, one_round


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def _child(base: EventBase, report: int) -> dict[str, Any]:
    """In the child: reinit, then run until the parent's SIGUSR2 arrives, saying "ready" from
    the first tick of a timer (so the new loop runs timers before the parent signals it)."""
    base.reinit()
    ticks = [0]
    caught: list[int] = []

    def on_tick(fd: int, what: int, arg: Any) -> None:
        ticks[0] += 1
        if ticks[0] == 1:
            os.write(report, b"ready\n")

    def on_signal(signum: int, what: int, arg: Any) -> None:
        caught.append(signum)
        base.loopbreak()

    # The events inherited from the parent are still pending; the child adds its own.
    Timer(base, on_tick, persist=True).add(0.005)
    SignalEvent(base, signal.SIGUSR2, on_signal).add()
    guard = Timer(base, lambda *_: base.loopbreak())
    guard.add(PATIENCE)
    base.dispatch()
    return {"ticks": ticks[0], "caught": caught, "guard": bool(guard.pending())}


@pytest.mark.parametrize("kind", ["uvloop", "asyncio"])
def test_reinit_after_fork_gives_the_child_a_loop_of_its_own(kind: str) -> None:
    if kind == "uvloop":
        pytest.importorskip("uvloop")
    base = EventBase(kind=kind)
    reader, writer = socket.socketpair()
    got: list[bytes] = []
    caught: list[int] = []
    Event(base, reader, EV_READ | EV_PERSIST, lambda *_: got.append(reader.recv(100))).add()
    SignalEvent(base, signal.SIGUSR1, lambda signum, *_: caught.append(signum)).add()
    writer.send(b"before")
    assert one_round(base)
    assert got == [b"before"]
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            result = _child(base, report_w)
            os.write(report_w, json.dumps(result).encode() + b"\n")
            base.free()
            code = 0
        except BaseException:
            os.write(report_w, json.dumps({"error": traceback.format_exc()}).encode() + b"\n")
        finally:
            os._exit(code)
    try:
        os.close(report_w)
        ready = _read_line(report_r)
        assert ready == b"ready\n", ready.decode()  # Else the child's traceback.
        os.kill(pid, signal.SIGUSR2)
        result = json.loads(_read_line(report_r))
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert "error" not in result, result.get("error")
        assert os.waitstatus_to_exitcode(status) == 0
        assert result["caught"] == [signal.SIGUSR2]
        assert result["guard"]  # The signal, not the guard timer, ended the child's loop.
        assert result["ticks"] >= 1
        # The parent's loop still hears its descriptor and its own signals: the child's new
        # loop and the closing of the one it inherited left the parent's registrations alone.
        writer.send(b"after")
        assert one_round(base)
        assert got == [b"before", b"after"]
        os.kill(os.getpid(), signal.SIGUSR1)
        assert one_round(base)
        assert caught == [signal.SIGUSR1]
        # And its loop's own self-pipe: another thread can still wake it.
        loop = base.event_loop
        waker = threading.Timer(0.05, loop.call_soon_threadsafe, (base.loopbreak,))
        waker.start()
        assert one_round(base)  # Woken by the thread, not by the guard.
        waker.join()
        assert base.got_break()
    finally:
        if pid:  # A check failed before the child was reaped.
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(report_r)
        base.free()
        reader.close()
        writer.close()


def test_reinit_needs_a_base_that_owns_its_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        base = EventBase(loop)
        with pytest.raises(RuntimeError, match="fork before making the loop"):
            base.reinit()
        base.free()
    finally:
        loop.close()
