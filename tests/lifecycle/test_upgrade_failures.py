"""A live upgrade whose new generation fails: the old one serves on, untouched, and the command
says why. The app is a file the test rewrites between generations (``residentd run
file.py:app`` reads it again in each new process)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from .upgrading import Generations

GOOD = """
from residentd.app import App, Session
from residentd.codecs.lines import LineCodec

app = App("versioned")
VERSION = b"{version}"


class Versioned(Session):
    def on_message(self, line: bytes) -> None:
        self.send(VERSION + b" " + line)

    def export_state(self) -> dict[str, object]:
        return {{}}


app.service("main", Versioned, codec=LineCodec, listen=["127.0.0.1:0"])
"""

FAULTS = {
    "syntax-error": ("def broken(:\n", "SyntaxError"),
    "exits-during-start": (
        GOOD.format(version="v9") + "\nimport os, sys\n\n@app.on_start\ndef boom():\n"
        "    print('boom: giving up', file=sys.stderr, flush=True)\n    os._exit(3)\n",
        "boom: giving up",
    ),
    "never-ready": (
        GOOD.format(version="v9")
        + "\nimport asyncio\n\n@app.on_start\nasync def hang():\n    await asyncio.sleep(3600)\n",
        "no answer within upgrade_timeout",
    ),
}


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_failed_new_generation_leaves_the_old_one_serving(tmp_path: Path, fault: str) -> None:
    module = tmp_path / "versioned.py"
    module.write_text(GOOD.format(version="v1"))
    # Only the hanging generation should meet the deadline: on a busy machine a new generation
    # can take seconds to import before it fails its own way. The hanging one's deadline is the
    # window in which the second upgrade must reach the daemon to be refused: starting each
    # `residentd upgrade` takes a second or more on a busy machine, so 2 s was too short.
    timeout = "8" if fault == "never-ready" else "30"
    with Generations(tmp_path, f"{module}:app", "--upgrade-timeout", timeout) as daemon:
        kept = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
        kept.sendall(b"before\nhal")  # half a line held by the old generation's codec
        assert _line(kept) == b"v1 before\n"
        old = daemon.pid
        text, expected = FAULTS[fault]
        module.write_text(text)
        second: list[subprocess.CompletedProcess[str]] = []
        if fault == "never-ready":  # one upgrade at a time: a second one is refused meanwhile
            thread = threading.Thread(target=lambda: second.append(daemon.upgrade()))
            thread.start()
        result = daemon.upgrade()
        if fault == "never-ready":
            thread.join()
            results = sorted([result, *second], key=lambda done: "already running" in done.stderr)
            result, refused = results
            assert refused.returncode == 1
            assert "an upgrade is already running" in refused.stderr
        assert result.returncode == 1, result.stdout
        assert "upgrade failed" in result.stderr
        assert expected in result.stderr
        assert daemon.pid == old
        assert daemon.first is not None and daemon.first.poll() is None
        assert "still serving" in daemon.log()
        # Nothing was lost: the held half line, the old connection, new ones.
        kept.sendall(b"f line\n")
        assert _line(kept) == b"v1 half line\n"
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as fresh:
            fresh.sendall(b"new\n")
            assert _line(fresh) == b"v1 new\n"
        # With the code fixed, the next upgrade takes over the same connection.
        module.write_text(GOOD.format(version="v2"))
        daemon.upgrade_ok()
        kept.sendall(b"after\n")
        assert _line(kept) == b"v2 after\n"
        kept.close()


def test_upgrade_without_a_daemon_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "residentd", "upgrade", "--pidfile", str(tmp_path / "none.pid")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "no pidfile" in result.stderr
