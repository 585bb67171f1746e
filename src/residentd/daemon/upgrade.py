"""Live upgrade: a new generation of the daemon takes over its sockets, state and connections.

``residentd upgrade`` (POST /upgrade) or SIGUSR2 starts it. The running daemon (the old
generation) starts ``residentd`` again with the same command line, so the code and config now
on disk are what runs, and gives it one end of a Unix socket pair (``RESIDENTD_HANDOVER_FD``).
Then, over that socket (net/handover.py does the framing and the connections' side):

1. ``hello``: the new generation has loaded its code and config. Until here, the old one
   serves as usual; a new generation that fails to start costs nothing.
2. ``listeners``: the listening sockets (the app's, the admin endpoint's) and the pidfile's
   descriptor go across. The old generation then stops accepting, the sockets staying open:
   new connections wait in the kernel's backlog, and none is refused.
3. The old generation stops reading every connection at a message boundary and waits (a
   bounded time) until each owes its peer nothing.
4. ``state``: the app's resident state, in its snapshot format (``StateMachine.dump`` wrapped
   in its ``snapshot_format``), streamed over the socket, never written to disk.
5. ``connections``: every connection whose session exports its state goes across with that
   state and the bytes its codec read but did not parse, ``MAX_FDS`` per message; ``done``.
6. ``ready``: the new generation has loaded the state, bound its services to the inherited
   sockets and adopted every connection, none of them read yet; it wrote its pid in the
   pidfile. The old one answers ``go``: from then on the new one accepts and reads, and the
   old one closes its copies, says goodbye to the connections that did not go across, and
   exits.

Until ``go`` is sent, the old generation can take everything back: if the new one exits,
reports an error or is not ready within ``upgrade_timeout``, it is killed, and the old one
accepts and reads again as if nothing happened (the pidfile gets its pid back); the error and
the end of the new generation's output are what ``residentd upgrade`` prints. Only one upgrade
runs at a time, and only one generation ever accepts. systemd (``Type=notify``, with
``NotifyAccess=all``) hears ``RELOADING=1`` at the start, then ``MAINPID=`` and ``READY=1``
from the new generation, or ``READY=1`` from the old one after a failure.

With ``workers > 1`` the master runs an upgrade slot by slot (daemon/supervisor.py): it
starts the slot's new worker itself, with the slot's listening sockets, and gives the old
worker the other end of the new one's handover socket (``Upgrade(daemon, handover)``). The
steps are the same but for the listeners, which stay with the master: step 2 sends none, and
the old worker only stops accepting. A rollback leaves the killing of the new worker to the
master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from residentd.errors import ResidentdError
from residentd.net import handover
from residentd.net.handover import MAX_FDS, Channel, HandoverError, Listeners

if TYPE_CHECKING:
    from residentd.daemon.runner import Daemon
    from residentd.net.connection import Connection

log = logging.getLogger("residentd.upgrade")

ENV_FD = "RESIDENTD_HANDOVER_FD"  # the new generation's end of the socket pair
ENV_STDIO = "RESIDENTD_HANDOVER_STDIO"  # "OUT,ERR": where its stdout and stderr go once in charge
SETTLE_TIMEOUT = 5.0  # seconds connections get to send what they owe before the handover
TAIL_BYTES = 4000  # of the new generation's output, in an error report
ACCEPT_ROUNDS = 4  # loop rounds that finish making the connections accepted already


class UpgradeFailed(ResidentdError):
    """The new generation did not take over; ``str()`` says why, with its output's tail."""


# -- the old generation ------------------------------------------------------------------------


class Upgrade:
    """One attempt, run by the old generation (``Daemon.upgrade``)."""

    def __init__(self, daemon: Daemon, handover: socket.socket | None = None) -> None:
        self.daemon = daemon
        #: A worker's end of the handover socket of the new worker its master started.
        self.handover = handover
        self.loop = daemon.loop
        self.timeout: float = daemon.config.daemon.upgrade_timeout
        self.process: subprocess.Popen[bytes] | None = None
        # The new generation's stdout and stderr until it is in charge: their tail goes in the
        # error report of a failed upgrade.
        self.output = tempfile.TemporaryFile()  # noqa: SIM115 (closed by run)
        self.channel: Channel | None = None
        self.listeners: list[Listeners] = []
        self.held: list[Connection] = []
        self.handed: list[Connection] = []
        self.paused = False
        #: Seconds of each step (and the state's size), logged with the outcome.
        self.times: dict[str, float] = {}

    async def run(self) -> int:
        """Hand everything over; the new generation's pid, or UpgradeFailed (rolled back)."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                pid = await self._hand_over()
        except Exception as exc:  # whatever went wrong, this generation takes everything back
            if isinstance(exc, TimeoutError):
                reason = "no answer within upgrade_timeout"
            elif isinstance(exc, HandoverError | OSError | UpgradeFailed):
                reason = str(exc)
            else:
                log.exception("upgrade failed")
                reason = repr(exc)
            error = f"upgrade failed: {reason}{self._tail()}"
            await self._roll_back()
            raise UpgradeFailed(error) from None
        finally:
            self.output.close()
        self._commit()
        log.info(
            "upgraded: pid %d serves now (%d connections handed over, %.3f s)",
            pid,
            len(self.handed),
            time.monotonic() - started,
            extra={"ctx": {key: round(value, 4) for key, value in self.times.items()}},
        )
        return pid

    async def _hand_over(self) -> int:
        daemon = self.daemon
        if self.handover is not None:
            self.channel = Channel(self.handover, self.loop)
        else:
            self.channel = self._spawn()
        hello = await self._expect("hello")
        log.info("upgrade: new generation pid %d started", hello["pid"])
        servers = [daemon.server] + ([daemon.admin] if daemon.admin is not None else [])
        self.listeners = [Listeners.take(server) for server in servers]
        fds = [fd for listeners in self.listeners for _, _, fd in listeners.sockets]
        items = [
            {"server": index, "service": name, "address": address}
            for index, listeners in enumerate(self.listeners)
            for name, address, _ in listeners.sockets
        ]
        if self.handover is not None:  # a worker: the master keeps the listeners
            fds, items = [], []
        pidfile = daemon.pidfile.fileno() if daemon.pidfile is not None else None
        # The addresses as configured (a host name, port 0): the new generation inherits a
        # service's sockets when its own configuration names the same ones.
        listen = daemon.config.listen()
        configured = [
            {s.name: list(listen.get(s.name, s.listen)) for s in daemon.app.services},
            {"admin": [daemon.admin_address]},
        ]
        await self.channel.send(
            {
                "kind": "listeners",
                "items": items,
                "configured": configured,
                "pidfile": pidfile is not None,
            },
            fds=fds + ([pidfile] if pidfile is not None else []),
        )
        paused = time.monotonic()
        await self._pause()
        self.times["settle"] = time.monotonic() - paused
        state = self._dump_state()
        self.times["dump"] = time.monotonic() - paused - self.times["settle"]
        await self.channel.send({"kind": "state"}, state)
        self.times["state_bytes"] = len(state)
        ready = [conn for conn in self.held if handover.settled(conn)]
        batch: list[tuple[Connection, dict[str, Any]]] = []
        for conn in ready:
            item = handover.export(conn)
            if item is None:
                continue
            batch.append((conn, item))
            if len(batch) == MAX_FDS:
                await self._send_connections(batch)
                batch = []
        await self._send_connections(batch)
        await self.channel.send({"kind": "done", "connections": len(self.handed)})
        sent = time.monotonic()
        answer = await self._expect("ready")
        self.times["wait_ready"] = time.monotonic() - sent
        if daemon.stop_requested:
            raise UpgradeFailed("a stop was asked for during the upgrade")
        await self.channel.send({"kind": "go"})
        self.times["paused"] = time.monotonic() - paused
        return int(answer["pid"])

    def _spawn(self) -> Channel:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stdio = [os.dup(1), os.dup(2)]
        env = dict(os.environ)
        env[ENV_FD] = str(theirs.fileno())
        env[ENV_STDIO] = f"{stdio[0]},{stdio[1]}"
        env.pop("WATCHDOG_PID", None)  # the new generation pings the watchdog once in charge
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "residentd", *sys.argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=self.output,
                stderr=self.output,
                pass_fds=[theirs.fileno(), *stdio],
                env=env,
                cwd=self.daemon.start_dir,  # the command line's relative paths mean the same
            )
        finally:
            theirs.close()
            for fd in stdio:
                os.close(fd)
        return Channel(ours, self.loop)

    async def _expect(self, kind: str) -> dict[str, Any]:
        assert self.channel is not None
        header, _, fds = await self.channel.receive()
        for fd in fds:
            os.close(fd)
        if header.get("kind") == "error":
            raise UpgradeFailed(str(header.get("error")))
        if header.get("kind") != kind:
            raise HandoverError(f"expected {kind!r} from the new generation, got {header!r}")
        return header

    async def _pause(self) -> None:
        """Stop accepting and reading; wait until every connection owes its peer nothing."""
        self.paused = True
        for listeners in self.listeners:
            listeners.stop_accepting()
        # A connection the listener accepted just before it stopped is made by callbacks the
        # loop has queued (uvloop: one; asyncio: a task, then a callback): let them run, so
        # that every connection is in ``connections`` before the last hold below. One made
        # after the state's dump would run its commands here, and their writes would be lost.
        for _ in range(ACCEPT_ROUNDS):
            await asyncio.sleep(0)
        connections = self.daemon.server.connections
        deadline = self.loop.time() + SETTLE_TIMEOUT
        while True:
            # Again on each round: a connection accepted just before the listeners closed is
            # made a loop iteration later.
            self.held = list(connections.values())
            for conn in self.held:
                handover.hold(conn)
            if self.loop.time() >= deadline or all(
                handover.settled(conn) or conn.closing for conn in self.held
            ):
                break
            await asyncio.sleep(0.005)
        # No await from here to the state's dump: nothing runs a command in between.
        self.held = list(connections.values())
        for conn in self.held:
            handover.hold(conn)
        persistence = self.daemon.app.persistence
        if persistence is not None:
            persistence.settle()

    def _dump_state(self) -> bytes:
        persistence = self.daemon.app.persistence
        return b"" if persistence is None else persistence.export_snapshot()

    async def _send_connections(self, batch: list[tuple[Connection, dict[str, Any]]]) -> None:
        if not batch:
            return
        assert self.channel is not None
        fds = [_fileno(conn) for conn, _ in batch]
        items = [item for _, item in batch]
        await self.channel.send({"kind": "connections", "items": items}, fds=fds)
        self.handed.extend(conn for conn, _ in batch)

    def _tail(self) -> str:
        try:
            self.output.flush()
            size = self.output.seek(0, os.SEEK_END)
            self.output.seek(max(size - TAIL_BYTES, 0))
            text = self.output.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""
        return f"\n--- the new generation's output ---\n{text}" if text else ""

    async def _roll_back(self) -> None:
        """Kill the new generation and serve on as if nothing happened."""
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            await self.loop.run_in_executor(None, self.process.wait)
        self.handed.clear()
        if self.daemon.pidfile is not None:
            with contextlib.suppress(OSError):
                self.daemon.pidfile.acquire()  # our pid again, if the new one wrote its own
        if self.paused:
            for listeners in self.listeners:
                await listeners.accept_again()
            for conn in self.held:
                handover.release(conn)
        for listeners in self.listeners:
            listeners.close()

    def _commit(self) -> None:
        """The new generation has everything: let go of it here."""
        if self.channel is not None:
            self.channel.close()
        for conn in self.handed:
            handover.let_go(conn)
        for listeners in self.listeners:
            listeners.forget_unix_paths()
            listeners.close()
        persistence = self.daemon.app.persistence
        if persistence is not None:
            persistence.let_go()
        # A stopped child must not linger as a zombie of ours: the new generation is its own.
        if self.process is not None:
            self.process.returncode = 0


def _served(sock: socket.socket, daemon: Daemon) -> bool:
    servers = [daemon.server] + ([daemon.admin] if daemon.admin is not None else [])
    return any(
        sock.fileno() == served.fileno()
        for server in servers
        for listeners in server.listeners.values()
        for listener in listeners
        for served in listener.sockets
    )


def _fileno(conn: Connection) -> int:
    assert conn.transport is not None
    sock = conn.transport.get_extra_info("socket")
    return int(sock.fileno())


# -- the new generation ------------------------------------------------------------------------


class Takeover:
    """The new generation's side (``Daemon.main`` when ``RESIDENTD_HANDOVER_FD`` is set)."""

    def __init__(self, daemon: Daemon, fd: int) -> None:
        self.daemon = daemon
        self.channel = Channel(socket.socket(fileno=fd), daemon.loop)
        self.sockets: dict[tuple[int, str], list[tuple[str, socket.socket]]] = {}
        self._defaults = {service.name: service.listen for service in daemon.app.services}
        self.configured: list[dict[str, list[str]]] = [{}, {}]
        self.adopted: list[handover.AdoptedConnection] = []
        self.pidfile_fd: int | None = None

    @classmethod
    def from_env(cls, daemon: Daemon) -> Takeover | None:
        fd = os.environ.pop(ENV_FD, None)
        return cls(daemon, int(fd)) if fd else None

    async def hello(self) -> None:
        await self.channel.send({"kind": "hello", "pid": os.getpid()})
        header, _, fds = await self.channel.receive()
        if header.get("kind") != "listeners":
            raise HandoverError(f"expected the listeners, got {header!r}")
        items = header["items"]
        for item, fd in zip(items, fds, strict=False):
            key = (item["server"], item["service"])
            self.sockets.setdefault(key, []).append((item["address"], socket.socket(fileno=fd)))
        self.configured = header["configured"]
        if header.get("pidfile") and len(fds) > len(items):
            self.pidfile_fd = fds[len(items)]

    def inherited(
        self, server: int, listen: dict[str, list[str]]
    ) -> dict[str, list[socket.socket]]:
        """The old generation's listening sockets of one server (0: the app's, 1: the admin
        endpoint's), by service, for each service whose addresses did not change (from
        ``listen``, else the service's defaults). The others bind anew; their old sockets
        close with the old generation."""
        found: dict[str, list[socket.socket]] = {}
        for (index, name), entries in self.sockets.items():
            if index != server:
                continue
            wanted = listen.get(name, self._defaults.get(name, []))
            if sorted(wanted) == sorted(self.configured[server].get(name, ())):
                found[name] = [sock for _, sock in entries]
            else:
                log.warning("upgrade: %s listens elsewhere now: binding anew", name)
        return found

    async def receive_state(self) -> bytes:
        header, payload, fds = await self.channel.receive()
        for fd in fds:
            os.close(fd)
        if header.get("kind") != "state":
            raise HandoverError(f"expected the state, got {header!r}")
        return payload

    async def receive_connections(self) -> None:
        server = self.daemon.server
        runtimes = server.runtimes
        while True:
            header, _, fds = await self.channel.receive()
            if header.get("kind") == "done":
                for fd in fds:
                    os.close(fd)
                return
            if header.get("kind") != "connections" or len(fds) != len(header["items"]):
                for fd in fds:
                    os.close(fd)
                raise HandoverError(f"expected connections, got {header.get('kind')!r}")
            items = header["items"]
            missing = {item["service"] for item in items} - set(runtimes)
            if missing:
                for fd in fds:
                    os.close(fd)
                raise HandoverError(f"no service {sorted(missing)[0]!r} in the new generation")
            # A batch at once: one loop iteration makes all its connections.
            await asyncio.gather(
                *(
                    handover.adopt(server, runtimes[item["service"]], fd, item)
                    for item, fd in zip(items, fds, strict=True)
                )
            )

    async def ready(self) -> None:
        """Tell the old generation we are ready and wait for its ``go``."""
        await self.channel.send({"kind": "ready", "pid": os.getpid()})
        header, _, fds = await self.channel.receive()
        for fd in fds:
            os.close(fd)
        if header.get("kind") != "go":
            raise HandoverError(f"expected go, got {header!r}")

    async def fail(self, reason: str) -> None:
        with contextlib.suppress(HandoverError, OSError):
            await self.channel.send({"kind": "error", "error": reason})

    def start(self) -> None:
        """In charge (the listeners accept already): read every adopted connection, and write
        to the real stdout and stderr from now on."""
        self.channel.close()
        for entries in self.sockets.values():
            for _, sock in entries:
                if sock.fileno() >= 0 and not _served(sock, self.daemon):
                    sock.close()
        for conn in self.daemon.server.connections.values():
            if isinstance(conn, handover.AdoptedConnection):
                conn.start()
        stdio = os.environ.pop(ENV_STDIO, "")
        if stdio:
            out, err = (int(fd) for fd in stdio.split(","))
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.close(out)
            os.close(err)
