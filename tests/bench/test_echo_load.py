"""bench/echo_load.c, the echo bench's C load generator: it counts only lines that came back
byte for byte, reports lost or wrong replies as errors, and keeps to its protocol with
bench/echo.py (start, end, errors)."""

from __future__ import annotations

import shutil
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import free_port, residentd_command, stop, wait_for_port

SOURCE = Path(__file__).parents[2] / "bench" / "echo_load.c"
COMPILER = shutil.which("cc") or shutil.which("gcc")

pytestmark = [
    pytest.mark.skipif(COMPILER is None, reason="no C compiler"),
    pytest.mark.same_either_way,
]


@pytest.fixture(scope="module")
def echo_load(tmp_path_factory: pytest.TempPathFactory) -> str:
    assert COMPILER is not None
    binary = tmp_path_factory.mktemp("echo_load") / "echo_load"
    subprocess.run([COMPILER, "-O2", "-Wall", "-Werror", "-o", str(binary), str(SOURCE)],
                   check=True)  # fmt: skip
    return str(binary)


@pytest.fixture
def residentd_echo() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        residentd_command("run", "echo", "--listen", f"127.0.0.1:{port}",
                          "--admin", "off", "--log-level", "WARNING"),
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process)


def thread_server(transform: Callable[[bytes], bytes]) -> socketserver.ThreadingTCPServer:
    """A server that sends back what it reads, passed through ``transform``."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(65536):
                self.request.sendall(transform(data))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(binary: str, port: int, connections: int, depth: int) -> list[str]:
    done = subprocess.run(
        [binary, str(port), str(connections), str(depth), "64", "0.2", "0.5"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_counts_the_lines_echoed_in_the_window(echo_load: str, residentd_echo: int) -> None:
    start, end, errors = run(echo_load, residentd_echo, 20, 4)
    assert start == "start"
    word, lines, seconds, cpu = end.split()
    assert word == "end"
    assert int(lines) > 0 and int(lines) % 4 == 0  # whole batches of 4 lines
    assert 0.45 < float(seconds) < 1.5
    assert 0 < float(cpu) <= float(seconds) * 1.1
    assert errors == "errors 0"


def test_wrong_bytes_are_errors_not_lines(echo_load: str) -> None:
    server = thread_server(bytes.upper)
    try:
        start, end, errors = run(echo_load, server.server_address[1], 5, 1)
    finally:
        server.shutdown()
        server.server_close()
    assert (start, end.split()[1], errors) == ("start", "0", "errors 5")


def test_replies_that_never_come_back_are_errors(echo_load: str) -> None:
    server = thread_server(lambda data: b"")
    try:
        _, end, errors = run(echo_load, server.server_address[1], 3, 16)
    finally:
        server.shutdown()
        server.server_close()
    assert (end.split()[1], errors) == ("0", "errors 3")


def test_a_usage_error_exits_2(echo_load: str) -> None:
    done = subprocess.run([echo_load, "1"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr
