"""Snapshots and compaction while clients write: the parent keeps answering during the forked
child's work, and the files on disk (base + journal, or the snapshot) equal the live state."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from support import run_residentd, wait_until

from .helpers import Client, Daemon

WRITERS = 50


def _writer(daemon: Daemon, name: str, stop: threading.Event, acked: dict[str, int]) -> None:
    client = daemon.client()
    while not stop.is_set():
        acked[name] = int(client.call(f"INCR {name}"))
    client.close()


def _live(client: Client, names: list[str]) -> dict[str, str]:
    return {name: client.call(f"GET {name}") for name in names}


@pytest.mark.slow
def test_compaction_while_50_clients_write(tmp_path: os.PathLike[str]) -> None:
    folder = str(tmp_path)
    daemon = Daemon(folder, "--appendonly", "--appendfsync", "always", "--dump-delay", "1.0")
    probe = daemon.client()
    for i in range(500):
        probe.send(f"SET pre{i} {i}")
    for _ in range(500):
        assert probe.reply() == "OK"
    stop = threading.Event()
    acked: dict[str, int] = {}
    names = [f"w{i}" for i in range(WRITERS)]
    threads = [threading.Thread(target=_writer, args=(daemon, n, stop, acked)) for n in names]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acked) == WRITERS)
    before = sum(acked.values())
    assert probe.call("REWRITE") == "OK"
    # The child sleeps a second before writing: the parent answers all along.
    answered = 0
    while probe.info()["rewrite_in_progress"]:
        assert probe.call("GET pre7") == "7"
        answered += 1
    assert answered >= 10
    assert sum(acked.values()) > before + WRITERS  # the writers went on during the rewrite
    stop.set()
    for thread in threads:
        thread.join(10)
    info = probe.info()
    assert info["last_rewrite_status"] == "ok"
    live = _live(probe, [*names, "pre0", "pre499"])
    for name in names:
        assert int(live[name]) == acked[name]
    probe.close()
    journal = os.path.join(folder, "journal")
    assert sorted(os.listdir(journal)) == [
        "kvlite.2.base.snap",
        "kvlite.2.incr.log",
        "kvlite.manifest",
    ]
    with open(os.path.join(journal, "kvlite.manifest")) as file:
        assert file.read() == (
            "file kvlite.2.base.snap seq 2 type b\nfile kvlite.2.incr.log seq 2 type i\n"
        )
    assert os.path.getsize(os.path.join(journal, "kvlite.2.incr.log")) > 0  # writes made meanwhile
    daemon.kill()
    daemon = Daemon(folder, "--appendonly")
    client = daemon.client()
    assert _live(client, list(live)) == live
    assert client.call("DBSIZE") == str(500 + WRITERS)
    client.close()
    daemon.stop()


def test_bgsave_snapshot_is_the_state_at_the_fork(tmp_path: os.PathLike[str]) -> None:
    folder = str(tmp_path)
    daemon = Daemon(folder, "--dump-delay", "0.5")
    client = daemon.client()
    client.call("SET a before")
    assert client.call("BGSAVE") == "OK"
    assert client.call("BGSAVE") == "BUSY"
    client.call("SET a after")  # copy-on-write: the child still sees "before"
    assert client.call("GET a") == "after"
    wait_until(lambda: not client.info()["snapshot_in_progress"])
    info = client.info()
    assert info["last_bgsave_status"] == "ok"
    assert info["last_snapshot_duration"] >= 0.5
    assert info["changes_since_save"] == 1
    client.close()
    daemon.kill()
    daemon = Daemon(folder)
    client = daemon.client()
    assert client.call("GET a") == "before"
    client.close()
    daemon.stop()


def test_save_points_and_auto_compaction(tmp_path: os.PathLike[str]) -> None:
    folder = str(tmp_path)
    daemon = Daemon(
        folder,
        "--appendonly",
        "--save",
        "1 3",
        "--auto-aof-rewrite-min-size",
        "2000",
        "--auto-aof-rewrite-percentage",
        "100",
    )
    client = daemon.client()
    for i in range(3):
        client.call(f"SET s{i} {i}")
    wait_until(lambda: os.path.exists(os.path.join(folder, "kvlite.snap")), timeout=5)
    wait_until(lambda: client.info()["changes_since_save"] == 0)
    for i in range(100):
        client.call(f"SET key{i} {'x' * 50}")
    wait_until(
        lambda: "kvlite.2.base.snap" in os.listdir(os.path.join(folder, "journal")), timeout=5
    )
    wait_until(lambda: not client.info()["rewrite_in_progress"])
    names = sorted(os.listdir(os.path.join(folder, "journal")))
    assert names == ["kvlite.2.base.snap", "kvlite.2.incr.log", "kvlite.manifest"]
    assert client.info()["journal_base_size"] >= os.path.getsize(
        os.path.join(folder, "journal", "kvlite.2.base.snap")
    )
    client.close()
    assert daemon.stop() == 0
    daemon = Daemon(folder, "--appendonly")
    assert daemon.client().call("DBSIZE") == "103"
    daemon.stop()


def test_status_shows_the_state(tmp_path: os.PathLike[str]) -> None:
    folder = str(tmp_path)
    admin = os.path.join(folder, "admin.sock")
    daemon = Daemon(folder, "--appendonly", "--admin", f"unix:{admin}")
    daemon.client().call("SET a 1")
    status = run_residentd("status", "--admin", f"unix:{admin}")
    assert status.returncode == 0, status.stderr
    assert "journal" in status.stdout and "fsync everysec" in status.stdout
    assert "disk" in status.stdout and "writable" in status.stdout
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(admin)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = b""
        while chunk := sock.recv(65536):
            text += chunk
    assert b"residentd_state_journal_bytes{" in text
    assert b"residentd_state_fsync_lag_seconds{" in text
    assert b"residentd_state_last_snapshot_time_seconds{" in text
    daemon.stop()


def test_stop_during_compaction_keeps_everything(tmp_path: os.PathLike[str]) -> None:
    """A stop while the compaction child writes: the child is stopped, the manifest still names
    the old base and both incremental files, and the next start replays them all in order."""
    folder = str(tmp_path)
    daemon = Daemon(folder, "--appendonly", "--dump-delay", "30")
    client = daemon.client()
    client.call("SET a 1")
    assert client.call("REWRITE") == "OK"
    assert client.call("REWRITE") == "OK"  # scheduled for when the running one ends
    client.call("SET a 2")  # lands in the new incremental file
    client.call("SET b 3")
    client.close()
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 10  # did not wait for the sleeping child
    with open(os.path.join(folder, "journal", "kvlite.manifest")) as file:
        assert file.read() == (
            "file kvlite.1.base.snap seq 1 type b\n"
            "file kvlite.1.incr.log seq 1 type i\n"
            "file kvlite.2.incr.log seq 2 type i\n"
        )
    daemon = Daemon(folder, "--appendonly")
    client = daemon.client()
    assert (client.call("GET a"), client.call("GET b")) == ("2", "3")
    assert client.call("REWRITE") == "OK"  # compacts the two files into one
    wait_until(lambda: not client.info()["rewrite_in_progress"])
    assert sorted(os.listdir(os.path.join(folder, "journal"))) == [
        "kvlite.2.base.snap",
        "kvlite.3.incr.log",
        "kvlite.manifest",
    ]
    client.close()
    daemon.kill()
    daemon = Daemon(folder, "--appendonly")
    client = daemon.client()
    assert (client.call("GET a"), client.call("GET b")) == ("2", "3")
    client.close()
    daemon.stop()
