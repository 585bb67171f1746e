"""The master of ``workers > 1``: it binds the listeners, starts the workers and supervises
them; it serves no traffic itself (gunicorn's arbiter, nginx's master).

``residentd run APP --workers N`` makes this process the master. It owns what is one per
daemon: the pidfile, the admin endpoint, systemd's notifications, the signals, and every
slot's listening sockets (daemon/slots.py). Each of the N slots has one worker: ``residentd``
started again with the same command line (fork and exec, daemon/worker.py), which serves the
slot's sockets. The master talks to each over a Unix socket pair (net/handover.py's framing).

- Heartbeat: every second the master pings each worker, which answers with its status; those
  answers are what ``residentd status`` shows per worker. A worker silent for
  ``worker_heartbeat_timeout`` (stopped, or stuck in a loop) is SIGKILLed and replaced.
- A worker that exits is replaced: at once the first time, then after a delay that doubles
  with each death in a row (0.1 s up to 30 s), back to none once one has lived
  ``STABLE_AFTER`` seconds. Each death is one log line: slot, pid, exit code or signal, and
  the delay.
- SIGTERM, SIGINT, SIGQUIT (``residentd stop``): every worker is sent SIGTERM and stops
  gracefully within ``shutdown_timeout``; one still there ``STOP_GRACE`` seconds later is
  SIGKILLed; then the master exits 0.
- SIGHUP (``residentd reload``): the config is read again and checked (a bad file is refused,
  as with one process); then a rolling restart: slot by slot, a new worker starts on the
  slot's sockets, and once it is ready the old one is told to retire (it stops accepting, its
  open connections finish, then it stops gracefully). Some worker accepts at every moment.
- SIGUSR1: the log file is reopened, by the master and each worker, and the workers' status
  rows are logged.
- SIGUSR2 (``residentd upgrade``): a live upgrade, slot by slot: the master starts the slot's
  new worker, and the old worker hands it its connections and state (daemon/upgrade.py). A
  slot whose new worker fails keeps its old one. When every slot succeeded, the master
  executes its own new code in place (same pid; daemon/reexec.py) and adopts its workers.
- ``/metrics`` asks every worker for its Prometheus text and merges it, each sample labelled
  with its worker's slot (``worker="0"``), beside the master's own families.
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
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from residentd import __version__
from residentd.daemon import process
from residentd.daemon.children import Slot, WorkerProcess, exit_text
from residentd.daemon.config import Config, worker_count
from residentd.daemon.logs import setup_logging
from residentd.daemon.metrics import merge_expositions, worker_families
from residentd.daemon.reexec import Inheritance, execute
from residentd.daemon.runner import Daemon, _start_libuv_pool, block_signals, log_settings
from residentd.daemon.slots import Slots, bind_slots
from residentd.daemon.upgrade import ENV_FD
from residentd.daemon.worker import ENV_WORKER, describe
from residentd.net.handover import Channel, HandoverError, Listeners

log = logging.getLogger("residentd.master")
T = TypeVar("T")

HEARTBEAT_INTERVAL = 1.0
#: Seconds a new worker has to report ready before it is killed.
START_TIMEOUT = 60.0
#: Seconds a worker must live for its slot's next death to be restarted without delay.
STABLE_AFTER = 10.0
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 30.0
#: Seconds past ``shutdown_timeout`` a stopping worker gets to exit before SIGKILL.
STOP_GRACE = 2.0
#: Seconds the admin requests under way get to finish before the master executes again.
ADMIN_DRAIN = 2.0
#: Seconds a worker has to send its metrics.
METRICS_TIMEOUT = 2.0
#: Settings the master applies itself, which a reload (a rolling restart) cannot change.
MASTER_SETTINGS = ("workers", "pidfile", "admin", "daemon", "user", "group", "loop")


def _master_setting(name: str) -> bool:
    return name in MASTER_SETTINGS or name == "listen" or name.endswith("_listen")


class Master(Daemon):
    """The supervising process: the Daemon's pidfile, admin endpoint, signals and reloads, and
    workers instead of a server."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.count = worker_count(self.config.daemon.workers)
        self.slots = [Slot(index) for index in range(self.count)]
        self.sockets: Slots | None = None
        self.workers: dict[int, WorkerProcess] = {}  # by pid: every live one
        self.rolling = False
        self._heartbeat: asyncio.Task[None] | None = None
        #: What this master had before it executed itself again (daemon/reexec.py), or None.
        self.inheritance: Inheritance | None = None
        self.execs = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- life ----------------------------------------------------------------------------------

    async def main(self) -> int:
        self.app.options.update(self.config.app_options())
        self._install_signals()
        await _start_libuv_pool(self.loop)
        block_signals(False)
        if not await self._start():  # Daemon's, binding with _listen
            return self.failure_status
        self.lag.start()
        interval = self.notifier.watchdog_interval()
        if interval:
            self.server.timers.call_every(interval, self.notifier.watchdog, delay=0)
        assert self.sockets is not None
        listening = ", ".join(str(address) for address in self.sockets.addresses())
        log.info(
            "master of %s listening on %s: %d workers, %s",
            self.app.name,
            listening,
            self.count,
            "a socket each (SO_REUSEPORT)" if self.sockets.reuse_port else "one shared socket",
        )
        self._adopt_or_spawn()
        self._heartbeat = self.loop.create_task(self._beat())
        starting = [slot.worker.ready for slot in self.slots if slot.worker is not None]
        await asyncio.wait(starting, timeout=START_TIMEOUT)
        self.serving = True
        self.notifier.ready()
        self.notifier.status(f"{self.count} workers on {listening}")
        if self.channel is not None:
            self.channel.ready()
        await self._stop.wait()
        while self.upgrading or self.rolling:  # they notice the stop and end soon
            await asyncio.sleep(0.01)
        self.notifier.stopping()
        timeout = self.config.daemon.shutdown_timeout
        log.info("stopping: %d workers, graceful, timeout %ss", len(self.workers), timeout)
        await self._stop_workers(timeout)
        self._heartbeat.cancel()
        if self.admin is not None:
            await self.admin.stop(1.0)
        self.sockets.close()
        self.lag.stop()
        log.info("master stopped", extra={"ctx": {"restarts": self._restarts()}})
        return 0

    async def _listen(self) -> None:
        """Every slot's sockets, instead of a server (as they were, after an exec)."""
        if self.inheritance is not None:
            self.sockets = self.inheritance.slot_sockets()
            self.count = len(self.sockets.sockets)
            self.slots = [Slot(index) for index in range(self.count)]
            return
        self.sockets = bind_slots(self.config.listen(), self.count, self.config.limits().backlog)

    async def _start_admin(
        self,
        inherit: Callable[[dict[str, list[str]]], dict[str, list[socket.socket]]] | None = None,
    ) -> None:
        inheritance = self.inheritance
        if inheritance is None or not inheritance.admin:
            await super()._start_admin(inherit)
            return
        await super()._start_admin(inheritance.admin_sockets)
        if self.admin is not None:
            await self.admin.start_serving()  # inherited sockets wait for this

    def _adopt_or_spawn(self) -> None:
        """A worker for every slot: the ones it had before its exec, or new ones."""
        inheritance, self.inheritance = self.inheritance, None
        if inheritance is not None:
            self.execs = inheritance.execs
            for slot, restarts in zip(self.slots, inheritance.restarts, strict=False):
                slot.restarts = restarts
            for index, pid, control, lived in inheritance.workers:
                channel = Channel(socket.socket(fileno=control), self.loop)
                worker = WorkerProcess(index, pid, channel, lived=lived)
                worker.ready.set_result(None)
                self.slots[index].worker = worker
                self._watch(worker)
            log.info(
                "master executed again in place (pid %d, exec %d): %d workers adopted",
                os.getpid(),
                self.execs,
                len(inheritance.workers),
            )
        for slot in self.slots:
            if slot.worker is None:
                slot.worker = self._spawn(slot)

    async def _stop_listening(self) -> None:
        if self.sockets is not None:
            self.sockets.close()

    def _close_state(self) -> None:
        pass  # the master never opens the app's state: its workers do

    def _background(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task the master keeps until it is done (the loop holds tasks only weakly)."""
        task = self.loop.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _restarts(self) -> int:
        return sum(slot.restarts for slot in self.slots)

    # -- workers -------------------------------------------------------------------------------

    def _spawn(
        self, slot: Slot, candidate: bool = False, handover: socket.socket | None = None
    ) -> WorkerProcess | None:
        """Start a worker for ``slot`` (``residentd`` again, same command line); None when it
        cannot be started (then the slot is tried again after its backoff)."""
        assert self.sockets is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        listeners = {
            name: [sock.fileno() for sock in socks]
            for name, socks in self.sockets.sockets[slot.index].items()
        }
        env = dict(os.environ)
        env[ENV_WORKER] = describe(slot.index, theirs.fileno(), listeners)
        for name in ("NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", ENV_FD):
            env.pop(name, None)  # systemd hears the master only
        fds = [theirs.fileno(), *self.sockets.fds(slot.index)]
        if handover is not None:
            env[ENV_FD] = str(handover.fileno())
            fds.append(handover.fileno())
        try:
            # From the loop's thread: PR_SET_PDEATHSIG follows the thread that made the child.
            popen = subprocess.Popen(
                [sys.executable, "-m", "residentd", *sys.argv[1:]],
                stdin=subprocess.DEVNULL,
                pass_fds=fds,
                env=env,
                cwd=self.start_dir,
            )
        except OSError as exc:
            ours.close()
            log.error("worker %d: cannot start a process: %s", slot.index, exc)
            if not candidate:
                self._schedule_restart(slot, f"not started ({exc})", None)
            return None
        finally:
            theirs.close()
        worker = WorkerProcess(slot.index, popen.pid, Channel(ours, self.loop), popen)
        worker.candidate = candidate
        self._watch(worker)
        log.info("worker %d: started pid %d", slot.index, worker.pid)
        return worker

    def _watch(self, worker: WorkerProcess) -> None:
        self.workers[worker.pid] = worker
        worker.pidfd = os.pidfd_open(worker.pid)
        self.loop.add_reader(worker.pidfd, self._reaped, worker)
        worker.reader = self.loop.create_task(self._read(worker))

    async def _read(self, worker: WorkerProcess) -> None:
        """What the worker says; its end is noticed by its pidfd (``_reaped``)."""
        try:
            while True:
                header, _, fds = await worker.channel.receive()
                for fd in fds:
                    os.close(fd)
                worker.unanswered_since = None
                kind = header.get("kind")
                if kind == "pong":
                    worker.stats = header["status"]
                elif kind == "ready":
                    if not worker.ready.done():
                        worker.ready.set_result(None)
                    log.info("worker %d: pid %d ready", worker.slot, worker.pid)
                elif kind in ("upgraded", "upgrade-failed"):
                    if not worker.upgrade_answer.done():
                        worker.upgrade_answer.set_result(header)
                else:
                    worker.answered(header)
        except (HandoverError, OSError):
            return

    def _reaped(self, worker: WorkerProcess) -> None:
        self.loop.remove_reader(worker.pidfd)
        os.close(worker.pidfd)
        code = worker.reap()
        self.workers.pop(worker.pid, None)
        worker.channel.close()
        if worker.reader is not None:
            worker.reader.cancel()
        how = exit_text(code)
        lived = time.monotonic() - worker.started
        for future in (worker.ready, worker.upgrade_answer):
            if not future.done():
                future.set_exception(HandoverError(f"worker pid {worker.pid} ended: {how}"))
                future.exception()  # retrieved: nobody may be waiting any more
        worker.exited.set_result(code)
        slot = self.slots[worker.slot]
        if slot.worker is not worker or self._stopping:
            log.info(
                "worker %d: pid %d ended (%s, %s)",
                worker.slot,
                worker.pid,
                how,
                "stopping" if self._stopping else "replaced" if worker.retiring else "not taken",
            )
            return
        slot.worker = None
        if lived >= STABLE_AFTER:
            slot.deaths = 0
        self._schedule_restart(slot, how, worker.pid, lived)

    def _schedule_restart(self, slot: Slot, how: str, pid: int | None, lived: float = 0.0) -> None:
        # The first death of a worker that had lived STABLE_AFTER is replaced at once; a slot
        # dying again and again backs off: 0.1 s, 0.2 s, 0.4 s ... 30 s.
        slot.deaths += 1
        slot.restarts += 1
        delay = (
            0.0 if slot.deaths == 1 else min(BACKOFF_FIRST * 2 ** (slot.deaths - 2), BACKOFF_MAX)
        )
        log.error(
            "worker %d: pid %s died (%s) after %.1f s; starting another in %.1f s",
            slot.index,
            pid if pid is not None else "-",
            how,
            lived,
            delay,
            extra={"ctx": {"slot": slot.index, "deaths_in_a_row": slot.deaths}},
        )
        slot.restart = self.loop.call_later(delay, self._restart, slot)

    def _restart(self, slot: Slot) -> None:
        slot.restart = None
        if self._stopping or slot.worker is not None:
            return
        slot.worker = self._spawn(slot)

    async def _beat(self) -> None:
        """Ping every worker each second; kill one that stays silent too long."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            now = self.loop.time()
            timeout = self.config.daemon.worker_heartbeat_timeout
            for worker in list(self.workers.values()):
                if worker.killed or worker.exited.done() or worker.retiring:
                    continue
                started = worker.ready.done()
                since = worker.unanswered_since if started else worker.spawned_at
                silent = 0.0 if since is None else now - since
                if silent > (timeout if started else START_TIMEOUT):
                    what = "has not answered the heartbeat" if started else "is not ready"
                    log.error(
                        "worker %d: pid %d %s for %.1f s: killing it",
                        worker.slot,
                        worker.pid,
                        what,
                        silent,
                    )
                    worker.kill()
                elif started:
                    if worker.unanswered_since is None:
                        worker.unanswered_since = now
                    self._background(self._ping(worker))

    async def _ping(self, worker: WorkerProcess) -> None:
        with contextlib.suppress(HandoverError, OSError):
            await worker.send({"kind": "ping"})

    async def _stop_workers(self, timeout: float) -> None:
        for slot in self.slots:
            if slot.restart is not None:
                slot.restart.cancel()
        workers = list(self.workers.values())
        for worker in workers:
            worker.retiring = True
            worker.signal(signal.SIGTERM)
        exits = [worker.exited for worker in workers]
        if not exits:
            return
        _, late = await asyncio.wait(exits, timeout=timeout + STOP_GRACE)
        for worker in workers:
            if not worker.exited.done():
                log.warning("worker %d: pid %d still running: SIGKILL", worker.slot, worker.pid)
                worker.kill()
        if late:
            await asyncio.wait(late, timeout=5.0)

    # -- signals -------------------------------------------------------------------------------

    def _on_sighup(self) -> None:
        if self._stopping:
            log.info("SIGHUP while stopping: not reloading")
            return
        self.reload_then(lambda result: None)

    def _on_sigusr1(self) -> None:
        self.reopen_logs()
        for worker in list(self.workers.values()):
            worker.signal(signal.SIGUSR1)
        status = self.status()
        for row in status["workers"]:
            log.info(
                "SIGUSR1: worker %d, pid %d, %s, up %.1f s, %d connections, rss %.1f MiB, "
                "loop lag p99 %s ms",
                row["slot"],
                row["pid"],
                row["state"],
                row["uptime"],
                row["connections_open"],
                row["rss_bytes"] / 1048576,
                row["loop_lag"].get("p99_ms", 0),
            )
        log.info(
            "SIGUSR1: %d workers, %d connections, %d restarts; log files reopened",
            len(status["workers"]),
            status["connections_open"],
            status["worker_restarts"],
        )

    def set_log_level(self, level: str) -> None:
        super().set_log_level(level)
        for worker in list(self.workers.values()):
            self._background(self._tell(worker, {"kind": "loglevel", "level": level}))

    async def _tell(self, worker: WorkerProcess, header: dict[str, Any]) -> None:
        with contextlib.suppress(HandoverError, OSError):
            await worker.send(header)

    # -- reload: a rolling restart -------------------------------------------------------------

    def _reload_changes(
        self, old: Config, config: Config, new: Config
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The new workers of the rolling restart read every setting anew (``config`` takes
        their values too); only the master's own wait for a restart of the master."""
        changed, restart = old.changes(new)
        changed.update(restart)
        master = {name: value for name, value in changed.items() if _master_setting(name)}
        applied = {name: value for name, value in changed.items() if name not in master}
        for name in applied:
            config.values[name], config.sources[name] = new.values[name], new.sources[name]
        return applied, master

    def _apply_app_options(self, options: dict[str, Any]) -> list[str]:
        return []  # the master runs no app: its workers read the options anew

    def reload_then(self, done: Callable[[dict[str, Any]], None]) -> None:
        if self._stopping:
            done({"ok": False, "error": "the daemon is stopping"})
            return
        if self.rolling or self.upgrading:
            done({"ok": False, "error": "a rolling restart or an upgrade is running"})
            return
        self.rolling = True
        task = self._background(self._reload_and_roll())
        task.add_done_callback(lambda task: done(task.result()))

    async def _reload_and_roll(self) -> dict[str, Any]:
        try:
            result = self.reload()  # the config part; the log says what the workers get
            if "applied" not in result:  # the config file was refused: the workers stay
                return result
            self.notifier.reloading()
            try:
                workers = await self._roll()
            finally:
                self.notifier.ready()
            result["workers"] = workers
            failed = [row["error"] for row in workers if "error" in row]
            if failed:
                result["ok"] = False
                result.setdefault("errors", []).extend(failed)
                result["error"] = "; ".join(result["errors"])
                self.reloads -= 1
                self.reloads_failed += 1
            return result
        finally:
            self.rolling = False

    async def _roll(self) -> list[dict[str, Any]]:
        """Replace each slot's worker in turn: the new one first, then the old one retires."""
        results: list[dict[str, Any]] = []
        for slot in self.slots:
            if self._stopping:
                results.append({"slot": slot.index, "error": "stopped during the restart"})
                break
            old = slot.worker
            new = self._spawn(slot, candidate=True)
            error = await self._started(new)
            if error is not None or new is None:
                message = (
                    f"worker {slot.index}: the new worker did not start ({error}); "
                    "the old one serves on"
                )
                log.error("%s", message)
                results.append({"slot": slot.index, "error": message})
                continue
            new.candidate = False
            slot.worker = new
            if old is not None:
                self._retire_worker(old)
            results.append(
                {
                    "slot": slot.index,
                    "pid": new.pid,
                    "old_pid": old.pid if old is not None else None,
                }
            )
            log.info(
                "worker %d: pid %d replaced by pid %d", slot.index, old.pid if old else 0, new.pid
            )
        return results

    async def _started(self, worker: WorkerProcess | None) -> str | None:
        """Wait until ``worker`` is ready; why not (killed if still running), or None."""
        if worker is None:
            return "it could not be started"
        try:
            await asyncio.wait_for(asyncio.shield(worker.ready), START_TIMEOUT)
        except TimeoutError:
            worker.kill()
            return "not ready in time"
        except HandoverError:
            code = await worker.exited
            return exit_text(code)
        return None

    def _retire_worker(self, worker: WorkerProcess) -> None:
        """Have ``worker`` stop accepting, finish its connections and stop; SIGKILL it if it
        is still there after twice ``shutdown_timeout``."""
        worker.retiring = True
        self._background(self._tell(worker, {"kind": "retire"}))
        limit = 2 * self.config.daemon.shutdown_timeout + STOP_GRACE

        def late() -> None:
            if not worker.exited.done():
                log.warning(
                    "worker %d: pid %d did not retire in time: SIGKILL", worker.slot, worker.pid
                )
                worker.kill()

        self.loop.call_later(limit, late)

    # -- live upgrade, slot by slot ------------------------------------------------------------

    async def upgrade(self, handover: socket.socket | None = None) -> dict[str, Any]:
        if self._stopping:
            return {"ok": False, "error": "the daemon is stopping"}
        if not self.serving:
            return {"ok": False, "error": "the daemon is still starting"}
        if self.upgrading or self.rolling:
            return {"ok": False, "error": "an upgrade or a rolling restart is running"}
        self.upgrading = True
        self.notifier.reloading()
        try:
            results = [await self._upgrade_slot(slot) for slot in self.slots]
        finally:
            self.upgrading = False
            self.notifier.ready()
        errors = [row["error"] for row in results if "error" in row]
        answer: dict[str, Any] = {
            "ok": not errors,
            "pid": os.getpid(),
            "old_pid": os.getpid(),
            "workers": results,
        }
        if errors:
            answer["error"] = "; ".join(errors)
            log.error("upgrade: %s", answer["error"])
        else:
            log.info("upgraded every worker; now the master itself")
            self._background(self._execute_again())
        return answer

    async def _execute_again(self) -> None:
        """Once the old workers are gone (and the answer to the upgrade is out), run the
        code on disk in this process too: ``os.execv``, with the same pid (daemon/reexec.py)."""
        await asyncio.sleep(0.1)
        retiring = [worker.exited for worker in self.workers.values() if worker.retiring]
        if retiring:
            await asyncio.wait(
                retiring, timeout=2 * self.config.daemon.shutdown_timeout + STOP_GRACE
            )
        if self._stopping or self.upgrading or self.rolling or not self.sockets:
            return
        workers = [slot.worker for slot in self.slots if slot.worker is not None]
        if any(worker.exited.done() for worker in workers) or len(self.workers) != len(workers):
            log.warning("master: not executing again now: its workers are changing")
            return
        admin = Listeners.take(self.admin) if self.admin is not None else None
        if admin is not None and self.admin is not None:
            # New admin requests wait in the socket's backlog for the next master; those
            # under way get their answers first (at most ADMIN_DRAIN seconds).
            admin.stop_accepting()
            deadline = self.loop.time() + ADMIN_DRAIN
            while self.admin.connections and self.loop.time() < deadline:
                await asyncio.sleep(0.01)
        if self._stopping:
            if admin is not None:
                await admin.accept_again()
                admin.close()
            return
        inheritance = Inheritance(
            slots=[
                {name: [sock.fileno() for sock in socks] for name, socks in slot.items()}
                for slot in self.sockets.sockets
            ],
            reuse_port=self.sockets.reuse_port,
            unix_paths=list(self.sockets.unix_paths),
            admin=[fd for _, _, fd in admin.sockets] if admin is not None else [],
            pidfile=self.pidfile.fileno() if self.pidfile is not None else None,
            workers=[
                (w.slot, w.pid, w.channel.sock.fileno(), time.monotonic() - w.started)
                for w in workers
            ],
            restarts=[slot.restarts for slot in self.slots],
            execs=self.execs + 1,
        )
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        log.info("master: executing the code on disk in place (pid %d)", os.getpid())
        block_signals()  # until the next master's handlers are in place: the mask survives
        self.logs.close()
        try:
            execute(inheritance, self.start_dir)
        except OSError as exc:
            self.logs = setup_logging(log_settings(self.config))
            block_signals(False)
            log.error("master: cannot execute again (%s): serving on with this code", exc)
            self._heartbeat = self.loop.create_task(self._beat())
            if admin is not None:
                await admin.accept_again()
                admin.close()

    async def _upgrade_slot(self, slot: Slot) -> dict[str, Any]:
        old = slot.worker
        if self._stopping:
            return {"slot": slot.index, "error": "stopped during the upgrade"}
        if old is None or not old.ready.done() or old.exited.done():
            return {"slot": slot.index, "error": f"worker {slot.index}: no worker running"}
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            new = self._spawn(slot, candidate=True, handover=theirs)
        finally:
            theirs.close()
        try:
            if new is None:
                return {"slot": slot.index, "error": f"worker {slot.index}: cannot start a process"}
            old.upgrade_answer = self.loop.create_future()  # not the last attempt's
            await old.send({"kind": "upgrade"}, fds=[ours.fileno()])
        except (HandoverError, OSError) as exc:
            if new is not None:
                new.kill()
            return {"slot": slot.index, "error": f"worker {slot.index}: {exc}"}
        finally:
            ours.close()
        error = await self._handed_over(old, new)
        if error is not None:
            new.kill()
            message = f"worker {slot.index}: upgrade failed ({error}); pid {old.pid} serves on"
            return {"slot": slot.index, "error": message}
        new.candidate = False
        old.retiring = True
        slot.worker = new
        log.info("worker %d: upgraded from pid %d to pid %d", slot.index, old.pid, new.pid)
        return {"slot": slot.index, "pid": new.pid, "old_pid": old.pid}

    async def _handed_over(self, old: WorkerProcess, new: WorkerProcess) -> str | None:
        """Wait until ``new`` reports ready (it took over) or the handover failed; why not."""
        deadline = self.loop.time() + self.config.daemon.upgrade_timeout + STOP_GRACE
        while True:
            if new.ready.done():
                return None if new.ready.exception() is None else str(new.ready.exception())
            if old.upgrade_answer.done():
                answer = (
                    old.upgrade_answer.result() if old.upgrade_answer.exception() is None else {}
                )
                if not answer.get("ok"):
                    return str(answer.get("error", "the old worker ended"))
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return "no answer within upgrade_timeout"
            pending = [future for future in (new.ready, old.upgrade_answer) if not future.done()]
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)

    # -- status and metrics --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        rows = sorted(
            (worker.row(self.slots[worker.slot].restarts) for worker in self.workers.values()),
            key=lambda row: (row["slot"], row["uptime"]),
        )
        live = [worker.stats for worker in self.workers.values() if worker.stats]
        data: dict[str, Any] = {
            "app": self.app.name,
            "role": "master",
            "pid": os.getpid(),
            "loop": live[0].get("loop", "") if live else "",
            "workers_configured": self.count,
            "workers": rows,
            "worker_restarts": self._restarts(),
            "master_execs": self.execs,
            "uptime": round(time.time() - self.server.started_at, 3),
            "started_at": process.start_time(),
            "loop_lag": self.lag.summary(),
            "rss_bytes": process.rss_bytes(),
            "open_fds": process.open_fds(),
            "reloads": self.reloads,
            "reloads_failed": self.reloads_failed,
            "version": __version__,
            "log_level": self.config.daemon.log_level,
            "listening": [str(a) for a in self.sockets.addresses()] if self.sockets else [],
        }
        # Totals over the live workers (a worker's counts leave with it).
        for key in (
            "connections_open",
            "connections_total",
            "messages_in",
            "messages_out",
            "bytes_in",
            "bytes_out",
            "dropped_connections",
            "dropped_bytes",
        ):
            data[key] = sum(int(stats.get(key, 0)) for stats in live)
        for key in ("refused", "closed", "errors"):
            merged: dict[str, int] = {}
            for stats in live:
                for reason, count in stats.get(key, {}).items():
                    merged[reason] = merged.get(reason, 0) + count
            data[key] = merged
        return data

    def metrics_then(self, done: Callable[[str], None]) -> None:
        task = self._background(self._metrics())
        task.add_done_callback(lambda task: done(task.result()))

    async def _metrics(self) -> str:
        workers = [
            worker
            for worker in self.workers.values()
            if worker.ready.done() and not worker.candidate and not worker.exited.done()
        ]
        answers = await asyncio.gather(
            *(worker.ask({"kind": "metrics"}, METRICS_TIMEOUT) for worker in workers),
            return_exceptions=True,
        )
        texts = {
            str(worker.slot): str(answer["text"])
            for worker, answer in zip(workers, answers, strict=True)
            if isinstance(answer, dict)
        }
        return worker_families(self.status()) + merge_expositions(texts, "worker")
