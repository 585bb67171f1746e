"""A worker's side of the master's control channel (``workers > 1``; the master's side is
daemon/supervisor.py).

The master starts each worker as ``residentd`` again with the same command line (fork and
exec: a new worker runs the code and config now on disk), with ``RESIDENTD_WORKER`` naming its
slot, its end of a Unix socket pair (the control channel) and the slot's listening sockets,
which it inherits. The worker is an ordinary ``Daemon`` that serves those sockets; it has no
pidfile, no admin endpoint and no word with systemd, which are the master's.

Over the channel (net/handover.py's framing), the worker says ``ready`` once it accepts, then
answers each of the master's messages:

- ``ping`` (every second): ``pong`` with its status (pid, slot, uptime, connections, RSS, loop
  lag, requests...); a worker that leaves pings unanswered for ``worker_heartbeat_timeout`` is
  killed and replaced by the master.
- ``metrics``: its Prometheus text, which the master merges into one scrape.
- ``retire`` (a rolling restart, once the slot's new worker accepts): stop accepting, let the
  open connections finish (until they close or ``shutdown_timeout``), then stop gracefully.
- ``upgrade``, with the handover socket of a new worker the master started: hand that worker
  this one's connections and state (daemon/upgrade.py, without the listeners: the master keeps
  them), then exit; ``upgraded`` or ``upgrade-failed`` tells the master how it went.

A worker dies with its master: the kernel sends it SIGTERM when the master ends
(``PR_SET_PDEATHSIG``), and an end of file on the channel means the same; either way it stops
gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

import msgspec

from residentd.daemon.metrics import prometheus_text
from residentd.net.handover import Channel, HandoverError

if TYPE_CHECKING:
    from residentd.daemon.runner import Daemon

log = logging.getLogger("residentd.worker")

ENV_WORKER = "RESIDENTD_WORKER"
_PR_SET_PDEATHSIG = 1
#: Seconds a retiring worker lets pass after it stopped accepting, for the connections it
#: accepted last to be made.
RETIRE_SETTLE = 0.1


def describe(slot: int, control: int, listeners: dict[str, list[int]]) -> str:
    """The value of ``RESIDENTD_WORKER`` for a worker of ``slot``."""
    return json.dumps(
        {"slot": slot, "control": control, "listeners": listeners, "master": os.getpid()}
    )


def die_with_parent(master: int) -> None:
    """Have the kernel send SIGTERM to this process when ``master`` (its parent) ends; if it
    has ended already, send it now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != master:
        os.kill(os.getpid(), signal.SIGTERM)


class WorkerLink:
    """What a worker knows of its master: its slot, the control channel, the slot's sockets."""

    def __init__(self, slot: int, control: int, listeners: dict[str, list[int]]) -> None:
        self.slot = slot
        self.control = control
        self.listeners = listeners
        self.channel: Channel | None = None
        self.task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_env(cls) -> WorkerLink | None:
        """The link described by ``RESIDENTD_WORKER`` (which is removed from the environment,
        so that nothing this worker starts takes it for a worker), or None."""
        text = os.environ.pop(ENV_WORKER, None)
        if not text:
            return None
        data = json.loads(text)
        die_with_parent(int(data["master"]))
        return cls(int(data["slot"]), int(data["control"]), data["listeners"])

    def inherited(self) -> dict[str, list[socket.socket]]:
        """The slot's listening sockets, by service."""
        return {
            name: [socket.socket(fileno=fd) for fd in fds] for name, fds in self.listeners.items()
        }

    def start(self, daemon: Daemon) -> None:
        """Say ``ready`` and answer the master from now on (a task on the daemon's loop)."""
        self.channel = Channel(socket.socket(fileno=self.control), daemon.loop)
        self.task = daemon.loop.create_task(self._serve(daemon))

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _background(self, daemon: Daemon, work: Coroutine[Any, Any, None]) -> None:
        task = daemon.loop.create_task(work)
        self._tasks.add(task)  # kept until done: the loop holds tasks only weakly
        task.add_done_callback(self._tasks.discard)

    async def send(self, header: dict[str, Any]) -> None:
        assert self.channel is not None
        await self.channel.send(header)

    async def _serve(self, daemon: Daemon) -> None:
        assert self.channel is not None
        try:
            await self.channel.send({"kind": "ready", "pid": os.getpid(), "slot": self.slot})
            while True:
                header, _, fds = await self.channel.receive()
                kind = header.get("kind")
                if kind == "ping":
                    await self.channel.send({"kind": "pong", "status": self.status(daemon)})
                elif kind == "metrics":
                    text = prometheus_text(daemon.status())
                    await self.channel.send({"kind": "metrics", "id": header["id"], "text": text})
                elif kind == "loglevel":
                    daemon.set_log_level(str(header["level"]))
                elif kind == "retire":
                    self._background(daemon, self._retire(daemon))
                elif kind == "upgrade" and fds:
                    fd = fds.pop()
                    self._background(daemon, self._upgrade(daemon, socket.socket(fileno=fd)))
                for fd in fds:
                    os.close(fd)
        except (HandoverError, OSError) as exc:
            if not daemon.stop_requested and daemon.upgraded_to is None:
                log.warning("worker %d: the master is gone (%s): stopping", self.slot, exc)
                daemon.request_stop()

    def status(self, daemon: Daemon) -> dict[str, Any]:
        """Its status as plain data (reasons are enum members here: strings over there)."""
        status = daemon.status()
        status["slot"] = self.slot
        return cast("dict[str, Any]", msgspec.json.decode(msgspec.json.encode(status)))

    async def _retire(self, daemon: Daemon) -> None:
        """Stop accepting (the slot's new worker does), let the open connections finish for up
        to ``shutdown_timeout``, then stop gracefully."""
        if daemon.stop_requested:
            return
        daemon.server.stop_accepting()
        # A connection accepted just before is made a loop iteration or two later: wait for
        # it, or the stop would refuse it at the door after it was accepted.
        await asyncio.sleep(RETIRE_SETTLE)
        deadline = daemon.loop.time() + daemon.config.daemon.shutdown_timeout
        while daemon.server.connections and daemon.loop.time() < deadline:
            if daemon.stop_requested:
                return
            await asyncio.sleep(0.05)
        if not daemon.stop_requested:
            daemon.request_stop()

    async def _upgrade(self, daemon: Daemon, handover: socket.socket) -> None:
        result = await daemon.upgrade(handover)
        kind = "upgraded" if result.get("ok") else "upgrade-failed"
        with contextlib.suppress(HandoverError, OSError):
            await self.send({"kind": kind, **result})
