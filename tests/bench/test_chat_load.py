"""bench/chat_load.c, the chat benches' C load generator: against a real chat daemon it signs
its guests in, counts every delivery and reply in the window with no error; error replies and
lines that never come are errors, and it keeps to its protocol with bench/chat_workers.py
(start, end, errors)."""

from __future__ import annotations

import contextlib
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support import free_port, residentd_command, stop, wait_for_port

SOURCE = Path(__file__).parents[2] / "bench" / "chat_load.c"
COMPILER = shutil.which("cc") or shutil.which("gcc")
INCR = '{"op":"state.incr","key":"n"}'

pytestmark = [
    pytest.mark.skipif(COMPILER is None, reason="no C compiler"),
    pytest.mark.same_either_way,
]


@pytest.fixture(scope="module")
def chat_load(tmp_path_factory: pytest.TempPathFactory) -> str:
    assert COMPILER is not None
    binary = tmp_path_factory.mktemp("chat_load") / "chat_load"
    subprocess.run([COMPILER, "-O2", "-Wall", "-Werror", "-o", str(binary), str(SOURCE)],
                   check=True)  # fmt: skip
    return str(binary)


@pytest.fixture(scope="module")
def chat() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        residentd_command(
            "run", "chat", "--listen", f"127.0.0.1:{port}", "--http-listen",
            f"127.0.0.1:{free_port()}", "--admin", "off", "--log-level", "WARNING",
            "--rate-limit", "0", "--presence-push-limit", "0", "--rooms", "big",
        ),
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop(process)


@contextlib.contextmanager
def line_server(answer: Callable[[bytes], bytes]) -> Iterator[str]:
    """A server that answers each line it reads with ``answer(line)``; its port."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                self.wfile.write(answer(line))

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield str(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def run(binary: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *argv], capture_output=True, text=True, timeout=60)


def window(done: subprocess.CompletedProcess[str]) -> tuple[int, str]:
    """The lines counted in the window, and the errors line, after checking the rest."""
    assert done.returncode == 0, done.stderr
    start, end, errors = done.stdout.splitlines()
    word, lines, seconds, cpu, reads = end.split()
    assert (start, word) == ("start", "end")
    assert 0.45 < float(seconds) < 1.5
    assert 0 <= float(cpu) <= float(seconds) * 1.1
    assert int(reads) <= int(lines) and (int(reads) > 0) == (int(lines) > 0)
    return int(lines), errors


def test_fan_out_and_requests_against_chat(chat_load: str, chat: int) -> None:
    # 30 members over 3 source addresses, 3 of them posting, 4 posts in flight.
    lines, errors = window(run(chat_load, "fanout", str(chat), "30", "3", "4", "10", "0.2", "0.5",
                               "0"))  # fmt: skip
    assert lines > 31 and errors == "errors 0"
    # The same guests' names again: each run names its own, so none is taken.
    lines, errors = window(run(chat_load, "fanout", str(chat), "30", "3", "4", "10", "0.2", "0.5",
                               "2000"))  # fmt: skip
    assert lines > 31 and errors == "errors 0"
    lines, errors = window(run(chat_load, "requests", str(chat), "10", "4", "5", "0.2", "0.5",
                               INCR))  # fmt: skip
    assert lines > 40 and errors == "errors 0"


def test_error_replies_are_errors(chat_load: str) -> None:
    def refuse(line: bytes) -> bytes:
        return b'{"op":"hello"}\n' if b'"hello"' in line else b'{"op":"error"}\n'

    with line_server(refuse) as port:
        lines, errors = window(run(chat_load, "requests", port, "2", "3", "5", "0.1", "0.5", INCR))
    assert lines > 0 and int(errors.split()[1]) >= lines


def test_replies_that_never_come_are_errors(chat_load: str) -> None:
    with line_server(lambda line: b'{"op":"hello"}\n' if b'"hello"' in line else b"") as port:
        lines, errors = window(run(chat_load, "requests", port, "3", "4", "5", "0.1", "0.5", INCR))
    assert (lines, errors) == (0, "errors 12")  # 3 connections, 4 requests each


def test_a_refused_sign_in_and_a_usage_error_exit_2(chat_load: str) -> None:
    with line_server(lambda line: b'{"op":"error","code":"name-taken"}\n') as port:
        done = run(chat_load, "requests", port, "2", "1", "5", "0.1", "0.5", INCR)
    assert done.returncode == 2 and "errors" in done.stderr
    done = run(chat_load, "fanout", "1")
    assert done.returncode == 2 and "usage" in done.stderr
