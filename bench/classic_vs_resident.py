"""The talk's comparison, measured: one "users online" workload served by a classic web stack
and by residentd's chat, per server CPU-second.

    python bench/classic_vs_resident.py                          # mix workload, 3 rounds
    python bench/classic_vs_resident.py --workloads mix,heartbeat,who,post,history,incr \\
        --rounds 3 --seconds 5 --json classic.json --chart docs/classic-vs-resident.png

The workload: each client is a user in a room of ``--room-size`` users; it signs in with a
heartbeat, asks who is online in its room, posts a message, reads the room's last 20 messages
and increments a counter in its state (``mix``), or repeats one of these alone. The stacks:

* ``cgi-sqlite``: bench/classic/cgi_front.py, an HTTP front that runs
  bench/classic/cgi_handler.py in a fresh Python process per request (at most
  ``--cgi-children`` at once), the state in SQLite;
* ``gunicorn-sqlite``, ``gunicorn-redis``: the same handlers as a WSGI app
  (bench/classic/wsgi.py) under gunicorn, ``--workers`` sync workers, the state in SQLite or
  in a redis-server started here (``--save '' --appendonly no``);
* ``resident-tcp``: ``residentd run chat`` and its JSON lines over TCP (the heartbeat of a
  signed-in connection is ``ping``: the connection is the presence).

Every server process (front, CGI children, gunicorn master and workers, redis-server, the
chat daemon) runs pinned to CPU 0; the load generator (bench/classic/load.py, this process,
one uvloop loop) to CPU 1. The server CPU of a window is the user+system time of the server's
process tree, the reaped children's included (psutil's ``children_user``/``children_system``,
which is how the CGI processes are counted); the stacks' memory is the RSS of that tree at the
end of the window, divided by the users online (every client is one, signed in for the whole
window). Each window: connect, ``--warmup`` s, ``--seconds`` s counted, stop. Rounds alternate
the stacks, the order rotating; the table gives medians and, per workload, the ratio of the
resident daemon's requests per server CPU-second to each stack's (target: >= 100x CGI,
>= 10x pooled workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop

from classic import load as L
from classic.app import now_ms
from classic.sqlite_store import create
from classic.stores import open_store
from harness import CLIENT_CPU, HOST, SERVER_CPU, free_port, pin_to_cpu, source_address

HERE = Path(__file__).resolve().parent

CLASSIC = HERE / "classic"
PYTHON = sys.executable
STACKS = ("cgi-sqlite", "gunicorn-sqlite", "gunicorn-redis", "resident-tcp", "resident-http")
RESIDENT = ("resident-tcp", "resident-http")
API_KEY = "bench-" + secrets.token_hex(16)
SECRET = "bench-" + secrets.token_hex(16)  # the chat's token secret: its users sign in by token
# The talk's own figures, quoted by issue 20: about 2,500 requests/s on 8 cores, about 1 MB
# per online user. Per CPU-second that is at best 2,500 / 8, if all 8 cores were busy.
TALK = {"rps": 2500.0, "cores": 8, "bytes_per_user": 1_000_000}


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection((HOST, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.args} did not listen on {port} in {timeout}s")


def tree(roots: list[psutil.Process]) -> Iterator[psutil.Process]:
    """The processes under ``roots``, the roots included."""
    for root in roots:
        try:
            yield root
            yield from root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue


def tree_cpu(roots: list[psutil.Process]) -> float:
    """User+system CPU seconds of the processes under ``roots``, reaped children included."""
    total = 0.0
    for process in tree(roots):
        try:
            t = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_rss(roots: list[psutil.Process]) -> int:
    total = 0
    for process in tree(roots):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def busy_cpu() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Stack:
    """One server stack under test: its processes, its protocol and its users' setup."""

    name: str
    workdir: Path
    options: argparse.Namespace
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0  # where the load goes
    chat_port: int = 0  # resident-http: where its users sign in
    store: str = ""
    chat_seeded: bool = False

    @property
    def chat(self) -> bool:
        return self.name.startswith("resident")

    def spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        cpu = int(SERVER_CPU)
        log = (self.workdir / f"{self.name}-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env={**os.environ, **(env or {})}, preexec_fn=lambda: pin_to_cpu(cpu),
        )  # fmt: skip
        self.processes.append(process)
        return process

    def start(self) -> None:
        o = self.options
        self.port = free_port()
        listen = f"{HOST}:{self.port}"
        if self.chat:
            self.chat_port, http_port = free_port(), free_port()
            self.port = http_port if self.name == "resident-http" else self.chat_port
            rooms = [L.room_name(i, o.room_size) for i in range(0, o.clients, o.room_size)]
            argv = [
                PYTHON, "-m", "residentd", "run", "chat", "--listen", f"{HOST}:{self.chat_port}",
                "--http-listen", f"{HOST}:{http_port}", "--api-keys", API_KEY, "--admin", "off",
                "--secret", SECRET,
                "--log-level", "WARNING", "--ping-interval", "0", "--rate-limit", "0",
                "--idle-timeout", "0", "--max-connections", "0", "--max-connections-per-ip", "0",
                *[arg for room in rooms for arg in ("--rooms", room)],
            ]  # fmt: skip
            daemon = self.spawn(argv)
            wait_port(self.chat_port, daemon)
            wait_port(http_port, daemon)
            return
        if self.name.endswith("-redis"):
            redis_port = free_port()
            redis = self.spawn([
                o.redis_server, "--port", str(redis_port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir),
            ])  # fmt: skip
            wait_port(redis_port, redis)
            self.store = f"redis://{HOST}:{redis_port}/0"
        else:
            path = self.workdir / f"{self.name}.db"
            create(str(path))
            self.store = f"sqlite:{path}"
        if self.name == "cgi-sqlite":
            argv = [PYTHON, str(CLASSIC / "cgi_front.py"), "--listen", listen,
                    "--store", self.store, "--max-children", str(o.cgi_children)]  # fmt: skip
        else:
            argv = [
                PYTHON, "-m", "gunicorn", "--chdir", str(HERE), "--bind", listen,
                "--workers", str(o.workers), "--worker-class", "sync",
                "--log-level", "warning", "--backlog", "2048", "classic.wsgi:app",
            ]  # fmt: skip
        wait_port(self.port, self.spawn(argv, {"CLASSIC_STORE": self.store}))
        self.seed()

    def seed(self) -> None:
        """Each classic user posts twice, so every room has 20 messages to read, straight into
        the store (the CGI stack would take a minute to do it through HTTP)."""
        o = self.options
        store = open_store(self.store)
        try:
            for index in range(o.clients):
                room = L.room_name(index, o.room_size)
                for _ in range(2):
                    store.post(room, L.user_name("", index), L.TEXT, now_ms())
        finally:
            store.close()

    def refresh_presence(self) -> None:
        """Every classic user's heartbeat is fresh as a window starts, whatever the workload:
        the clients' and the idle users' (in rooms of their own)."""
        o = self.options
        store = open_store(self.store)
        try:
            for index in range(o.clients):
                store.heartbeat(L.user_name("", index), L.room_name(index, o.room_size), now_ms())
            for index in range(o.idle_users):
                store.heartbeat(L.user_name("idle", index), f"idle{index // o.room_size}", now_ms())
        finally:
            store.close()

    async def open_idle(self) -> L.Load | None:
        """The chat's idle users: signed in over TCP for the whole run, saying nothing."""
        if not self.chat or not self.options.idle_users:
            return None
        idle = L.Load(HOST, self.chat_port, L.ChatConn)
        for index in range(self.options.idle_users):
            hello = L.chat_line("hello", 1, v=1, user=L.user_name("idle", index))
            idle.add([hello], [], source_address(index, 1000))
        await idle.start(timeout=60.0)
        return idle

    def roots(self) -> list[psutil.Process]:
        return [psutil.Process(p.pid) for p in self.processes]

    def front_pid(self) -> int:
        return self.processes[-1].pid

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def loads(self, workload: str) -> tuple[L.Load, L.Load | None]:
        """The clients of one window, and for resident-http its users' chat connections (signed
        in and in their rooms, only listening; the load goes through the API). The chat's users
        sign in and join, and in the first window post twice each, so every room has 20
        messages to read."""
        o = self.options
        framing: Callable[[L.Client], L.Conn] = L.HttpConn
        if self.name == "resident-tcp":
            framing = L.ChatConn
        run = L.Load(HOST, self.port, framing)
        members = L.Load(HOST, self.chat_port, L.ChatConn) if self.name == "resident-http" else None
        ops = L.ops_of(workload)
        posts = 0 if self.chat_seeded else 2
        self.chat_seeded = self.chat
        for index in range(o.clients):
            user, room = L.user_name("", index), L.room_name(index, o.room_size)
            chat = L.chat_requests(user, room)
            sign_in = [*L.chat_sign_in(user, room, SECRET), *[chat["post"]] * posts]
            if self.name == "resident-tcp":
                requests, setup = chat, sign_in
            elif members is not None:
                requests, setup = L.api_requests(user, room, API_KEY), []
                members.add(sign_in, [], source_address(index + o.clients, 1))
            else:  # signed in by refresh_presence
                requests, setup = L.classic_requests(user, room), []
            cycle = [(op, requests[op]) for op in ops]
            # Start each client at its own place in the cycle, so the operations interleave.
            shift = index % len(cycle)
            run.add(setup, cycle[shift:] + cycle[:shift], source_address(index, 1))
        return run, members


@dataclass
class Window:
    stack: str
    workload: str
    seconds: float
    requests: int
    errors: int
    pushes: int
    server_cpu: float
    front_cpu: float  # the last process started: the CGI front, gunicorn's master, the daemon
    client_cpu: float
    other_cpu: float
    rss: int
    users: int
    p50_us: int
    p99_us: int
    first_error: str

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.requests / self.server_cpu if self.server_cpu > 0 else 0.0


async def measure(stack: Stack, workload: str) -> Window:
    o = stack.options
    if not stack.chat:
        stack.refresh_presence()
    run, members = stack.loads(workload)
    if members is not None:
        await members.start(timeout=30.0)
    await run.start(timeout=max(30.0, o.seconds * 4))
    await asyncio.sleep(o.warmup)
    roots = stack.roots()
    me = psutil.Process()
    front = psutil.Process(stack.front_pid())
    run.reset()
    if members is not None:
        members.reset()
    cpu0, front0, me0, busy0 = tree_cpu(roots), _own_cpu(front), _own_cpu(me), busy_cpu()
    t0 = time.perf_counter()
    await asyncio.sleep(o.cgi_seconds if stack.name.startswith("cgi") else o.seconds)
    t1 = time.perf_counter()
    cpu1, front1, me1, busy1 = tree_cpu(roots), _own_cpu(front), _own_cpu(me), busy_cpu()
    rss = tree_rss(roots)
    tally = run.reset()
    await run.stop(timeout=max(30.0, o.seconds * 4))
    if members is not None:
        tally.pushes += members.reset().pushes
        await members.stop(timeout=10.0)
    server, client = cpu1 - cpu0, me1 - me0
    return Window(
        stack=stack.name, workload=workload, seconds=t1 - t0, requests=tally.requests,
        errors=tally.errors, pushes=tally.pushes, server_cpu=server, front_cpu=front1 - front0,
        client_cpu=client, other_cpu=max(0.0, busy1 - busy0 - server - client), rss=rss,
        users=o.clients + o.idle_users, p50_us=tally.latency.get_value_at_percentile(50),
        p99_us=tally.latency.get_value_at_percentile(99), first_error=tally.first_error,
    )  # fmt: skip


def _own_cpu(process: psutil.Process) -> float:
    t = process.cpu_times()
    return float(t.user + t.system)


# -- the report ------------------------------------------------------------------------------------


def median(windows: list[Window], value: Callable[[Window], float]) -> float:
    return statistics.median(value(w) for w in windows) if windows else 0.0


def summary(windows: list[Window], workloads: list[str], stacks: list[str]) -> list[dict[str, Any]]:
    """One row per workload and stack: medians of its windows, and the resident's ratio."""
    rows = []
    for workload in workloads:
        by_stack = {s: [w for w in windows if w.stack == s and w.workload == workload]
                    for s in stacks}  # fmt: skip
        resident = {r: median(by_stack.get(r, []), lambda w: w.per_cpu_second) for r in RESIDENT}
        for stack in stacks:
            mine = by_stack[stack]
            if not mine:
                continue
            per_cpu = median(mine, lambda w: w.per_cpu_second)
            rows.append({
                "workload": workload, "stack": stack, "windows": len(mine),
                "rps": median(mine, lambda w: w.rps),
                "p50_ms": median(mine, lambda w: w.p50_us) / 1000,
                "p99_ms": median(mine, lambda w: w.p99_us) / 1000,
                "cpu_us_per_request": 1e6 / per_cpu if per_cpu else 0.0,
                "per_cpu_second": per_cpu,
                **{f"{r}_ratio": resident[r] / per_cpu if per_cpu else 0.0 for r in RESIDENT},
                "front_cpu_share": median(mine, lambda w: w.front_cpu / w.server_cpu
                                          if w.server_cpu else 0.0),
                "rss_mb": median(mine, lambda w: w.rss) / 1e6,
                "bytes_per_user": median(mine, lambda w: w.rss / w.users),
                "client_cpu_share": median(mine, lambda w: w.client_cpu / w.seconds),
                "other_cpu_share": median(mine, lambda w: w.other_cpu / w.seconds),
                "errors": sum(w.errors for w in mine),
            })  # fmt: skip
    return rows


def ratio(value: float) -> str:
    return f"{value:,.1f}x" if value else ""


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| workload | stack | requests/s | p50 ms | p99 ms | server CPU µs/request "
        "| requests per server CPU-s | resident-tcp's ratio | resident-http's ratio "
        "| RSS MB | per online user |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['stack']} | {r['rps']:,.0f} | {r['p50_ms']:,.2f} "
            f"| {r['p99_ms']:,.2f} | {r['cpu_us_per_request']:,.0f} | {r['per_cpu_second']:,.0f} "
            f"| {ratio(r['resident-tcp_ratio'])} | {ratio(r['resident-http_ratio'])} "
            f"| {r['rss_mb']:,.1f} "
            f"| {r['bytes_per_user'] / 1e3:,.0f} KB |"
        )
    talk_cpu = TALK["rps"] / TALK["cores"]
    lines.append(
        f"| (talk) | the talk's figures, 8 cores | {TALK['rps']:,.0f} | | "
        f"| >= {1e6 / talk_cpu:,.0f} | <= {talk_cpu:,.0f} | | | "
        f"| ~{TALK['bytes_per_user'] / 1e6:.0f} MB |"
    )
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], workloads: list[str], stacks: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    width = 0.8 / len(stacks)
    for i, stack in enumerate(stacks):
        mine = {r["workload"]: r["per_cpu_second"] for r in rows if r["stack"] == stack}
        values = [mine.get(workload, 0.0) for workload in workloads]
        xs = [j + (i - (len(stacks) - 1) / 2) * width for j in range(len(workloads))]
        bars = ax.bar(xs, values, width, label=stack)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7, rotation=90,
                     padding=2)  # fmt: skip
    ax.axhline(TALK["rps"] / TALK["cores"], color="grey", linestyle="--", linewidth=1,
               label="the talk: 2,500 requests/s on 8 cores, per core")  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(bottom=1, top=max(r["per_cpu_second"] for r in rows) * 4)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("requests per server CPU-second (log)")
    ax.set_title("The same users-online workload, per server CPU-second (medians)")
    fig.legend(fontsize=8, loc="lower center", ncols=3)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path)


# -- the run ---------------------------------------------------------------------------------------


async def run(options: argparse.Namespace, stacks: list[Stack]) -> list[Window]:
    windows: list[Window] = []
    idle = [await stack.open_idle() for stack in stacks]
    for round_index in range(options.rounds):
        for workload in options.workloads:
            shift = round_index % len(stacks)
            for stack in stacks[shift:] + stacks[:shift]:
                window = await measure(stack, workload)
                windows.append(window)
                note = f"  {window.errors} errors: {window.first_error}" if window.errors else ""
                print(
                    f"round {round_index + 1} {workload:9} {stack.name:16} "
                    f"{window.rps:9,.0f} req/s  {window.per_cpu_second:9,.0f} per CPU-s  "
                    f"p50 {window.p50_us / 1000:8.2f} ms  p99 {window.p99_us / 1000:8.2f} ms  "
                    f"server CPU {window.server_cpu / window.seconds:4.0%}  "
                    f"client {window.client_cpu / window.seconds:4.0%}  "
                    f"others {window.other_cpu / window.seconds:4.0%}{note}",
                    flush=True,
                )
    for load in idle:
        if load is not None:
            await load.stop(timeout=10.0)
    return windows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--workloads", default="mix", help="mix and/or " + ",".join(L.OPS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="counted per window")
    parser.add_argument("--cgi-seconds", type=float, default=8.0,
                        help="counted per window of the CGI stack")  # fmt: skip
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--clients", type=int, default=50, help="users, one connection each")
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--idle-users", type=int, default=1000,
                        help="users online besides the clients, saying nothing")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn sync workers (one per core the server may use)")  # fmt: skip
    parser.add_argument("--cgi-children", type=int, default=4,
                        help="CGI processes at once (PHP-FPM's max_children)")  # fmt: skip
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--json", help="write every window and the summary here")
    parser.add_argument("--chart", help="write the chart (PNG) here")
    parser.add_argument("--replot", metavar="JSON", help="only draw --chart from a --json file")
    options = parser.parse_args()
    if options.replot:
        saved = json.loads(Path(options.replot).read_text())
        rows, names = saved["summary"], list(dict.fromkeys(r["stack"] for r in saved["summary"]))
        print(table(rows))
        chart(rows, saved["options"]["workloads"], names, options.chart)
        return 0
    options.workloads = options.workloads.split(",")
    for workload in options.workloads:
        L.ops_of(workload)
    names = options.stacks.split(",")
    if any(n.endswith("-redis") for n in names) and not shutil.which(options.redis_server):
        print("redis-server is not installed: skipping gunicorn-redis", file=sys.stderr)
        names = [n for n in names if not n.endswith("-redis")]
    pin_to_cpu(int(CLIENT_CPU))
    with tempfile.TemporaryDirectory(prefix="classic-") as workdir:
        stacks = [Stack(name, Path(workdir), options) for name in names]
        try:
            for stack in stacks:
                stack.start()
            windows = uvloop.run(run(options, stacks))
        finally:
            for stack in stacks:
                stack.stop()
    rows = summary(windows, options.workloads, names)
    print()
    print(table(rows))
    if options.json:
        Path(options.json).write_text(json.dumps(
            {"options": {k: v for k, v in vars(options).items()}, "summary": rows,
             "windows": [vars(w) for w in windows]}, indent=1))  # fmt: skip
    if options.chart:
        chart(rows, options.workloads, names, options.chart)
    return 1 if any(w.errors for w in windows) else 0


if __name__ == "__main__":
    sys.exit(main())
