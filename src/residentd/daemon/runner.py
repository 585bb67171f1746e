"""Running an app as a Unix daemon: the whole life of ``residentd run APP``.

Start: logging (queue + writer thread), the open-files limit raised, ``--daemon`` detaching
(the parent waits until we are listening), the pidfile locked, the loop created, the app's
listeners and the admin endpoint bound, privileges dropped, signal handlers installed, the
start-up heap frozen out of the garbage collector's scans, and then ``READY=1`` to systemd and
"ready" to the waiting parent.

Signals, all handled on the loop (``loop.add_signal_handler``), so they never interrupt a
handler half-way:

- SIGTERM, SIGINT: graceful stop (``Server.stop``) within ``shutdown_timeout``, exit 0. A second
  one exits at once with status 1.
- SIGHUP: reload. The config file is read again and validated; if it is bad, the old config
  stays and the reason is logged. Otherwise what can change live is applied (limits, timeouts,
  log level, format and file, reloadable app options), the log file is reopened (logrotate),
  and what needs a restart is logged.
- SIGUSR1: a stats snapshot goes to the log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from residentd.app import App
from residentd.daemon import process
from residentd.daemon.admin import build_admin_app, check_admin_address, default_admin_path
from residentd.daemon.config import LOG_LEVELS, Config, Schema
from residentd.daemon.daemonize import ReadyChannel, daemonize
from residentd.daemon.logrecord import use_lean_records
from residentd.daemon.logs import LogRuntime, LogSettings, setup_logging
from residentd.daemon.looplag import LoopLagMonitor
from residentd.daemon.pidfile import PidFile, PidFileError
from residentd.daemon.systemd import SystemdNotifier
from residentd.errors import ConfigError
from residentd.loop import new_event_loop
from residentd.net.server import Server
from residentd.state.api import StateError

# Allocations between young collections, then young collections per middle one, and middle
# ones per full one (the stdlib's are 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)

log = logging.getLogger("residentd.daemon")


def log_settings(config: Config) -> LogSettings:
    return LogSettings(config["log_level"], config["log_format"], config["log_file"])


def run_daemon(
    app: App,
    schema: Schema,
    config: Config,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
) -> int:
    """Run ``app`` with ``config`` until it is stopped; returns the exit status."""
    channel: ReadyChannel | None = None
    if config["daemon"]:
        channel = daemonize(stdio_to=config["log_file"])
    use_lean_records()
    logs = setup_logging(log_settings(config))
    pidfile = PidFile(config["pidfile"]) if config["pidfile"] else None
    try:
        if pidfile is not None:
            pidfile.acquire()
    except PidFileError as exc:
        log.error("%s", exc)
        logs.close()
        return _report_failure(str(exc), config, channel)
    process.raise_nofile_limit()
    loop = new_event_loop(config["loop"])
    asyncio.set_event_loop(loop)
    daemon = Daemon(app, schema, config, environ, flags, logs, channel, loop)
    try:
        status = loop.run_until_complete(daemon.main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        if pidfile is not None:
            try:
                pidfile.release()
            except OSError as exc:  # e.g. its folder is not writable after --user
                log.warning("cannot remove pidfile %s: %s", pidfile.path, exc.strerror)
        logs.close()
    if daemon.failure is not None:
        return _report_failure(daemon.failure, config, channel, daemon.failure_status)
    return status


def _report_failure(
    reason: str, config: Config, channel: ReadyChannel | None, status: int = 1
) -> int:
    """Tell whoever started us why the start failed, once everything is cleaned up."""
    if channel is not None:
        channel.failed(reason)
    elif config["log_file"]:
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
        self.failure: str | None = None
        self.failure_status = 1
        self._stop = asyncio.Event()
        self._stopping = False

    async def main(self) -> int:
        self.app.options.update(self.config.app_options())
        # Handlers first: a stop signal that comes while we bind still means a graceful stop.
        self._install_signals()
        if not self._load_state():
            return self.failure_status
        try:
            await self.server.start(self.config.listen())
            await self._start_admin()
            process.drop_privileges(self.config["user"], self.config["group"])
        except (OSError, ConfigError, process.PrivilegeError) as exc:
            reason = f"cannot start {self.app.name}: {exc}"
            log.error("%s", reason)
            await self.server.stop(self.config["shutdown_timeout"])
            if self.admin is not None:
                await self.admin.stop(1.0)
            self._close_state()
            self.failure = reason
            return 1
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
        self.notifier.ready()
        self.notifier.status(f"listening on {listening}")
        if self.channel is not None:
            self.channel.ready()
        await self._stop.wait()
        self.notifier.stopping()
        log.info("stopping: graceful, timeout %ss", self.config["shutdown_timeout"])
        await self.server.stop(self.config["shutdown_timeout"])
        self._close_state()
        if self.admin is not None:
            await self.admin.stop(1.0)
        self.lag.stop()
        log.info("stopped", extra={"ctx": self._summary()})
        return 0

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

    async def _start_admin(self) -> None:
        address = self.config["admin"] or default_admin_path(self.app.name, self.config["pidfile"])
        if address == "off":
            return
        check_admin_address(address, self.config["admin_token"])
        admin_app = build_admin_app(self, lambda: self.config["admin_token"])
        self.admin = Server(admin_app, None, self.loop)
        old_umask = os.umask(0o177)  # no moment when others may connect
        try:
            await self.admin.start({"admin": [address]})
        finally:
            os.umask(old_umask)
        if address.startswith("unix:"):
            os.chmod(address[5:], 0o600)

    # -- signals -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = self.loop
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        loop.add_signal_handler(signal.SIGUSR1, self.log_stats)

    def request_stop(self) -> None:
        if self._stopping:
            log.warning("second stop signal: exiting at once")
            self.logs.close()
            os._exit(1)
        self._stopping = True
        self._stop.set()

    def _on_sighup(self) -> None:
        self.reload()

    def log_stats(self) -> None:
        log.info("stats", extra={"ctx": self._summary()})

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

    def reload(self) -> dict[str, Any]:
        """Re-read the configuration and apply what can change live."""
        self.notifier.reloading()
        try:
            new = self.schema.resolve(self.config.config_file, self.environ, self.flags)
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
            self.logs.reopen()
            self.notifier.ready()
            return {"ok": False, "error": str(exc)}
        live, restart = self.config.changes(new)
        self.config = new
        self.logs.apply(log_settings(new))
        self.logs.reopen()
        self.server.limits = new.limits()
        for conn in list(self.server.connections.values()):
            if conn.transport is not None:
                conn.transport.set_write_buffer_limits(
                    new["write_high_water"], new["write_low_water"]
                )
        options = {
            name: value for name, value in live.items() if self.schema.settings[name].app_option
        }
        if options:
            self.app.options.update(options)
            if self.app.persistence is not None:
                self.app.persistence.reconfigure(self.app.options)
            for hook in self.app.reload_hooks:
                try:
                    hook(options)
                except Exception:
                    log.exception("reload hook %r failed", hook)
        self.reloads += 1
        log.info(
            "reloaded: applied %s; needs a restart: %s",
            ", ".join(f"{key}={value}" for key, value in live.items()) or "nothing",
            ", ".join(f"{key}={value}" for key, value in restart.items()) or "nothing",
        )
        self.notifier.ready()
        return {"ok": True, "applied": live, "needs_restart": restart}

    # -- the admin controller ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        data = self.server.snapshot()
        data["pid"] = os.getpid()
        data["loop_lag"] = self.lag.summary()
        data["rss_bytes"] = process.rss_bytes()
        data["open_fds"] = process.open_fds()
        data["reloads"] = self.reloads
        data["log_level"] = self.config["log_level"]
        data["listening"] = [str(address) for address in self.server.addresses()]
        if self.app.persistence is not None and self.app.persistence.enabled:
            data["persistence"] = self.app.persistence.info()
        return data

    def config_dict(self) -> dict[str, Any]:
        return self.config.as_dict()

    def set_log_level(self, level: str) -> None:
        level = level.upper()
        if level not in LOG_LEVELS:
            raise ConfigError(
                f"log_level = {level!r} is not allowed: expected one of {', '.join(LOG_LEVELS)}"
            )
        self.config.values["log_level"] = level
        self.logs.set_level(level)
        log.info("log level set to %s", level)
