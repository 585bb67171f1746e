"""The pidfile: one running daemon per file, proven by a lock rather than by the file's content.

:class:`PidFile` opens (or creates) the file, takes an exclusive ``flock`` without waiting, and
writes the pid. The lock is the truth: while the daemon lives it holds the lock, and when it
dies, however it dies, the kernel releases it. So a file left behind by a dead process, or one
holding garbage, has a free lock and is simply taken over; a live holder makes
:meth:`PidFile.acquire` raise :class:`PidFileError` naming the path and the running pid. At exit
:meth:`PidFile.release` removes the file, then unlocks.

Forking: a ``flock`` belongs to the open file description, which a forked child shares with its
parent, so the child holds the lock as well, and the lock lasts until both have closed the file.
A child that carries on as the daemon (after :func:`~residentd.daemon.daemonize.daemonize`)
calls :meth:`~PidFile.acquire` again: the lock is already held, so this only writes the child's
pid. :meth:`~PidFile.release` removes the file and unlocks only in the process whose pid the
file holds; in any other it just closes its copy of the descriptor, leaving the lock with the
process that owns it.

:func:`read_pid`, :func:`pid_alive` and :func:`lock_holder` serve the commands that act on a
running daemon. A pid read from the file alone proves nothing (the daemon may have died and the
pid been reused by an unrelated process), so :func:`lock_holder` answers which process holds the
file's lock: from ``/proc/locks`` (the process that took the ``flock``), or, for a daemon that
shares the lock through a fork (or a filesystem that ``/proc/locks`` lists under other device
numbers), the process the file names when the lock is held and it has this very file open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from types import TracebackType

import psutil

from residentd.errors import ResidentdError

__all__ = ["PidFile", "PidFileError", "lock_holder", "pid_alive", "read_pid"]

_PID_MAX = 2**31 - 1  # pid_t is a signed 32-bit integer


class PidFileError(ResidentdError):
    """The pidfile could not be taken: another process holds it, or it cannot be opened."""


class PidFile:
    """An exclusively locked pidfile; also a context manager (acquire on entry)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        """True while this object holds the file open and locked."""
        return self._fd is not None

    def acquire(self) -> None:
        """Lock the file and write this process's pid to it, or raise :class:`PidFileError`.

        Called again in a forked child, it writes the child's pid (the lock is shared).
        """
        if self._fd is not None:
            if _read_fd_pid(self._fd) != os.getpid():
                _write_pid(self._fd)
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise PidFileError(f"cannot open pidfile {self.path}: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise PidFileError(self._held_message()) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder may have removed the file between our open and our lock, leaving us
            # the lock of a file no longer at the path: open the path again.
            if _is_at_path(fd, self.path):
                break
            os.close(fd)
        try:
            _write_pid(fd)
        except OSError as exc:
            os.close(fd)
            raise PidFileError(f"cannot write pidfile {self.path}: {exc.strerror}") from exc
        self._fd = fd

    def fileno(self) -> int:
        """The locked descriptor (a live upgrade passes it on: the lock goes with it)."""
        assert self._fd is not None, "the pidfile is not locked"
        return self._fd

    @classmethod
    def inherit(cls, path: str | os.PathLike[str], fd: int) -> PidFile:
        """The pidfile whose locked descriptor the last generation passed on; ``acquire``
        writes this process's pid in it."""
        pidfile = cls(path)
        pidfile._fd = fd
        return pidfile

    def release(self) -> None:
        """Remove the file and unlock it (if this process owns it), then close. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _read_fd_pid(fd) == os.getpid():
                if _is_at_path(fd, self.path):
                    os.unlink(self.path)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _held_message(self) -> str:
        pid = read_pid(self.path)
        holder = f"running process {pid}" if pid is not None else "another process"
        return f"pidfile {self.path} is locked by {holder}: is the daemon already running?"

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self.locked else "unlocked"
        return f"<PidFile {self.path} {state}>"


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _read_fd_pid(fd: int) -> int | None:
    return _parse_pid(os.pread(fd, 32, 0))


def _is_at_path(fd: int, path: str) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _parse_pid(data: bytes) -> int | None:
    try:
        pid = int(data)
    except ValueError:
        return None
    return pid if 0 < pid <= _PID_MAX else None


def read_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid written in a pidfile, or None if it is missing, unreadable or not a pid."""
    try:
        with open(path, "rb") as file:
            return _parse_pid(file.read(32))
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists and has not exited (a zombie has)."""
    if not 0 < pid <= _PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user's process
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def lock_holder(path: str | os.PathLike[str]) -> int | None:
    """The pid written in the pidfile if that process holds the file's lock, else None.

    None means no daemon owns the file: it is missing, holds no pid, its lock is free, or the
    lock is held by someone other than the process it names. Raises :class:`OSError` when the
    file exists but cannot be examined (``/proc/locks`` unreadable, say).
    """
    try:
        held = os.stat(path)
    except FileNotFoundError:
        return None
    pid = read_pid(path)
    if pid is None:
        return None
    lockers = _flock_holders(held.st_dev, held.st_ino)
    if pid in lockers:
        return pid
    # Held by another process (a lock shared through a fork), or on a filesystem that
    # /proc/locks lists under other device numbers (btrfs subvolumes): the process the file
    # names must then have this very file open.
    if (lockers or _lock_is_held(path)) and _has_open(pid, held.st_dev, held.st_ino):
        return pid
    return None


def _flock_holders(dev: int, ino: int) -> set[int]:
    """Pids that took a ``flock`` on the file (dev, ino), from ``/proc/locks``."""
    wanted = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}"
    holders = set()
    with open("/proc/locks", encoding="ascii", errors="replace") as locks:
        for line in locks:
            # "1: FLOCK  ADVISORY  WRITE 4711 fe:00:2147666 0 EOF"; "-> " marks waiters.
            fields = line.split()
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == wanted:
                with contextlib.suppress(ValueError):
                    holders.add(int(fields[4]))
    return holders


def _lock_is_held(path: str | os.PathLike[str]) -> bool:
    """Whether some process holds a lock on the file: a shared lock cannot be taken at once.
    (Taken, it is given back at once.)"""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing gives back the lock we may have taken
    return False


def _has_open(pid: int, dev: int, ino: int) -> bool:
    """Whether process ``pid`` has the file (dev, ino) open (False if we may not look)."""
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        try:
            target = os.stat(f"{folder}/{name}")
        except OSError:
            continue
        if (target.st_dev, target.st_ino) == (dev, ino):
            return True
    return False
