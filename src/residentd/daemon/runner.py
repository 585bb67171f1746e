"""Running an app as a Unix daemon: the whole life of ``residentd run APP``.

Start: logging (queue + writer thread), the open-files limit raised, ``--daemon`` detaching
(the parent waits until we are listening), the pidfile locked, the loop created, the app's
listeners and the admin endpoint bound, privileges dropped, signal handlers installed, the
start-up heap frozen out of the garbage collector's scans, and then ``READY=1`` to systemd and
"ready" to the waiting parent.

Signals, all handled on the loop (``loop.add_signal_handler``), so they never interrupt a
handler half-way, with the meanings nginx gives them (:data:`SIGNALS`; docs/operations.md
compares nginx, Redis and gunicorn). They are blocked from just after ``--daemon`` until the
handlers are in place, and ignored from the end of a stop, so one that comes while the daemon
starts waits for its handler instead of killing the process with the default action, and one
that comes during the last steps of a stop cannot cut them short:

- SIGTERM, SIGINT: graceful stop (``Server.stop``) within ``shutdown_timeout``, exit 0. A second
  one exits at once with status 1.
- SIGQUIT: graceful stop too; a repeated one is ignored (it never cuts a stop short).
- SIGHUP: reload. The config file is read again and validated; if it is bad, the old config
  stays and the reason is logged. Otherwise what can change live is applied (limits, timeouts,
  log level, format and file, the settings declared ``reload=True``), the log file is reopened
  (logrotate), and what needs a restart is logged as a warning and kept for ``/config``. A log
  file that cannot be reopened keeps the old one; whatever happens, the reload ends with
  ``READY=1``. A SIGHUP during a stop is ignored.
- SIGUSR1: reopen the log file (logrotate), nothing else.
- SIGUSR2: live upgrade, as nginx's binary upgrade: a new generation started from the code and
  config on disk takes over the listeners, the app's state and the connections
  (daemon/upgrade.py); if it fails, this one serves on as if nothing happened.

Stats have no signal: ``residentd status`` and ``/metrics`` show them, and the stop logs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from residentd import __version__, speedups
from residentd.app import App
from residentd.daemon import process
from residentd.daemon.admin import (
    build_admin_app,
    check_admin_address,
    default_admin_path,
    prepare_admin_socket,
)
from residentd.daemon.config import Config, Schema, worker_count
from residentd.daemon.daemonize import ReadyChannel, daemonize
from residentd.daemon.logrecord import use_lean_records
from residentd.daemon.logs import LogRuntime, LogSettings, set_process_fields, setup_logging
from residentd.daemon.looplag import LoopLagMonitor
from residentd.daemon.metrics import prometheus_text
from residentd.daemon.pidfile import PidFile, PidFileError
from residentd.daemon.reexec import Inheritance
from residentd.daemon.systemd import SystemdNotifier
from residentd.daemon.upgrade import ENV_FD, Takeover, Upgrade, UpgradeFailed
from residentd.daemon.worker import WorkerLink
from residentd.errors import ConfigError
from residentd.loop import new_event_loop
from residentd.net.server import Server
from residentd.state.api import StateError

# Allocations between young collections, then young collections per middle one, and middle
# ones per full one (the stdlib's are 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)
# Seconds the default executor's running jobs get at the end of a stop.
EXECUTOR_GRACE = 1.0

log = logging.getLogger("residentd.daemon")

#: What each handled signal does (the name of the Daemon method it calls).
SIGNALS: dict[signal.Signals, str] = {
    signal.SIGTERM: "_on_stop_signal",
    signal.SIGINT: "_on_stop_signal",
    signal.SIGQUIT: "_on_quit_signal",
    signal.SIGHUP: "_on_sighup",
    signal.SIGUSR1: "_on_sigusr1",
    signal.SIGUSR2: "_on_sigusr2",
}


def block_signals(block: bool = True) -> None:
    """Hold the handled signals pending (or let them through again) in this thread, and in
    threads it starts from now on."""
    how = signal.SIG_BLOCK if block else signal.SIG_UNBLOCK
    signal.pthread_sigmask(how, SIGNALS)


def log_settings(config: Config) -> LogSettings:
    settings = config.daemon
    return LogSettings(settings.log_level, settings.log_format, settings.log_file)


def run_daemon(
    app: App,
    schema: Schema,
    config: Config,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> int:
    """Run ``app`` with ``config`` until it is stopped; returns the exit status."""
    channel: ReadyChannel | None = None
    settings = config.daemon
    start_dir = os.getcwd()  # --daemon moves to /; a new generation starts from here again
    takeover = ENV_FD in os.environ  # a live upgrade's new generation: detached already
    worker = WorkerLink.from_env()  # a worker of a master (workers > 1)
    app.worker = None if worker is None else worker.slot
    if worker is not None:
        set_process_fields(worker=worker.slot)  # its records say whose they are
    reexec = Inheritance.from_env()  # a master that executed itself again
    master = worker is None and not takeover and worker_count(settings.workers) > 1
    if settings.daemon and not takeover and worker is None and reexec is None:
        channel = daemonize(stdio_to=settings.log_file)
    # Until the loop's handlers are in place (Daemon.main); the log writer thread started
    # below keeps them blocked for good, so they always reach the main thread.
    block_signals()
    use_lean_records()
    logs = setup_logging(log_settings(config), stdio_follows=channel is not None)
    # A new generation inherits the locked pidfile with the listeners (Daemon._take_over).
    pidfile = (
        PidFile(settings.pidfile) if settings.pidfile and not takeover and worker is None else None
    )
    if reexec is not None and settings.pidfile and reexec.pidfile is not None:
        pidfile = PidFile.inherit(settings.pidfile, reexec.pidfile)
    try:
        if pidfile is not None:
            pidfile.acquire()
    except PidFileError as exc:
        log.error("%s", exc)
        logs.close()
        return _report_failure(str(exc), config, channel)
    process.raise_nofile_limit()
    loop = new_event_loop(settings.loop)
    asyncio.set_event_loop(loop)
    if master or reexec is not None:
        from residentd.daemon.supervisor import Master

        master_daemon = Master(app, schema, config, environ, flags, logs, channel, loop)
        master_daemon.inheritance = reexec
        daemon: Daemon = master_daemon
    else:
        daemon = Daemon(app, schema, config, environ, flags, logs, channel, loop)
    daemon.worker = worker
    daemon.pidfile = pidfile
    daemon.start_dir = start_dir
    try:
        status = loop.run_until_complete(_then_ignore_signals(loop, daemon.main()))
    finally:
        block_signals()  # if main() never ran
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        pidfile = daemon.pidfile
        if pidfile is not None:
            try:
                pidfile.release()
            except OSError as exc:  # e.g. its folder is not writable after --user
                log.warning("cannot remove pidfile %s: %s", pidfile.path, exc.strerror)
        logs.close()
    if daemon.failure is not None:
        return _report_failure(daemon.failure, config, channel, daemon.failure_status)
    return status


async def _then_ignore_signals(
    loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, int]
) -> int:
    """Run ``main``, then ignore the handled signals until the process exits. Once the loop
    stops, uvloop no longer dispatches them, and closing the loop would put their default
    actions back: one that came then would kill us before the pidfile is removed and the last
    log lines are written. So: blocked in this thread; the default executor's threads, which
    have them unblocked, ended (libuv's have them blocked, see :func:`_start_libuv_pool`); then
    ignored, for any thread an app started."""
    try:
        return await main
    finally:
        block_signals()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(loop.shutdown_default_executor(), EXECUTOR_GRACE)
        for signum in SIGNALS:
            loop.remove_signal_handler(signum)
            signal.signal(signum, signal.SIG_IGN)


async def _start_libuv_pool(loop: asyncio.AbstractEventLoop) -> None:
    """Under uvloop, start libuv's worker threads now, while the handled signals are blocked:
    all of them start at the pool's first use and inherit the blocked mask, so none ever takes
    a signal (they run no Python code and start no processes). Python's executor threads are
    left alone, since a process they start inherits their mask and must be able to receive
    signals; they are ended before the handlers go (:func:`_then_ignore_signals`)."""
    if type(loop).__module__.partition(".")[0] == "uvloop":
        with contextlib.suppress(OSError):
            await loop.getaddrinfo("127.0.0.1", None)


def _report_failure(
    reason: str, config: Config, channel: ReadyChannel | None, status: int = 1
) -> int:
    """Tell whoever started us why the start failed, once everything is cleaned up."""
    if channel is not None:
        channel.failed(reason)
    elif config.daemon.log_file:
        print(f"residentd: {reason}", file=sys.stderr)
    return status


class Daemon:
    """The running daemon: its server, admin endpoint, signals and reloads."""

    def __init__(
        self,
        app: App,
        schema: Schema,
        config: Config,
        environ: Mapping[str, str],
        flags: Mapping[str, Any],
        logs: LogRuntime,
        channel: ReadyChannel | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.app = app
        self.schema = schema
        self.config = config
        self.environ = environ
        self.flags = flags
        self.logs = logs
        self.channel = channel
        self.notifier = SystemdNotifier.from_env()
        self.loop = loop
        self.lag = LoopLagMonitor(self.loop)
        self.server = Server(app, config.limits(), self.loop)
        self.admin: Server | None = None
        self.reloads = 0
        self.reloads_failed = 0
        #: Settings changed in the config file whose new values wait for a restart.
        self.pending_restart: dict[str, Any] = {}
        self.failure: str | None = None
        self.failure_status = 1
        self._stop = asyncio.Event()
        self._stopping = False
        self.pidfile: PidFile | None = None
        self.start_dir = os.getcwd()
        self.admin_address = "off"
        self.upgrading = False
        self.serving = False  # started and not stopping: an upgrade may begin
        #: The pid of the generation that took over (then this one only finishes and exits).
        self.upgraded_to: int | None = None
        #: A worker's link to its master (``workers > 1``), else None.
        self.worker: WorkerLink | None = None

    async def main(self) -> int:
        self.app.options.update(self.config.app_options())
        # Handlers first: a stop signal that comes while we bind still means a graceful stop.
        self._install_signals()
        await _start_libuv_pool(self.loop)
        block_signals(False)
        takeover = Takeover.from_env(self)
        if takeover is not None:
            if not await self._take_over(takeover):
                return 1
        elif not self._load_state() or not await self._start():
            return self.failure_status
        # Everything made so far (modules, the app, its start hooks' data) lives as long as the
        # process: moved out of the collector's generations, it is never scanned again, and
        # the full collections that long-lived runtime objects trigger stay short. Then the
        # collector runs less often (GC_THRESHOLDS): with the default 700, a busy daemon runs
        # a young collection every few hundred microseconds and promotes objects that were
        # about to die (queued log records, replies in flight), and the older collections
        # that follow were the loop's longest stalls (bench/log_lag.py).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.lag.start()
        interval = self.notifier.watchdog_interval()
        if interval:
            self.server.timers.call_every(interval, self.notifier.watchdog, delay=0)
        listening = ", ".join(str(address) for address in self.server.addresses())
        self.serving = True
        if takeover is not None:
            self.notifier.send(MAINPID=os.getpid(), READY=1)
        else:
            self.notifier.ready()
        self.notifier.status(f"listening on {listening}")
        if self.channel is not None:
            self.channel.ready()
        if self.worker is not None:
            self.worker.start(self)
        await self._stop.wait()
        while self.upgrading:  # a stop asked for during an upgrade waits for its rollback
            await asyncio.sleep(0.01)
        if self.upgraded_to is not None:
            await self._retire()
            if self.worker is not None:
                self.worker.stop()
            return 0
        self.notifier.stopping()
        log.info("stopping: graceful, timeout %ss", self.config.daemon.shutdown_timeout)
        await self.server.stop(self.config.daemon.shutdown_timeout)
        self._close_state()
        if self.admin is not None:
            await self.admin.stop(1.0)
        if self.worker is not None:
            self.worker.stop()
        self.lag.stop()
        # What the stop's deadline cut off: connections aborted before their peer had every
        # reply (0 unless a peer did not read), and the bytes of replies it never got.
        dropped = {
            "dropped_connections": self.server.stats.dropped_connections,
            "dropped_bytes": self.server.stats.dropped_bytes,
        }
        log.info("stopped", extra={"ctx": self._summary() | dropped})
        return 0

    async def _start(self) -> bool:
        try:
            if self.worker is not None:  # the master's sockets; the master has the rest
                await self.server.start(self.config.listen(), self.worker.inherited())
                await self.server.start_serving()
                return True
            await self._listen()
            await self._start_admin()
            self._give_files_away()
            process.drop_privileges(self.config.daemon.user, self.config.daemon.group)
        except (OSError, ConfigError, process.PrivilegeError) as exc:
            reason = f"cannot start {self.app.name}: {exc}"
            log.error("%s", reason)
            if isinstance(exc, ConfigError):  # a setting that cannot work, as a bad flag
                self.failure_status = 2
            await self._stop_listening()
            if self.admin is not None:
                await self.admin.stop(1.0)
            self._close_state()
            self.failure = reason
            return False
        return True

    async def _listen(self) -> None:
        """Bind the app's listeners (and run its start hooks)."""
        await self.server.start(self.config.listen())

    async def _stop_listening(self) -> None:
        """Undo ``_listen`` after a failed start."""
        await self.server.stop(self.config.daemon.shutdown_timeout)

    async def _take_over(self, takeover: Takeover) -> bool:
        """As the new generation of a live upgrade: take the listeners, the state and the
        connections of the running daemon; start serving once it has let go of them. A
        failure is reported to it (it serves on) and ends this process without a word to any
        client."""
        try:
            await takeover.hello()
            snapshot = await takeover.receive_state()
            if self.app.persistence is not None:
                self.app.persistence.handed_over = True
                if not self._load_state():
                    raise RuntimeError(self.failure)
            self._import_state(snapshot)
            listen = self.config.listen()
            if self.worker is not None:  # the master keeps the listeners: the slot's
                await self.server.start(listen, self.worker.inherited())
            else:
                await self.server.start(listen, takeover.inherited(0, listen))
                await self._start_admin(lambda listen: takeover.inherited(1, listen))
            await takeover.receive_connections()
            if takeover.pidfile_fd is not None and self.config.daemon.pidfile:
                self.pidfile = PidFile.inherit(self.config.daemon.pidfile, takeover.pidfile_fd)
                self.pidfile.acquire()
            process.drop_privileges(self.config.daemon.user, self.config.daemon.group)
            await takeover.ready()
        except Exception as exc:  # whatever it is, the old generation must hear of it
            reason = f"cannot take over: {exc!r}" if not str(exc) else f"cannot take over: {exc}"
            log.exception("%s", reason)
            await takeover.fail(reason)
            self.pidfile = None  # the old generation's again: never removed by us
            self.failure = reason
            return False
        await self.server.start_serving()
        if self.admin is not None:
            await self.admin.start_serving()
        takeover.start()
        if self.app.persistence is not None:
            self.app.persistence.take_over()
        log.info(
            "took over: %d connections (upgrade)",
            len(self.server.connections),
            extra={"ctx": {"pid": os.getpid()}},
        )
        return True

    def _import_state(self, snapshot: bytes) -> None:
        """Load the app's state as the last generation streamed it (its snapshot format)."""
        persistence = self.app.persistence
        if persistence is not None:
            persistence.import_snapshot(snapshot)

    def _load_state(self) -> bool:
        """Load the app's durable state before anything listens. A corrupt file stops the start
        with exit code 2 and its name and offset; an unreadable folder with exit code 1."""
        persistence = self.app.persistence
        if persistence is None:
            return True
        try:
            persistence.open(self.app.options, self.loop, self.server.flushes)
        except StateError as exc:  # a corrupt journal, snapshot or manifest
            self.failure = f"cannot load the state of {self.app.name}: {exc}"
            self.failure_status = 2
        except OSError as exc:
            self.failure = f"cannot load the state of {self.app.name}: {exc}"
        if self.failure is not None:
            log.error("%s", self.failure)
            return False
        if persistence.loaded:
            log.info("state loaded", extra={"ctx": persistence.loaded})
        return True

    def _close_state(self) -> None:
        if self.app.persistence is not None:
            self.app.persistence.close()

    async def _start_admin(
        self,
        inherit: Callable[[dict[str, list[str]]], dict[str, list[socket.socket]]] | None = None,
    ) -> None:
        """Serve the admin endpoint; on the sockets ``inherit(listen)`` gives, if any (a live
        upgrade's, or the master's own across its exec)."""
        address = self.config.daemon.admin or default_admin_path(
            self.app.name, self.config.daemon.pidfile
        )
        self.admin_address = address
        if address == "off":
            return
        check_admin_address(address, self.config.daemon.admin_token)
        listen = {"admin": [address]}
        inherited = inherit(listen) if inherit is not None else {}
        if not inherited:
            prepare_admin_socket(address)
        admin_app = build_admin_app(
            self,
            lambda: self.config.daemon.admin_token,
            browser_guard=not address.startswith("unix:"),
        )
        self.admin = Server(admin_app, None, self.loop)
        old_umask = os.umask(0o177)  # no moment when others may connect
        try:
            await self.admin.start(listen, inherited)
        except OSError as exc:
            raise ConfigError(f"cannot listen on admin {address}: {exc.strerror or exc}") from None
        finally:
            os.umask(old_umask)
        if address.startswith("unix:") and not inherited:
            os.chmod(address[5:], 0o600)

    def _give_files_away(self) -> None:
        """Before dropping privileges: the log file, pidfile and admin socket made as root
        become the run-as user's, so it can reopen its log and remove what it leaves."""
        admin = self.admin.addresses() if self.admin is not None else []
        process.give_files_to(
            self.config.daemon.user,
            self.config.daemon.group,
            [self.config.daemon.log_file, self.config.daemon.pidfile]
            + [address.path for address in admin if address.kind == "unix"],
        )

    # -- signals -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        for signum, method in SIGNALS.items():
            self.loop.add_signal_handler(signum, getattr(self, method))

    def request_stop(self) -> None:
        """Begin a graceful stop; a second request (SIGTERM, SIGINT, POST /stop) exits at once
        with status 1."""
        if self._stopping:
            log.warning("second stop signal: exiting at once")
            self.logs.close()
            os._exit(1)
        self._stopping = True
        self._stop.set()

    def _on_stop_signal(self) -> None:
        self.request_stop()

    def _on_quit_signal(self) -> None:
        if self._stopping:
            log.info("SIGQUIT: already stopping gracefully")
            return
        log.info("SIGQUIT: graceful stop")
        self.request_stop()

    def _on_sighup(self) -> None:
        if self._stopping:
            log.info("SIGHUP while stopping: not reloading")
            return
        self.reload()

    def _on_sigusr1(self) -> None:
        if self.reopen_logs() is None and self.logs.settings.file is not None:
            log.info("SIGUSR1: log file reopened")

    def _on_sigusr2(self) -> None:
        if self.worker is not None:
            log.warning("SIGUSR2 to a worker: not upgrading (send it to the master)")
            return
        log.info("SIGUSR2: live upgrade")
        self.upgrade_then(lambda result: None)

    # -- live upgrade --------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        return self._stopping

    def upgrade_then(self, done: Callable[[dict[str, Any]], None]) -> None:
        """Start a live upgrade; ``done(result)`` when it has succeeded or failed."""
        task = self.loop.create_task(self.upgrade())
        task.add_done_callback(lambda task: done(task.result()))

    async def upgrade(self, handover: socket.socket | None = None) -> dict[str, Any]:
        """Hand everything over to a new generation; on success this one then exits. The
        answer has ``ok``, and ``pid`` (the new one) or ``error``. A worker hands over to the
        new worker its master started, at the other end of ``handover``."""
        if self._stopping:
            return {"ok": False, "error": "the daemon is stopping"}
        if not self.serving:
            log.warning("upgrade asked for before the start finished: not upgrading")
            return {"ok": False, "error": "the daemon is still starting"}
        if self.upgrading:
            return {"ok": False, "error": "an upgrade is already running"}
        self.upgrading = True
        self.notifier.reloading()
        try:
            pid = await Upgrade(self, handover).run()
        except UpgradeFailed as exc:
            log.error("%s; still serving", exc)
            self.notifier.ready()
            return {"ok": False, "error": str(exc), "pid": os.getpid()}
        except Exception as exc:  # a bug here must not leave systemd reloading
            log.exception("upgrade failed")
            self.notifier.ready()
            return {"ok": False, "error": f"upgrade failed: {exc!r}", "pid": os.getpid()}
        finally:
            self.upgrading = False
        self.upgraded_to = pid
        # The answer to POST /upgrade goes out first; the stop then lets it be read.
        self.loop.call_soon(self._stop.set)
        return {"ok": True, "pid": pid, "old_pid": os.getpid()}

    async def _retire(self) -> None:
        """After a successful upgrade: the new generation has the state, the listeners and
        the connections that opted in. The others get the app's goodbye and a lingering
        close; the app's stop hooks do not run (its state lives on over there)."""
        self._stopping = True
        log.info("upgraded to pid %s: closing what was not handed over", self.upgraded_to)
        self.app.stop_hooks.clear()
        await self.server.stop(self.config.daemon.shutdown_timeout)
        if self.admin is not None:
            await self.admin.stop(1.0)
        self.lag.stop()
        log.info("stopped (upgraded)", extra={"ctx": self._summary()})

    def reopen_logs(self) -> str | None:
        """Reopen the log file at its path (after logrotate moved it); None when it worked.

        A file that cannot be opened leaves the old one in use: the reason is logged there and
        returned, and the daemon carries on.
        """
        try:
            self.logs.reopen()
        except OSError as exc:
            reason = f"cannot reopen log file {self.logs.settings.file}: {exc.strerror or exc}"
            log.error("%s; still writing to the old file", reason)
            return reason
        return None

    def _summary(self) -> dict[str, Any]:
        status = self.status()
        return {
            "connections_open": status["connections_open"],
            "connections_total": status["connections_total"],
            "messages_in": status["messages_in"],
            "messages_out": status["messages_out"],
            "bytes_in": status["bytes_in"],
            "bytes_out": status["bytes_out"],
            "refused": sum(status["refused"].values()),
            "errors": sum(status["errors"].values()),
            "lag_p99_ms": status["loop_lag"]["p99_ms"],
            "rss": status["rss_bytes"],
            "fds": status["open_fds"],
        }

    # -- reload --------------------------------------------------------------------------------

    def reload_then(self, done: Callable[[dict[str, Any]], None]) -> None:
        """Reload; ``done(result)`` with what ``reload`` answers."""
        done(self.reload())

    def metrics_then(self, done: Callable[[str], None]) -> None:
        """``done(text)`` with the Prometheus text of ``/metrics``."""
        done(prometheus_text(self.status()))

    def reload(self) -> dict[str, Any]:
        """Re-read the configuration and apply what can change live; always ends with
        ``READY=1``. The answer says what was applied, what waits for a restart, and any error:
        ``ok`` is false when the file was refused or a part could not be applied."""
        self.notifier.reloading()
        try:
            result = self._reload()
        except Exception as exc:  # a bug must not leave systemd waiting or the signal unhandled
            log.exception("reload failed")
            result = {"ok": False, "error": f"reload failed: {exc!r}", "errors": [repr(exc)]}
        finally:
            self.notifier.ready()
        if result["ok"]:
            self.reloads += 1
        else:
            self.reloads_failed += 1
        return result

    def _reload(self) -> dict[str, Any]:
        old = self.config
        try:
            new = self.schema.resolve(old.config_file, self.environ, self.flags, old.base_dir)
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            errors = [str(exc)]
            reopen_error = self.reopen_logs()  # logrotate's postrotate still needs the reopen
            if reopen_error:
                errors.append(reopen_error)
            return {"ok": False, "error": "; ".join(errors), "errors": errors}
        config = old.with_live(new)
        errors = self._apply_logs(old, config)
        live, self.pending_restart = self._reload_changes(old, config, new)
        self.config = config
        self.server.set_limits(config.limits())
        options = {
            name: value for name, value in live.items() if self.schema.settings[name].app_option
        }
        if options:
            errors.extend(self._apply_app_options(options))
        applied = config.redacted(live)
        pending = config.redacted(self.pending_restart)
        # What waits for a restart is a warning: an operator at log level WARNING sees it too.
        log.log(
            logging.WARNING if pending else logging.INFO,
            "reloaded: applied %s; needs a restart: %s",
            ", ".join(f"{key}={value}" for key, value in applied.items()) or "nothing",
            ", ".join(f"{key}={value}" for key, value in pending.items()) or "nothing",
        )
        result: dict[str, Any] = {
            "ok": not errors,
            "applied": applied,
            "needs_restart": pending,
            "errors": errors,
        }
        if errors:
            result["error"] = "; ".join(errors)
        return result

    def _reload_changes(
        self, old: Config, config: Config, new: Config
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """What a reload from ``old`` to ``new`` applies (``config`` is the result), and what
        waits for a restart."""
        live, _ = old.changes(config)
        _, restart = old.changes(new)
        return live, restart

    def _apply_app_options(self, options: dict[str, Any]) -> list[str]:
        """Give the app its changed options and run its reload hooks; the errors, if any."""
        errors = []
        self.app.options.update(options)
        if self.app.persistence is not None:
            self.app.persistence.reconfigure(self.app.options)
        for hook in self.app.reload_hooks:
            try:
                hook(options)
            except Exception as exc:
                log.exception("reload hook %r failed", hook)
                errors.append(f"reload hook {getattr(hook, '__name__', hook)} failed: {exc}")
        return errors

    def _apply_logs(self, old: Config, config: Config) -> list[str]:
        """Switch the log to ``config``'s settings and reopen its file; the errors, if any.

        A new log file that cannot be opened keeps the old one (``config`` is corrected to
        say so); the level and format change either way.
        """
        settings = log_settings(config)
        if settings.file == self.logs.settings.file:
            self.logs.apply(settings)
            error = self.reopen_logs()
            return [error] if error else []
        try:
            self.logs.apply(settings)
        except OSError as exc:
            kept = old.daemon.log_file or "stderr"
            error = (
                f"cannot open log file {config.daemon.log_file}: {exc.strerror or exc}; "
                f"still writing to {kept}"
            )
            log.error("%s", error)
            config.values["log_file"] = old.daemon.log_file
            config.sources["log_file"] = old.sources["log_file"]
            self.logs.apply(log_settings(config))
            return [error]
        return []

    # -- the admin controller ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        data = self.server.snapshot()
        data["pid"] = os.getpid()
        data["loop_lag"] = self.lag.summary()
        data["rss_bytes"] = process.rss_bytes()
        data["open_fds"] = process.open_fds()
        data["reloads"] = self.reloads
        data["reloads_failed"] = self.reloads_failed
        data["started_at"] = process.start_time()
        data["log_records_dropped"] = self.logs.dropped
        data["log_records_suppressed"] = self.logs.rate_limit.suppressed_total
        data["version"] = __version__
        data["speedups"] = sorted(speedups.loaded)
        data["log_level"] = self.config.daemon.log_level
        data["listening"] = [str(address) for address in self.server.addresses()]
        if self.app.persistence is not None and self.app.persistence.enabled:
            data["persistence"] = self.app.persistence.info()
        return data

    def config_dict(self) -> dict[str, Any]:
        """The values in force, and apart from them those that wait for a restart; secrets
        redacted."""
        return {
            "in_force": self.config.as_dict(),
            "pending_restart": self.config.redacted(self.pending_restart),
        }

    def set_log_level(self, level: str) -> None:
        """Change the log level at run time (``POST /loglevel``); ConfigError if it is not one."""
        level = self.schema.settings["log_level"].coerce(level.upper(), "/loglevel")
        self.config.values["log_level"] = level
        self.logs.set_level(level)
        log.info("log level set to %s", level)
