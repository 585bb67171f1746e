"""Whether the disk accepts the app's data: the errors that refuse writes, and their log lines.

Two sources can refuse writes: the journal (a write or fsync the disk refused) and the snapshot
(a failed one while a ``save`` schedule is set, as Redis's ``stop-writes-on-bgsave-error``).
Writes are allowed again once every source has recovered. The log says why once when writes
stop (then at most once a minute while it lasts) and once when they resume.
"""

from __future__ import annotations

import logging
import time

from residentd.state.api import NotWritable

log = logging.getLogger("residentd.state")

LOG_EVERY = 60.0  # a disk error still going on is logged again at most this often


class DiskHealth:
    __slots__ = ("_errors", "_logged_at", "last_error", "last_strerror", "writable")

    def __init__(self) -> None:
        self.writable = True
        self.last_error: str | None = None
        self.last_strerror = ""  # the system's text of the last error ("No space left...")
        self._errors: dict[str, str] = {}  # source ("journal", "snapshot") -> why
        self._logged_at = 0.0

    def failing(self, source: str) -> bool:
        return source in self._errors

    def fail(self, source: str, text: str, strerror: str) -> None:
        first = self.writable
        self._errors[source] = text
        self.last_error = text
        self.last_strerror = strerror
        self.writable = False
        now = time.monotonic()
        if first or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            log.error("%s; refusing writes until the disk accepts data again", text)

    def recover(self, source: str) -> None:
        self._errors.pop(source, None)
        if not self._errors and not self.writable:
            self.writable = True
            log.warning("the disk accepts data again: writes resumed (%s)", self.last_error)

    def check(self) -> None:
        """Raise ``NotWritable`` while a source refuses writes."""
        if not self.writable:
            kind = "journal" if "journal" in self._errors else "snapshot"
            raise NotWritable(self.last_error or "the disk refused data", kind, self.last_strerror)
