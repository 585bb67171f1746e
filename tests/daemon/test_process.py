"""Process resources: the open-files limit, dropping privileges, RSS and descriptor counts."""

from __future__ import annotations

import grp
import json
import os
import pwd
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from residentd.daemon.process import (
    PrivilegeError,
    drop_privileges,
    open_fds,
    raise_nofile_limit,
    rss_bytes,
)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_the_soft_nofile_limit_is_raised_to_the_hard_one() -> None:
    # In a fresh process whose soft limit starts low (the test runner already raised its own).
    script = """
import json, resource
from residentd.daemon.process import raise_nofile_limit

limit = resource.RLIMIT_NOFILE
soft, hard = resource.getrlimit(limit)
resource.setrlimit(limit, (min(64, hard), hard))
returned = raise_nofile_limit()
print(json.dumps([min(64, hard), hard, returned, resource.getrlimit(limit)]))
"""
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    before, hard, returned, now = json.loads(output)
    assert before < hard
    assert returned == now == [hard, hard]


def test_raising_again_changes_nothing() -> None:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_nofile_limit() == limits == resource.getrlimit(resource.RLIMIT_NOFILE)


def test_nothing_asked_nothing_done() -> None:
    ids = (os.getuid(), os.getgid(), os.getgroups())
    drop_privileges(None, None)
    assert (os.getuid(), os.getgid(), os.getgroups()) == ids


def test_unknown_user_and_group_are_named() -> None:
    with pytest.raises(PrivilegeError, match="unknown user 'no-such-user-rd': not in the password"):
        drop_privileges("no-such-user-rd")
    with pytest.raises(PrivilegeError, match="unknown group 'no-such-group-rd': not in the group"):
        drop_privileges("nobody", "no-such-group-rd")


def test_a_bare_uid_needs_a_group() -> None:
    uid = next(uid for uid in range(54321, 60000) if not _has_passwd_entry(uid))
    with pytest.raises(PrivilegeError, match=f"user {uid} has no entry .* give a group too"):
        drop_privileges(uid)


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def in_child(body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``body`` in a forked child (privileges once dropped stay dropped) and return the
    JSON-able dict it returns, or {"error": ...} for what it raised."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            try:
                result = body()
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:
        data = reader.read()
    os.waitpid(pid, 0)
    return dict(json.loads(data))


def ids_after(user: str | None, group: str | None) -> dict[str, Any]:
    drop_privileges(user, group)
    try:
        os.setuid(0)
        regained = True
    except PermissionError:
        regained = False
    return {
        "uid": [os.getuid(), os.geteuid()],
        "gid": [os.getgid(), os.getegid()],
        "groups": sorted(os.getgroups()),
        "regained": regained,
    }


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' here")


@root_only
def test_drop_to_nobody(nobody: pwd.struct_passwd) -> None:
    assert in_child(lambda: ids_after("nobody", None)) == {
        "uid": [nobody.pw_uid] * 2,
        "gid": [nobody.pw_gid] * 2,
        "groups": sorted(set(os.getgrouplist("nobody", nobody.pw_gid))),
        "regained": False,
    }


@root_only
def test_drop_to_a_group_by_number(nobody: pwd.struct_passwd) -> None:
    group = grp.getgrgid(nobody.pw_gid)
    assert in_child(lambda: ids_after(None, str(group.gr_gid))) == {
        "uid": [0, 0],
        "gid": [group.gr_gid] * 2,
        "groups": [group.gr_gid],
        "regained": True,  # the user did not change: still root
    }


@root_only
def test_once_dropped_there_is_no_way_back(nobody: pwd.struct_passwd) -> None:
    def again() -> dict[str, Any]:
        drop_privileges("nobody")
        drop_privileges("nobody")  # already there: nothing to do, allowed
        drop_privileges("root")
        return {}

    assert in_child(again) == {
        "error": "PrivilegeError: cannot switch to user 'root': only root can, and this "
        f"process runs as uid {nobody.pw_uid}"
    }


def test_rss_grows_with_memory_in_use() -> None:
    before = rss_bytes()
    block = b"x" * (64 << 20)
    grown = rss_bytes()
    assert before > 0
    assert grown - before >= 48 << 20
    del block


def count_open_fds() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = 0
    for fd in range(soft):
        try:
            os.fstat(fd)
        except OSError:
            continue
        count += 1
    return count


def test_open_fds_counts_descriptors() -> None:
    assert open_fds() == count_open_fds()
    before = open_fds()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(10)]
    assert open_fds() == before + 10
    for fd in fds:
        os.close(fd)
    assert open_fds() == before
