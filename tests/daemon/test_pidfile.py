"""The pidfile against real processes: a live holder refuses, a dead one's file is taken over,
and a forked child can carry the lock on."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from residentd.daemon import pidfile as pidfile_module
from residentd.daemon.pidfile import PidFile, PidFileError, lock_holder, pid_alive, read_pid

HOLDER = """
import sys
from residentd.daemon.pidfile import PidFile

PidFile(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``tmp_path / "d.pid"`` until it is killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "d.pid")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "locked\n"
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_acquire_writes_the_pid_and_release_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    pidfile = PidFile(path)
    pidfile.acquire()
    assert pidfile.locked
    assert path.read_text() == f"{os.getpid()}\n"
    assert read_pid(path) == os.getpid()
    pidfile.release()
    assert not pidfile.locked
    assert not path.exists()
    pidfile.release()  # idempotent
    assert read_pid(path) is None


def test_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    with PidFile(path) as pidfile:
        assert pidfile.locked
        assert read_pid(path) == os.getpid()
    assert not path.exists()


def test_a_live_holder_refuses_with_path_and_pid(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "d.pid"
    with pytest.raises(PidFileError) as refused:
        PidFile(path).acquire()
    assert str(refused.value) == (
        f"pidfile {path} is locked by running process {holder.pid}: is the daemon already running?"
    )
    assert read_pid(path) == holder.pid  # the refused attempt changed nothing


def test_the_file_of_a_killed_holder_is_taken_over(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "d.pid"
    holder.kill()
    holder.wait()
    assert read_pid(path) == holder.pid  # left behind, but its lock went with the process
    with PidFile(path):
        assert read_pid(path) == os.getpid()


@pytest.mark.parametrize(
    "content",
    [b"%d\n", b"", b"garbage\n", b"\x00\xff\xfe", b"-5\n", b"99999999999999999999999999999\n"],
    ids=["dead-pid", "empty", "garbage", "binary", "negative", "huge"],
)
def test_a_stale_file_is_taken_over(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "d.pid"
    path.write_bytes(content.replace(b"%d", str(dead_pid()).encode()))
    with PidFile(path):
        assert path.read_text() == f"{os.getpid()}\n"


def test_read_pid_rejects_what_is_not_a_pid(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    assert read_pid(path) is None
    for content in (b"", b"garbage\n", b"0\n", b"-5\n", b"12 13\n", b"%d\n" % 2**31):
        path.write_bytes(content)
        assert read_pid(path) is None, content
    path.write_bytes(b" 42\n")
    assert read_pid(path) == 42


def test_a_path_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "d.pid"
    with pytest.raises(PidFileError, match=f"cannot open pidfile {path}: No such file"):
        PidFile(path).acquire()


def test_a_forked_child_carries_the_lock_on(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    pidfile = PidFile(path)
    pidfile.acquire()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    child = os.fork()
    if child == 0:
        status = 1
        try:
            pidfile.acquire()  # the lock is shared: this writes the child's pid
            os.write(ready_w, b"x")
            os.read(go_r, 1)
            pidfile.release()
            status = 0
        finally:
            os._exit(status)
    try:
        assert os.read(ready_r, 1) == b"x"
        assert read_pid(path) == child
        assert lock_holder(path) == child  # /proc/locks names us, but the child has it open
        pidfile.release()  # the parent's copy: closes it, leaves file and lock to the child
        assert read_pid(path) == child
        assert lock_holder(path) == child
        with pytest.raises(PidFileError, match=f"locked by running process {child}"):
            PidFile(path).acquire()
        os.write(go_w, b"x")
        assert os.waitpid(child, 0)[1] == 0
        assert not path.exists()
    finally:
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)


def test_lock_holder_is_the_locking_process_named_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.pid"
    assert lock_holder(path) is None  # no file
    with PidFile(path):
        assert lock_holder(path) == os.getpid()
    path.write_text(f"{os.getpid()}\n")
    assert lock_holder(path) is None  # our pid, but the lock is free: a stale file
    path.write_text("1\n")
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert lock_holder(path) is None  # locked by us, naming a process that is not us


def test_lock_holder_without_a_matching_proc_locks_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some filesystems (btrfs subvolumes) are listed in /proc/locks under other device numbers.
    monkeypatch.setattr(pidfile_module, "_flock_holders", lambda dev, ino: set())
    path = tmp_path / "d.pid"
    with PidFile(path):
        assert lock_holder(path) == os.getpid()  # the lock is held and we have the file open
    path.write_text(f"{os.getpid()}\n")
    assert lock_holder(path) is None
    with PidFile(path):
        assert lock_holder(path) == os.getpid()
    # The probe gave its shared lock back: the file can be locked again at once.
    with PidFile(path):
        pass


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert pid_alive(1)
    assert not pid_alive(dead_pid())
    assert not pid_alive(0)
    assert not pid_alive(-1)
    assert not pid_alive(2**40)


def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not pid_alive(proc.pid)
    proc.wait()
