"""SIGTERM to a real daemon under load: every request it executed has its reply at the client.

Closing a socket that has unread input makes Linux reset the connection, and the reset
destroys replies the client has not taken yet; a stop must close the way nginx's lingering
close does instead (net/lingering.py). These tests count at the client: each request sent,
each reply received, how each connection ended, and compare with what the daemon says it did
(its "stopped" log line; for kv, the keyspace it leaves at exit).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from support import wait_until

from .helpers import Daemon, talk
from .pipelining import Echo, KvIncr, stop_under_load

KV_APP = str(Path(__file__).with_name("apps.py")) + ":kv"
CLIENTS = 200


def json_daemon(tmp_path: Path, loop_kind: str, app: str = "echo", *args: str) -> Daemon:
    """``app`` running as a daemon that logs JSON."""
    return Daemon(tmp_path, app, "--log-format", "json", *args, loop=loop_kind).start()


def stopped_line(daemon: Daemon) -> dict[str, Any]:
    """The fields of the daemon's "stopped" log line (the log is JSON)."""
    lines = [json.loads(line) for line in daemon.log().splitlines()]
    stopped = [line for line in lines if line["msg"] == "stopped"]
    assert len(stopped) == 1, lines[-5:]
    return stopped[0]


def test_echo_replies_every_line_it_read(tmp_path: Path, loop_kind: str) -> None:
    daemon = json_daemon(tmp_path, loop_kind)
    try:
        tallies = asyncio.run(stop_under_load(daemon.port, daemon.pid, Echo(), CLIENTS))
        assert daemon.wait() == 0
    finally:
        daemon.stop()
    stopped = stopped_line(daemon)
    received = sum(tally.received for tally in tallies)
    assert [tally.ended for tally in tallies] == ["eof"] * CLIENTS  # not one reset
    assert stopped["messages_in"] == stopped["messages_out"] == received
    assert received < sum(tally.sent for tally in tallies)  # the stop came mid-flight
    assert (stopped["dropped_connections"], stopped["dropped_bytes"]) == (0, 0)


def test_kv_counters_equal_the_replies_received(tmp_path: Path, loop_kind: str) -> None:
    dump = tmp_path / "keyspace.json"
    daemon = json_daemon(tmp_path, loop_kind, KV_APP, "--dump-file", str(dump))
    try:
        tallies = asyncio.run(stop_under_load(daemon.port, daemon.pid, KvIncr(), CLIENTS))
        assert daemon.wait() == 0
    finally:
        daemon.stop()
    counters = json.loads(dump.read_text())
    # Each client INCRs its own key: the increments applied are the replies it got, no more.
    assert {f"k{index}": tally.received for index, tally in enumerate(tallies)} == counters
    assert [tally.ended for tally in tallies] == ["eof"] * CLIENTS
    stopped = stopped_line(daemon)
    received = sum(counters.values())
    assert stopped["messages_in"] == stopped["messages_out"] == received
    assert (stopped["dropped_connections"], stopped["dropped_bytes"]) == (0, 0)


class Flooder:
    """A client that sends lines as fast as it can from one thread and reads the echoes
    slowly, through a small receive buffer, from another: at the stop, replies wait in the
    server's kernel for it, and it is still sending."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.connect(("127.0.0.1", port))
        self.received = 0
        self.ended = ""
        self.sending = True
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        chunk = b"".join(b"flood %d\n" % n for n in range(64))
        try:
            while self.sending:
                self.sock.sendall(chunk)
        except OSError:
            pass

    def _read(self) -> None:
        pending = b""
        try:
            while data := self.sock.recv(4096):
                pending += data
                self.received += pending.count(b"\n")
                pending = pending[pending.rfind(b"\n") + 1 :]
                time.sleep(0.001)
            self.ended = "eof"
        except OSError:
            self.ended = "reset"

    def close(self) -> None:
        self.sending = False
        for thread in self.threads:
            thread.join(timeout=10)
        self.sock.close()


def test_a_client_still_sending_gets_every_reply_then_a_close(
    tmp_path: Path, loop_kind: str
) -> None:
    daemon = json_daemon(tmp_path, loop_kind, "echo", "--shutdown-timeout", "8")
    flooder = Flooder(daemon.port)
    try:
        wait_until(lambda: flooder.received > 10_000, what="the flood's echoes")
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
        # The lingering close gave up on the peer that never closes well before the
        # shutdown timeout, and only once it had every reply.
        assert time.monotonic() - started < 6
        wait_until(lambda: flooder.ended != "", what="the flooder's connection to end")
    finally:
        flooder.close()
        daemon.stop()
    stopped = stopped_line(daemon)
    assert flooder.ended == "eof"
    assert flooder.received == stopped["messages_out"] == stopped["messages_in"]
    assert stopped["dropped_connections"] == 0


def test_a_client_that_never_reads_is_cut_at_the_timeout_and_counted(
    tmp_path: Path, loop_kind: str
) -> None:
    daemon = json_daemon(tmp_path, loop_kind, "echo", "--shutdown-timeout", "2")
    deaf = socket.socket()
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    deaf.connect(("127.0.0.1", daemon.port))
    deaf.setblocking(False)
    line = b"x" * 1000 + b"\n"
    try:
        blocked = 0
        while blocked < 5:  # until every buffer on the way is full and the server stopped reading
            try:
                deaf.send(line * 64)
                blocked = 0
            except BlockingIOError:
                blocked += 1
                time.sleep(0.1)
        assert talk(daemon.port, [b"still here"]) == [b"still here"]
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
        assert time.monotonic() - started < 5
    finally:
        deaf.close()
        daemon.stop()
    stopped = stopped_line(daemon)
    assert stopped["dropped_connections"] == 1
    assert stopped["dropped_bytes"] > 100_000
