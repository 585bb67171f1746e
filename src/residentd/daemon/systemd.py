"""systemd's notify protocol: tell the service manager when the daemon is ready, reloading,
stopping, what it is doing, and that its loop is still alive.

systemd passes the address of a datagram socket in ``NOTIFY_SOCKET``: a path, or a name in the
abstract namespace written with a leading ``@``. Each message is one datagram of
newline-separated ``KEY=value`` assignments, such as ``READY=1``. The socket is non-blocking and
a failed send is counted in :attr:`SystemdNotifier.errors`, never raised: being unable to tell
systemd something must not take the event loop down. Without ``NOTIFY_SOCKET`` the notifier is
disabled and every call does nothing, so callers never need to check.

With ``WatchdogSec=`` in the unit, systemd sets ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the one
process it is meant for) and restarts a service that does not send ``WATCHDOG=1`` in time.
:meth:`SystemdNotifier.watchdog_interval` says how often to send it: at half that time. Send it
from a timer on the event loop, so that a stalled loop is what stops the pings.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = ["SystemdNotifier"]


class SystemdNotifier:
    """A sender of notify messages to ``address`` (a path or ``@abstract``); None disables it."""

    __slots__ = ("_socket", "_target", "_watchdog_usec", "address", "errors")

    def __init__(self, address: str | None = None, *, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        #: Messages that could not be sent.
        self.errors = 0
        self._target: str | None = None
        if self.address is not None:
            at = self.address.startswith("@")
            self._target = "\0" + self.address[1:] if at else self.address
        self._watchdog_usec = watchdog_usec if self.address else None
        self._socket: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        """The notifier that ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``/``WATCHDOG_PID`` describe."""
        env = os.environ if environ is None else environ
        watchdog_usec: int | None = None
        watchdog_pid = env.get("WATCHDOG_PID")
        if watchdog_pid is None or watchdog_pid.strip() == str(os.getpid()):
            try:
                watchdog_usec = int(env.get("WATCHDOG_USEC", ""))
            except ValueError:
                watchdog_usec = None
        if watchdog_usec is not None and watchdog_usec <= 0:
            watchdog_usec = None
        return cls(env.get("NOTIFY_SOCKET"), watchdog_usec=watchdog_usec)

    @property
    def enabled(self) -> bool:
        return self._target is not None

    def send(self, **fields: object) -> bool:
        """Send ``KEY=value`` assignments in one message; True if it was sent.

        A newline inside a value would end the assignment early, so it is sent as a space.
        """
        lines = [f"{key}={_one_line(value)}" for key, value in fields.items()]
        return self.send_raw("\n".join(lines))

    def send_raw(self, text: str) -> bool:
        """Send ``text`` as one datagram, as it is; True if it was sent."""
        if self._target is None:
            return False
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(text.encode(), self._target)
        except OSError:
            self.errors += 1
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: startup is done (with a ``STATUS=`` line if given)."""
        if status is None:
            return self.send(READY=1)
        return self.send(READY=1, STATUS=status)

    def reloading(self) -> bool:
        """``RELOADING=1`` with the ``MONOTONIC_USEC`` that ``Type=notify-reload`` asks for.

        Send :meth:`ready` when the reload is done.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send(RELOADING=1, MONOTONIC_USEC=usec)

    def stopping(self) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.send(STOPPING=1)

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line that ``systemctl status`` shows."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the loop is alive."""
        return self.send(WATCHDOG=1)

    def watchdog_interval(self) -> float | None:
        """Seconds between :meth:`watchdog` calls (half of ``WATCHDOG_USEC``), or None when
        systemd does not watch this process."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __repr__(self) -> str:
        return f"<SystemdNotifier {self.address or 'disabled'}>"


def _one_line(value: object) -> str:
    return str(value).replace("\n", " ")
