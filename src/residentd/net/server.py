"""The running side of an App: listeners, the connection registry, limits, stats and shutdown.

``Server.start`` binds every service's addresses; each accepted socket becomes a ``Connection``
that asks ``admit`` whether it may stay (global and per-IP connection limits, stopping) and
calls ``release`` when it is gone, which folds its counters into the totals. The server owns the
deadline wheel for idle and first-message timeouts, the app's timers and periodic jobs, and the
current ``Limits`` (replaced whole by a reload through ``set_limits``, read by connections on
each use). A connection sees its server as a ``ConnectionHost`` (connection.py) and the app sees
it as a ``Host`` (app.py): the members those protocols list are the ones to keep.

``stop`` is the graceful path: stop accepting and stop reading requests, run the app's stop
hooks, let each connection finish the requests it has read, give its session the
``on_shutdown`` goodbye, and close it with a lingering close (connection.py, lingering.py), so
that every request executed has its reply at the client; whatever is still open when the
timeout runs out is aborted, and what that drops is counted (``dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from residentd.app import App
from residentd.errors import CloseCode, ProtocolError
from residentd.limits import Limits
from residentd.loop import loop_name
from residentd.net.connection import Connection, ServiceRuntime
from residentd.net.deadlines import DeadlineWheel
from residentd.net.flushing import FlushQueue
from residentd.net.handover import serve_socket
from residentd.net.held import HeldAcceptor
from residentd.net.listener import Address, bind, bound_addresses, parse_address
from residentd.net.stats import Stats
from residentd.net.timers import TimerGroup

log = logging.getLogger("residentd.server")


class Server:
    def __init__(
        self,
        app: App,
        limits: Limits | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.app = app
        self.limits = limits or Limits(**app.limit_defaults)
        self.loop = loop or asyncio.get_running_loop()
        # The loop's clock as one bound method that every connection shares (each read stamps
        # its connection's last input with it), instead of one per connection.
        self.clock = self.loop.time
        self.stats = Stats()
        self.connections: dict[int, Connection] = {}
        # The bound listeners of each service, by its name.
        self.listeners: dict[str, list[asyncio.Server]] = {}
        self.runtimes: dict[str, ServiceRuntime] = {}  # by service name
        self.timers = TimerGroup(self.loop)
        self.started_at = time.time()
        self.stopping = False
        self._per_ip: dict[str, int] = {}
        self._next_id = 0
        self._wheel = DeadlineWheel(self.loop)
        self.flushes = FlushQueue(self.loop)
        self._closed = asyncio.Event()
        self._unix_paths: list[str] = []
        # The running task of each async periodic job, by the job's index in app.jobs.
        self._jobs: dict[int, asyncio.Future[Any]] = {}
        self._held: HeldAcceptor | None = None  # accept_now's, while a handler holds the loop

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(
        self,
        listen: dict[str, list[str]] | None = None,
        inherited: Mapping[str, list[socket.socket]] | None = None,
    ) -> None:
        """Bind every service (``listen`` overrides addresses by service name) and run the
        app's start hooks. On a bind failure, whatever was bound is closed and the error raised.
        A service in ``inherited`` (a live upgrade) serves those listening sockets instead, and
        accepts only once ``start_serving`` is called.
        """
        listen = listen or {}
        self.app.server = self
        try:
            for service in self.app.services:
                runtime = ServiceRuntime.of(service)
                self.runtimes[service.name] = runtime
                listeners = self.listeners.setdefault(service.name, [])
                if inherited and service.name in inherited:
                    for sock in inherited[service.name]:
                        listeners.append(await serve_socket(self, runtime, sock, start=False))
                    continue
                for text in listen.get(service.name, service.listen):
                    address = parse_address(text)
                    listener = await bind(
                        self.loop, address, self._factory(runtime), self.limits.backlog
                    )
                    listeners.append(listener)
                    if address.kind == "unix":
                        self._unix_paths.append(address.path)
        except BaseException:
            self._close_listeners()
            raise
        for index, job in enumerate(self.app.jobs):
            self.timers.call_every(job.interval, self._run_job, index, job.callback)
        for hook in self.app.start_hooks:
            await _maybe_await(hook())
        log.info(
            "%s listening on %s (loop %s)",
            self.app.name,
            ", ".join(str(a) for a in self.addresses()),
            loop_name(self.loop),
            extra={"app": self.app.name},
        )

    async def start_serving(self) -> None:
        """Accept on every listener (those of ``inherited`` wait for this)."""
        for listeners in self.listeners.values():
            for listener in listeners:
                await listener.start_serving()

    def _run_job(self, index: int, callback: Callable[[], Any]) -> None:
        """One run of a periodic job. An async job runs as a task the server owns; its next run
        is skipped while the last one is still going."""
        if index in self._jobs:
            return
        result = callback()
        if inspect.isawaitable(result):
            # The awaitable itself becomes the task, so a cancel before its first step still
            # closes it.
            task = asyncio.ensure_future(result, loop=self.loop)
            self._jobs[index] = task
            task.add_done_callback(lambda task: self._job_done(index, task))

    def _job_done(self, index: int, task: asyncio.Future[Any]) -> None:
        self._jobs.pop(index, None)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "periodic job %r raised",
                self.app.jobs[index].callback,
                exc_info=task.exception(),
                extra={"app": self.app.name},
            )

    def _factory(self, runtime: ServiceRuntime) -> Callable[[], Connection]:
        def make() -> Connection:
            return Connection(self, runtime)

        return make

    def accept_now(self) -> None:
        """Accept the connections waiting on the listeners without waiting, for a handler
        that holds the loop (kv's slow scripts) and serves them with ``serve_now``; they go
        to the loop at ``release_accepted`` (net/held.py)."""
        if self._held is None:
            self._held = HeldAcceptor(self)
        self._held.accept()

    def release_accepted(self) -> None:
        """Hand what ``accept_now`` accepted to the loop, once the handler has returned."""
        if self._held is not None:
            self._held.release()
            self._held = None

    def addresses(self, service: str | None = None) -> list[Address]:
        """The bound addresses, of one service or of all."""
        return [
            address
            for name, listeners in self.listeners.items()
            if service is None or name == service
            for listener in listeners
            for address in bound_addresses(listener)
        ]

    def stop_accepting(self) -> None:
        """Close the listeners and accept nothing more; the open connections carry on."""
        self._close_listeners()

    def _close_listeners(self) -> None:
        for listeners in self.listeners.values():
            for listener in listeners:
                listener.close()
            listeners.clear()
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._unix_paths.clear()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully: no new connections or requests, stop hooks, the requests already
        read answered, goodbyes, lingering closes; at ``timeout``, abort what is left."""
        if self.stopping:
            await self._closed.wait()
            return
        self.stopping = True
        self._close_listeners()
        # From now on no request is read: each one read before is answered (or, if the deadline
        # cuts its connection, counted as dropped), and none after is ever executed.
        for conn in list(self.connections.values()):
            conn.stop_reading()
        deadline = self.loop.time() + timeout
        for hook in self.app.stop_hooks:
            try:
                await asyncio.wait_for(_maybe_await(hook()), max(deadline - self.loop.time(), 0.01))
            except Exception:
                log.exception("stop hook %r failed", hook, extra={"app": self.app.name})
        # A connection still handling a message finishes it first; then it hears goodbye and
        # lingers until its peer has its replies.
        while self.connections and self.loop.time() < deadline:
            now = self.loop.time()
            for conn in list(self.connections.values()):
                if conn.closing:
                    conn.linger(now)
                elif not conn.handling:
                    self._say_goodbye(conn)
            await asyncio.sleep(0.01)
        for conn in list(self.connections.values()):
            self._count_dropped(conn)
            conn.abort(CloseCode.SHUTDOWN_TIMEOUT)
        # Let the transports report connection_lost for aborted connections.
        for _ in range(3):
            if not self.connections:
                break
            await asyncio.sleep(0)
        self.timers.cancel_all()
        jobs = list(self._jobs.values())
        for task in jobs:
            task.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        self._jobs.clear()
        self._wheel.close()
        self._closed.set()

    def _count_dropped(self, conn: Connection) -> None:
        """Count what aborting ``conn`` at the stop's deadline drops: output its peer has not
        acknowledged, or a request still being handled."""
        undelivered = conn.undelivered()
        if undelivered or conn.handling:
            self.stats.dropped_connections += 1
            self.stats.dropped_bytes += undelivered

    def _say_goodbye(self, conn: Connection) -> None:
        session = conn.session
        if session is not None:
            try:
                session.on_shutdown()
            except Exception:
                log.exception("on_shutdown raised", extra=conn.log_context())
        conn.close_lingering(CloseCode.SERVER_SHUTDOWN)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def set_limits(self, limits: Limits) -> None:
        """Put ``limits`` in force (a reload): open connections read the new values from now
        on, and their transports take the new write watermarks at once."""
        self.limits = limits
        for conn in list(self.connections.values()):
            conn.apply_limits()

    # -- connections ---------------------------------------------------------------------------

    def admit(self, conn: Connection, transport: asyncio.Transport) -> str | None:
        """Register a new connection; return a refusal reason if a limit says no."""
        self._next_id += 1
        conn.id = self._next_id
        peer = transport.get_extra_info("peername")
        ip = sys.intern(peer[0]) if isinstance(peer, tuple) else "unix"
        conn.ip = ip
        limits = self.limits
        reason = None
        if self.stopping:
            reason = CloseCode.SERVER_SHUTDOWN
        elif limits.max_connections and len(self.connections) >= limits.max_connections:
            reason = CloseCode.MAX_CONNECTIONS
        elif (
            limits.max_connections_per_ip
            and self._per_ip.get(ip, 0) >= limits.max_connections_per_ip
            and ip != "unix"
        ):
            reason = CloseCode.MAX_CONNECTIONS_PER_IP
        if reason is not None:
            self.stats.refused[reason] += 1
            log.warning("refused %s: %s", ip, reason, extra={"app": self.app.name})
            return reason
        self.stats.accepted += 1
        self.connections[conn.id] = conn
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        return None

    def release(self, conn: Connection) -> None:
        self._wheel.discard(conn)
        stats = self.stats
        if self.connections.pop(conn.id, None) is None:
            stats.bytes_in += conn.bytes_in
            return  # refused at the door: only its bytes count
        count = self._per_ip[conn.ip] - 1
        if count:
            self._per_ip[conn.ip] = count
        else:
            del self._per_ip[conn.ip]
        stats.closed[conn.close_reason or CloseCode.CLOSED] += 1
        stats.messages_in += conn.messages_in
        stats.messages_out += conn.messages_out
        stats.bytes_in += conn.bytes_in
        stats.bytes_out += conn.bytes_out

    def watch_deadline(self, conn: Connection) -> None:
        deadline = conn.check_deadline(self.loop.time())
        if deadline is not None:
            self._wheel.schedule(conn, deadline)

    def forget_deadline(self, conn: Connection) -> None:
        self._wheel.discard(conn)

    # -- logging -------------------------------------------------------------------------------

    def log_handler_error(self, conn: Connection, where: str) -> None:
        log.exception("%s raised; closing the connection", where, extra=conn.log_context())

    def log_protocol_error(self, conn: Connection, error: ProtocolError) -> None:
        log.warning("closing: %s", error, extra=conn.log_context())

    # -- stats ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Counters as plain data: totals including the live connections."""
        data = self.stats.as_dict()
        for conn in self.connections.values():
            data["messages_in"] += conn.messages_in
            data["messages_out"] += conn.messages_out
            data["bytes_in"] += conn.bytes_in
            data["bytes_out"] += conn.bytes_out
        data["connections_open"] = len(self.connections)
        data["connections_total"] = self.stats.accepted
        data["uptime"] = round(time.time() - self.started_at, 3)
        data["app"] = self.app.name
        data["loop"] = loop_name(self.loop)
        return data


async def _maybe_await(result: Any) -> None:
    if inspect.isawaitable(result):
        await result
