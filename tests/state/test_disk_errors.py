"""A disk that refuses data: writes get an error in the app's protocol, reads keep being served,
and writes resume by themselves once the disk accepts data again; nothing acknowledged is lost.

Two ways to fill the disk: RLIMIT_FSIZE on the daemon (write() fails with EFBIG, SIGXFSZ being
ignored; "space is freed" by raising the limit from outside with prlimit), and a small tmpfs
mounted by the test when this machine allows it (ENOSPC; freed by deleting a filler file).
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support import wait_until

from .helpers import Daemon

VALUE = "v" * 1000


@contextlib.contextmanager
def _fsize_disk(folder: str) -> Iterator[tuple[dict[str, Any], Callable[[Daemon], None]]]:
    def free(daemon: Daemon) -> None:
        unlimited = resource.RLIM_INFINITY
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))

    yield {"fsize": 64 * 1024}, free


@contextlib.contextmanager
def _tmpfs_disk(folder: str) -> Iterator[tuple[dict[str, Any], Callable[[Daemon], None]]]:
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", folder],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        filler = os.path.join(folder, "filler")
        with open(filler, "wb") as file:
            file.write(b"\0" * (400 * 1024))

        def free(daemon: Daemon) -> None:
            os.unlink(filler)

        yield {}, free
    finally:
        subprocess.run(["umount", "-l", folder], check=False)


@pytest.mark.parametrize("disk", [_fsize_disk, _tmpfs_disk], ids=["rlimit-fsize", "tmpfs"])
def test_full_disk_refuses_writes_serves_reads_and_recovers(
    tmp_path: os.PathLike[str], disk: Any
) -> None:
    folder = os.path.join(str(tmp_path), "data")
    os.mkdir(folder)
    with disk(folder) as (kwargs, free):
        log = os.path.join(str(tmp_path), "daemon.log")  # not on the small disk
        daemon = Daemon(folder, "--appendonly", "--appendfsync", "always", log=log, **kwargs)
        client = daemon.client()
        other = daemon.client()
        acked = []
        held = None  # the write whose record the disk refused: its reply waits for the disk
        for i in range(1000):
            client.send(f"SET k{i} {VALUE}")
            reply = client.reply(timeout=1.0)
            if reply is None and other.info()["writable"]:
                reply = client.reply()  # only slow (a loaded machine), not refused
            if reply is None:
                held = i
                break
            assert reply == "OK", reply
            acked.append(i)
        assert held is not None and acked, "the disk never filled"
        # Writes are refused with the app's error, reads are served.
        assert other.call(f"GET k{acked[-1]}") == VALUE
        assert other.call("SET x 1").startswith("ERR MISCONF journal write failed")
        info = other.info()
        assert info["writable"] is False
        assert "journal write failed" in info["last_disk_error"]

        free(daemon)
        assert client.reply() == "OK"  # the held write reached the disk, then its reply left
        acked.append(held)
        wait_until(lambda: other.call("SET x 1") == "OK")
        assert other.info()["writable"] is True
        for i in range(5):
            assert other.call(f"SET after{i} 1") == "OK"
        client.close()
        other.close()
        daemon.kill()  # nothing acknowledged may be lost, even without a clean stop

        daemon = Daemon(folder, "--appendonly", log=log)
        client = daemon.client()
        for i in acked:
            assert client.call(f"GET k{i}") == VALUE
        assert client.call("GET after4") == "1"
        client.close()
        assert daemon.stop() == 0
        log = daemon.output()
        assert log.count("refusing writes until the disk accepts data again") == 1
        assert "writes resumed" in log


@pytest.mark.slow
def test_failed_snapshot_refuses_writes_until_one_succeeds(tmp_path: os.PathLike[str]) -> None:
    """As Redis's stop-writes-on-bgsave-error: with a save schedule, a snapshot the disk refused
    makes writes fail; the next try (5 s later) that succeeds lets them in again."""
    folder = str(tmp_path)
    daemon = Daemon(folder, "--save", "1 1", fsize=32 * 1024)
    client = daemon.client()
    for i in range(40):  # about 40 kB of state: more than one snapshot file may hold
        assert client.call(f"SET k{i} {VALUE}") == "OK"
    wait_until(lambda: client.info()["last_bgsave_status"] == "err")
    assert client.call("SET x 1") == "ERR MISCONF snapshot failed: File too large"
    assert client.call("GET k3") == VALUE
    assert not os.path.exists(os.path.join(folder, "kvlite.snap"))
    assert not [name for name in os.listdir(folder) if ".tmp-" in name]  # temp file removed
    unlimited = resource.RLIM_INFINITY
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (unlimited, unlimited))
    wait_until(lambda: client.call("SET x 1") == "OK", timeout=10)
    assert client.info()["last_bgsave_status"] == "ok"
    client.close()
    daemon.kill()
    daemon = Daemon(folder)
    assert daemon.client().call("GET k39") == VALUE
    daemon.stop()
