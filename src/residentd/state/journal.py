"""The journal file an app's records are appended to, and its fsync policies.

Records are buffered in memory as they come (``append``, or an app that writes them into
``buffer`` itself, as kv's C fast path does) and written once per loop iteration (``write``,
called from the server's commit point before any reply goes out), so a burst of writes from
many connections costs one ``write``. The buffer can be handed in and outlive the journal: a
``Persistence`` keeps one for its life, so the app's reference to it stays good when the journal
file is switched. Then, by policy:

- ``always``: ``commit`` fsyncs before returning, so the replies that follow are durable.
- ``everysec``: a background thread fsyncs about once a second; the loop never waits on disk.
- ``no``: the kernel decides when the data reaches the disk.

A failed write (ENOSPC, EFBIG, EIO) raises ``OSError`` after cutting the file back to its last
whole record; the unwritten bytes stay buffered and go out on the next successful ``write``.

The fsyncs are ``fdatasync`` where the system has it, as Redis's ``redis_fsync`` on Linux: the
data and the size it needs to be read back reach the disk, the modification time is not written
for every iteration.
"""

from __future__ import annotations

import os
import threading
import time

POLICIES = ("always", "everysec", "no")

_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync

# For tests only: seconds every fsync of a journal takes on top of the disk's own time, so that a
# test can look inside the window between a write and its fsync.
_FSYNC_DELAY = float(os.environ.get("RESIDENTD_TEST_FSYNC_DELAY") or 0)
if _FSYNC_DELAY > 0:
    _real_datasync = _datasync

    def _datasync(fd: int) -> None:
        _real_datasync(fd)
        time.sleep(_FSYNC_DELAY)


class Journal:
    def __init__(self, path: str, policy: str, buffer: bytearray | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"appendfsync must be one of {', '.join(POLICIES)}")
        self.path = path
        self.policy = policy
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size  # bytes written to the file
        self.synced = self.size  # bytes known to be on disk
        self.buffer = bytearray() if buffer is None else buffer
        self.unsynced_since = 0.0  # time.monotonic() of the oldest write not yet fsynced
        self.last_fsync_error: OSError | None = None
        self.writes = 0  # write() calls that wrote a batch of records
        self.fsyncs = 0
        self._lock = threading.Lock()  # the fd against the fsync thread
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if policy == "everysec":
            self._start_syncer()

    # -- writing (on the loop) -------------------------------------------------------------------

    def append(self, data: bytes) -> None:
        self.buffer += data

    @property
    def pending(self) -> int:
        return len(self.buffer)

    def write(self) -> None:
        """Write the buffered records; raise OSError with the file cut back to whole records."""
        buffer = self.buffer
        if not buffer:
            return
        done = os.write(self.fd, buffer)  # nothing written if it raises
        if done < len(buffer):  # a short write: the rest, or cut back to whole records
            self._write_rest(done)
        if self.synced == self.size:
            self.unsynced_since = time.monotonic()
        self.size += len(buffer)
        self.writes += 1
        del buffer[:]

    def _write_rest(self, done: int) -> None:
        error: OSError | None = None
        with memoryview(self.buffer) as data:
            try:
                while done < len(data):
                    done += os.write(self.fd, data[done:])
            except OSError as exc:
                error = exc
        if error is not None:  # outside the view: _undo may resize the buffer
            self._undo(done)
            raise error

    def _undo(self, done: int) -> None:
        """After a failed write of which ``done`` bytes made it: cut them off, or if the file
        cannot be cut, keep them and drop them from the buffer (no record is written twice)."""
        if not done:
            return
        try:
            os.ftruncate(self.fd, self.size)
        except OSError:
            self.size += done
            del self.buffer[:done]

    def commit(self) -> None:
        """Write the buffered records and, with ``always``, fsync them."""
        self.write()
        if self.policy == "always" and self.synced < self.size:
            _datasync(self.fd)
            self.fsyncs += 1
            self.synced = self.size

    def sync(self) -> None:
        """Write and fsync now, whatever the policy (before a rotation or a stop)."""
        self.write()
        with self._lock:
            if self.synced < self.size:
                _datasync(self.fd)
                self.fsyncs += 1
                self.synced = self.size

    def fsync_lag(self) -> float:
        """Seconds since the oldest write that is not yet known to be on disk (0 if none)."""
        if self.synced >= self.size or self.policy == "no":
            return 0.0  # with "no" the kernel decides: there is no lag of ours to show
        return time.monotonic() - self.unsynced_since

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    # -- everysec ----------------------------------------------------------------------------------

    def _start_syncer(self) -> None:
        self._thread = threading.Thread(target=self._syncer, name="journal-fsync", daemon=True)
        self._thread.start()

    def _syncer(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                target = self.size
                if self.fd < 0 or self.synced >= target:
                    continue
                try:
                    _datasync(self.fd)
                except OSError as exc:
                    self.last_fsync_error = exc
                    continue
                self.last_fsync_error = None
                self.fsyncs += 1
                self.synced = max(self.synced, target)
