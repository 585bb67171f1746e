"""Process-wide resources: the open-files limit, the user the daemon runs as, and what it uses.

A daemon that holds many connections needs one file descriptor each, so it raises its soft
``RLIMIT_NOFILE`` to the hard limit at start (:func:`raise_nofile_limit`). One started as root
to bind a low port gives that up once its sockets are bound (:func:`drop_privileges`):
supplementary groups first, then the group, then the user, since after the user changes the
other two can no longer be changed; it then checks that root cannot be taken back.
:func:`give_files_to` hands it the files it made before, so it can still reopen its log and
remove its pidfile. :func:`rss_bytes`, :func:`open_fds` and :func:`start_time` feed the
daemon's stats.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import resource

import psutil

from residentd.errors import ResidentdError

__all__ = [
    "PrivilegeError",
    "drop_privileges",
    "give_files_to",
    "open_fds",
    "raise_nofile_limit",
    "rss_bytes",
    "start_time",
]


class PrivilegeError(ResidentdError):
    """The user or group is unknown, or the process may not switch to it."""


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit; return the (soft, hard) in force.

    Where the hard limit is unlimited and the system refuses that as a soft limit, the soft
    limit stays as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def drop_privileges(user: str | int | None = None, group: str | int | None = None) -> None:
    """Switch to ``user`` and/or ``group``, each a name or a number; nothing when both are None.

    With a user and no group, the user's primary group is taken; either way the supplementary
    groups become the user's groups from the group database. With a group and no user, only
    the groups change. Raises :class:`PrivilegeError` for an unknown user or group, and when
    the process is not root and is asked to become someone else.
    """
    if user is None and group is None:
        return
    uid, name, gid = _lookup_user(user) if user is not None else (os.getuid(), None, None)
    if group is not None:
        gid = _lookup_group(group)
    if gid is None:
        raise PrivilegeError(
            f"user {user!r} has no entry in the password database, so its group is unknown: "
            "give a group too"
        )
    target = _describe(user, group)
    if os.geteuid() != 0:
        if (uid, gid) == (os.getuid(), os.getgid()):
            return
        raise PrivilegeError(
            f"cannot switch to {target}: only root can, and this process runs as uid {os.geteuid()}"
        )
    groups = os.getgrouplist(name, gid) if name is not None else [gid]
    try:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to {target}: {exc.strerror}") from exc
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise PrivilegeError(f"switched to {target}, but root could be taken back")


def _lookup_user(user: str | int) -> tuple[int, str | None, int | None]:
    """(uid, name, primary gid) of a user; a bare uid missing from the database has no name
    and no group."""
    text = str(user)
    try:
        entry = pwd.getpwuid(int(text)) if text.isdigit() else pwd.getpwnam(text)
    except KeyError:
        if text.isdigit():
            return int(text), None, None
        raise PrivilegeError(f"unknown user {text!r}: not in the password database") from None
    return entry.pw_uid, entry.pw_name, entry.pw_gid


def _lookup_group(group: str | int) -> int:
    text = str(group)
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise PrivilegeError(f"unknown group {text!r}: not in the group database") from None


def _describe(user: str | int | None, group: str | int | None) -> str:
    parts = []
    if user is not None:
        parts.append(f"user {str(user)!r}")
    if group is not None:
        parts.append(f"group {str(group)!r}")
    return " and ".join(parts)


def give_files_to(user: str | int | None, group: str | int | None, paths: list[str | None]) -> None:
    """Make the files a root daemon created before :func:`drop_privileges` (its log, pidfile,
    admin socket) belong to the user and group it is about to become, so it can still reopen
    and remove them. Nothing unless running as root with a user or group to become; missing
    paths are skipped."""
    if os.geteuid() != 0 or (user is None and group is None):
        return
    uid, _, gid = _lookup_user(user) if user is not None else (-1, None, None)
    if group is not None:
        gid = _lookup_group(group)
    for path in paths:
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.chown(path, uid, -1 if gid is None else gid)


def start_time() -> float:
    """When this process started, in seconds since the epoch."""
    return float(psutil.Process().create_time())


def rss_bytes() -> int:
    """Resident memory of this process, in bytes."""
    return int(psutil.Process().memory_info().rss)


def open_fds() -> int:
    """Open file descriptors of this process."""
    try:
        # Listing the directory takes one descriptor of its own, which is in the listing.
        return len(os.listdir("/proc/self/fd")) - 1
    except FileNotFoundError:
        return int(psutil.Process().num_fds())
