"""examples/socket_daemon.py as a real process, talked to over TCP, on both loops."""

from __future__ import annotations

import re
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import wait_until

DAEMON = Path(__file__).resolve().parents[2] / "examples" / "socket_daemon.py"
PATIENCE = 10.0
READ_SIZE = 4096
MAX_LINE = 64 * 1024


class Daemon:
    def __init__(self, loop_kind: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(DAEMON),
                "--listen=127.0.0.1:0",
                "--tick=0.05",
                f"--loop={loop_kind}",
                f"--read-size={READ_SIZE}",
                f"--max-line={MAX_LINE}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        line = self._first_line()
        match = re.fullmatch(rb"listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        self.port = int(match.group(1))

    def _first_line(self) -> bytes:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(PATIENCE):
                raise AssertionError("the daemon did not say it was listening")
        return self.proc.stdout.readline()

    def connect(self) -> Client:
        return Client(socket.create_connection(("127.0.0.1", self.port), timeout=PATIENCE))

    def stop(self) -> tuple[int, str]:
        """SIGTERM, then the exit status and what it logged."""
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=PATIENCE)
        return self.proc.returncode, stderr.decode()


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rwb")

    def ask(self, line: bytes) -> bytes:
        self.file.write(line + b"\r\n")
        self.file.flush()
        return self.file.readline().rstrip(b"\n")

    def closed_by_peer(self) -> bool:
        # A server that closes with our input unread resets the connection instead of ending it.
        try:
            return self.file.read() == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def daemon(loop_kind: str) -> Iterator[Daemon]:
    running = Daemon(loop_kind)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
        running.proc.communicate()


def stats(client: Client) -> dict[str, int]:
    answer = client.ask(b"STATS").decode()
    return {key: int(value) for key, value in (item.split("=") for item in answer.split())}


def test_daemon_answers_its_line_protocol(daemon: Daemon) -> None:
    first, second = daemon.connect(), daemon.connect()
    assert first.ask(b"PING") == b"PONG"
    assert second.ask(b"ONLINE") == b"2"
    text = bytes(range(33, 127)) * (10 * READ_SIZE // 94)  # Ten reads' worth, in one line.
    assert first.ask(b"ECHO " + text) == text
    assert first.ask(b"ECHO") == b""
    assert first.ask(b"DANCE") == b"ERR unknown command"
    assert first.ask(b"QUIT") == b"BYE"
    assert first.file.read() == b""
    wait_until(lambda: second.ask(b"ONLINE") == b"1")
    assert second.ask(b"ECHO " + b"z" * (MAX_LINE + 10)) == b"ERR line too long"
    assert second.closed_by_peer()
    third = daemon.connect()
    wait_until(lambda: third.ask(b"ONLINE") == b"1")
    for client in (first, second, third):
        client.close()
    status, log = daemon.stop()
    assert status == 0
    assert "Traceback" not in log


def test_daemon_ticks_reloads_and_stops_on_sigterm(daemon: Daemon) -> None:
    client = daemon.connect()
    wait_until(lambda: stats(client)["ticks"] >= 2)
    assert stats(client)["reloads"] == 0
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: stats(client)["reloads"] == 1)
    daemon.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: stats(client)["reloads"] == 2)
    assert stats(client)["online"] == 1
    status, log = daemon.stop()
    assert client.file.readline() == b"BYE shutting down\n"
    assert client.file.read() == b""
    client.close()
    assert status == 0
    assert "reload #2" in log
    assert "Traceback" not in log
