"""Helpers of the workers tests: a master with its workers as real processes, and a client
loop that opens a connection per request and counts what it sees."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from residentd.daemon.control import admin_json
from support import wait_until

from .helpers import Daemon
from .upgrading import Counts, _alive


class Master(Daemon):
    """``residentd run APP --workers N`` in the foreground: the master, found by its pid and
    pidfile; its workers, found by its status."""

    def __init__(self, tmp: Path, app: str = "echo", *args: str, workers: int = 2) -> None:
        super().__init__(tmp, app, "--workers", str(workers), *args)
        self.count = workers

    def admin(self) -> dict[str, Any]:
        return dict(admin_json(f"unix:{self.admin_path}", "GET", "/status"))

    def ready_workers(self) -> dict[int, dict[str, Any]]:
        """The ready workers' rows, by slot (when each slot has exactly one)."""
        rows = [row for row in self.admin()["workers"] if row["state"] == "ready"]
        by_slot = {row["slot"]: row for row in rows}
        return by_slot if len(by_slot) == len(rows) else {}

    def wait_ready(self, exclude: set[int] = frozenset()) -> dict[int, int]:  # type: ignore[assignment]
        """Wait until every slot has a ready worker (none of whose pids is in ``exclude``) and
        its status arrived; the pids by slot."""

        def ready() -> dict[int, int]:
            rows = self.ready_workers()
            pids = {slot: row["pid"] for slot, row in rows.items()}
            if len(pids) != self.count or set(pids.values()) & exclude:
                return {}
            if any(not row["loop_lag"] for row in rows.values()):
                return {}  # no heartbeat answer yet
            return pids

        return dict(wait_until(ready, timeout=40, what="every worker ready"))

    def wait_gone(self, pids: set[int] | list[int]) -> None:
        wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=20, what=f"{pids} gone")


class ShortClients:
    """``clients`` loops in a thread, each connecting, sending one line, reading its reply and
    closing, again and again until ``stop``: a reply for every request, and nothing refused or
    closed early, is what a rolling restart must give them (``assert_clean``)."""

    def __init__(self, port: int, clients: int = 8) -> None:
        self.port = port
        self.clients = clients
        self.tally = Counts()
        self._stopping = False
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def start(self) -> ShortClients:
        self._thread.start()
        wait_until(lambda: self.tally.replies >= 20, what="replies flowing")
        return self

    def stop(self) -> Counts:
        self._stopping = True
        self._thread.join(timeout=30)
        assert not self._thread.is_alive()
        return self.tally

    async def _main(self) -> None:
        await asyncio.gather(*(self._loop(index) for index in range(self.clients)))

    async def _loop(self, index: int) -> None:
        n = 0
        while not self._stopping:
            n += 1
            line = b"client %d request %d\n" % (index, n)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except ConnectionRefusedError as exc:
                self.tally.refused += 1
                self.tally.errors.append(repr(exc))
                continue
            self.tally.connects += 1
            try:
                writer.write(line)
                self.tally.requests += 1
                reply = await asyncio.wait_for(reader.readline(), 20)
                if reply:
                    self.tally.replies += 1
                if reply != line:
                    self.tally.wrong += bool(reply)
                    self.tally.closed += not reply
                    self.tally.errors.append(f"{line!r} got {reply!r}")
            except (OSError, TimeoutError) as exc:
                self.tally.closed += 1
                self.tally.errors.append(f"{line!r}: {exc!r}")
            finally:
                writer.close()
            await asyncio.sleep(0.002)


def log_lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]
