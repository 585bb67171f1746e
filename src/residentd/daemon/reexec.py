"""The master's own upgrade: it executes itself again in place (``os.execv``: same pid).

After a live upgrade has given every slot a new worker, the master runs the code on disk too:
it executes ``residentd`` again with its command line, keeping its pid, so its workers stay
its children and the pidfile stays right. What it holds crosses the exec as inherited
descriptors, described in ``RESIDENTD_MASTER`` (plain JSON): every slot's listening sockets,
the admin endpoint's sockets, the locked pidfile, and each worker's pid, slot, start time and
control socket. The new master binds nothing and starts no worker: it adopts them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from residentd.daemon.slots import Slots

ENV_MASTER = "RESIDENTD_MASTER"


@dataclass
class Inheritance:
    """What a master hands to itself across the exec."""

    slots: list[dict[str, list[int]]]
    reuse_port: bool
    unix_paths: list[str]
    admin: list[int]
    pidfile: int | None
    #: (slot, pid, control fd, seconds it has lived)
    workers: list[tuple[int, int, int, float]]
    restarts: list[int]
    execs: int
    extra: dict[str, Any] = field(default_factory=dict)

    def slot_sockets(self) -> Slots:
        """Every slot's sockets again (one object per descriptor, as before)."""
        made: dict[int, socket.socket] = {}
        slots = [
            {
                name: [made.setdefault(fd, socket.socket(fileno=fd)) for fd in fds]
                for name, fds in slot.items()
            }
            for slot in self.slots
        ]
        return Slots(slots, self.reuse_port, list(self.unix_paths))

    def admin_sockets(self, listen: dict[str, list[str]]) -> dict[str, list[socket.socket]]:
        """The admin endpoint's sockets (``Daemon._start_admin``'s ``inherit``)."""
        return {"admin": [socket.socket(fileno=fd) for fd in self.admin]}

    def fds(self) -> list[int]:
        found = [fd for slot in self.slots for fds in slot.values() for fd in fds]
        found += self.admin + [control for _, _, control, _ in self.workers]
        return found + ([self.pidfile] if self.pidfile is not None else [])

    def dumps(self) -> str:
        data = self.__dict__ | {"stamp": time.monotonic()}
        return json.dumps(data)

    @classmethod
    def from_env(cls) -> Inheritance | None:
        text = os.environ.pop(ENV_MASTER, None)
        if not text:
            return None
        data = json.loads(text)
        since = time.monotonic() - float(data.pop("stamp"))
        data["workers"] = [
            (int(slot), int(pid), int(control), float(lived) + since)
            for slot, pid, control, lived in data["workers"]
        ]
        return cls(**data)


def execute(inheritance: Inheritance, start_dir: str) -> None:
    """Replace this process by ``residentd`` with the same command line, handing it
    ``inheritance``; returns only if the exec failed (OSError raised)."""
    for fd in inheritance.fds():
        os.set_inheritable(fd, True)
    os.environ[ENV_MASTER] = inheritance.dumps()
    try:
        os.chdir(start_dir)  # the command line's relative paths mean the same
        os.execv(sys.executable, [sys.executable, "-m", "residentd", *sys.argv[1:]])
    finally:
        os.environ.pop(ENV_MASTER, None)
