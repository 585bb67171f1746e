"""Echo throughput: residentd's echo against a raw uvloop Protocol and asyncio streams.

Each server runs in its own subprocess pinned to CPU 0 (see harness.py); the load generator runs
on CPU 1. By default it is echo_load.c, compiled at the start: one epoll loop in C driving
every client connection, so that it costs a fraction of what the fastest servers cost per
round trip and the servers set the pace. ``--load-generator python`` (and the fallback when
there is no C compiler) is this process instead: one uvloop loop driving every connection as
a bare Protocol, which costs about as much per round trip as the fastest servers. Either way a
client sends a batch of ``depth`` lines in one write, waits until the same bytes came back,
and sends the next batch: depth 1 is the non-pipelined case (one line per round trip), depth
16 the pipelined one.

A measurement opens the connections, runs them for a warm-up, counts echoed lines for a fixed
window, then stops the clients and closes them. Measurements alternate between the servers for
each workload, round after round, and the order rotates from round to round (A B C, then B C
A, then C A B, ...); the tables show per-server medians and the ratios
residentd/raw-uvloop and residentd/asyncio-streams.

Beside throughput each window records CPU time: the server's, the load generator's and that of
everything else on the machine ("other", hypervisor steal included). A window in which other
processes took more than ``--max-other`` of a core is measured again (``--retries`` times).
A server near 100% CPU set the pace itself; one well below it was waiting on the load generator
or on wake-ups, and then "lines per server CPU second" (efficiency) is the fairer comparison.
Only one load generator process is used: on a 2-core machine a second one would share CPU 1.

    python bench/echo.py                         # defaults: 3 rounds, about 2.5 minutes
    python bench/echo.py --rounds 5 --json echo.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass

import uvloop

from harness import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    SERVERS,
    ServerProcess,
    busy_cpu_seconds,
    free_port,
    pin_to_cpu,
    raise_nofile_limit,
    resolve_residentd_via,
    server_command,
    source_address,
)

CONNECTIONS_PER_SOURCE = 1000


@dataclass(frozen=True)
class Workload:
    connections: int
    depth: int

    @property
    def label(self) -> str:
        mode = "non-pipelined" if self.depth == 1 else f"pipelined x{self.depth}"
        return f"{self.connections} conns, {mode}"


@dataclass
class Measurement:
    round: int
    server: str
    connections: int
    depth: int
    lines_per_s: float
    server_cpu: float  # share of one core used by the server during the window
    client_cpu: float  # same for the load generator
    other_cpu: float  # same for everything else running on the machine

    @property
    def lines_per_cpu_s(self) -> float:
        return self.lines_per_s / self.server_cpu if self.server_cpu else 0.0


class Tally:
    """Counters shared by all clients of one measurement."""

    __slots__ = ("busy", "errors", "lines", "running")

    def __init__(self) -> None:
        self.lines = 0
        self.busy = 0  # clients waiting for a reply
        self.errors = 0
        self.running = True


class EchoClient(asyncio.Protocol):
    """Sends ``batch`` and waits for as many bytes to come back, over and over."""

    __slots__ = ("batch", "closed", "depth", "first", "owed", "tally", "transport")

    def __init__(self, batch: bytes, depth: int, tally: Tally) -> None:
        self.batch = batch
        self.depth = depth
        self.tally = tally
        self.owed = 0
        self.first = b""  # the first reply, checked once against the batch
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> None:
        assert self.transport is not None
        self.owed = len(self.batch)
        self.tally.busy += 1
        self.transport.write(self.batch)

    def data_received(self, data: bytes) -> None:
        if self.first is not None:
            self._check_first(data)
        self.owed -= len(data)
        if self.owed > 0:
            return
        tally = self.tally
        tally.busy -= 1
        if self.owed < 0:
            tally.errors += 1
        tally.lines += self.depth
        if tally.running:
            self.send()

    def _check_first(self, data: bytes) -> None:
        self.first += data
        if len(self.first) >= len(self.batch):
            if self.first != self.batch:
                self.tally.errors += 1
            self.first = None  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.tally.running:
            self.tally.errors += 1


async def open_clients(
    port: int, workload: Workload, line: bytes, tally: Tally
) -> list[EchoClient]:
    loop = asyncio.get_running_loop()
    batch = line * workload.depth
    clients: list[EchoClient] = []
    for start in range(0, workload.connections, 100):
        stop = min(start + 100, workload.connections)
        opened = await asyncio.gather(
            *(
                loop.create_connection(
                    lambda: EchoClient(batch, workload.depth, tally),
                    HOST,
                    port,
                    local_addr=(source_address(i, CONNECTIONS_PER_SOURCE), 0),
                )
                for i in range(start, stop)
            )
        )
        clients.extend(protocol for _, protocol in opened)
    return clients


async def close_clients(clients: list[EchoClient], tally: Tally) -> None:
    tally.running = False
    deadline = time.monotonic() + 2.0
    while tally.busy and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.gather(*(client.closed for client in clients))


@dataclass
class Window:
    """What one measurement window saw; CPU figures are shares of one core."""

    lines_per_s: float
    server_cpu: float
    client_cpu: float
    other_cpu: float  # every other process on the machine, and the hypervisor's steal
    errors: int

    @classmethod
    def of(
        cls,
        elapsed: float,
        lines: float,
        server_cpu: float,
        client_cpu: float,
        busy: float,
        errors: int,
    ) -> Window:
        """The window from its totals: seconds, lines, CPU seconds of the server, of the load
        generator and of the whole machine (``busy``), and errors."""
        other_cpu = max(busy - server_cpu - client_cpu, 0.0)
        return cls(lines / elapsed, server_cpu / elapsed, client_cpu / elapsed,
                   other_cpu / elapsed, errors)  # fmt: skip


async def measure(
    server: ServerProcess, workload: Workload, line: bytes, warmup: float, duration: float
) -> Window:
    tally = Tally()
    clients = await asyncio.wait_for(open_clients(server.port, workload, line, tally), 30)
    for client in clients:
        client.send()
    await asyncio.sleep(warmup)
    lines, started = tally.lines, time.perf_counter()
    server_cpu, client_cpu, busy = server.cpu_seconds(), time.process_time(), busy_cpu_seconds()
    await asyncio.sleep(duration)
    elapsed = time.perf_counter() - started
    lines = tally.lines - lines
    server_cpu = server.cpu_seconds() - server_cpu
    client_cpu = time.process_time() - client_cpu
    busy = busy_cpu_seconds() - busy
    await close_clients(clients, tally)
    return Window.of(elapsed, lines, server_cpu, client_cpu, busy, tally.errors)


async def measure_with_c(
    binary: str,
    server: ServerProcess,
    workload: Workload,
    size: int,
    warmup: float,
    duration: float,
) -> Window:
    """One window driven by the C load generator (echo_load.c), which says when the window
    starts and ends, how many lines came back and what CPU it used."""
    process = await asyncio.create_subprocess_exec(
        binary, str(server.port), str(workload.connections), str(workload.depth), str(size),
        str(warmup), str(duration), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    started = await asyncio.wait_for(process.stdout.readline(), 60)
    server_cpu, busy = server.cpu_seconds(), busy_cpu_seconds()
    ended = await asyncio.wait_for(process.stdout.readline(), duration + 30)
    server_cpu = server.cpu_seconds() - server_cpu
    busy = busy_cpu_seconds() - busy
    rest = await asyncio.wait_for(process.stdout.read(), 30)
    if await process.wait() != 0 or started != b"start\n" or not ended.startswith(b"end "):
        raise RuntimeError(f"the C load generator failed against {server.name}")
    lines, elapsed, client_cpu = (float(field) for field in ended.split()[1:])
    return Window.of(elapsed, lines, server_cpu, client_cpu, busy, int(rest.split()[1]))


def build_load_generator(directory: str) -> str | None:
    """Compile echo_load.c into ``directory``: the path of the program, or None when there is
    no C compiler."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    binary = os.path.join(directory, "echo_load")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo_load.c")
    subprocess.run([compiler, "-O2", "-o", binary, source], check=True)
    return binary


async def undisturbed_measure(
    server: ServerProcess, workload: Workload, line: bytes, args: argparse.Namespace
) -> Window:
    """Measure; while other processes took more than ``--max-other`` of a core, wait and retry."""
    for attempt in range(args.retries + 1):
        if args.load_binary:
            window = await measure_with_c(
                args.load_binary, server, workload, args.size, args.warmup, args.duration
            )
        else:
            window = await measure(server, workload, line, args.warmup, args.duration)
        if window.other_cpu <= args.max_other or attempt == args.retries:
            return window
        print(
            f"         {workload.label:<26} {server.name:<16} disturbed: other processes"
            f" used {window.other_cpu:.0%} of a core; measuring again",
            flush=True,
        )
        await asyncio.sleep(2.0)
    raise AssertionError("unreachable")


async def run_rounds(
    servers: dict[str, ServerProcess], workloads: list[Workload], args: argparse.Namespace
) -> list[Measurement]:
    line = b"x" * (args.size - 1) + b"\n"
    results: list[Measurement] = []
    names = list(servers)
    for number in range(1, args.rounds + 1):
        # The order rotates from round to round, so that no server always runs first (just
        # after the connections of the previous workload closed) or last.
        shift = (number - 1) % len(names)
        order = names[shift:] + names[:shift]
        for workload in workloads:
            for name in order:
                server = servers[name]
                window = await undisturbed_measure(server, workload, line, args)
                check_health(server, workload, window)
                result = Measurement(
                    number,
                    name,
                    workload.connections,
                    workload.depth,
                    window.lines_per_s,
                    window.server_cpu,
                    window.client_cpu,
                    window.other_cpu,
                )
                results.append(result)
                print(
                    f"round {number}  {workload.label:<26} {name:<16}"
                    f" {window.lines_per_s:>10,.0f} lines/s  server cpu {window.server_cpu:4.0%}"
                    f"  client cpu {window.client_cpu:4.0%}  other {window.other_cpu:4.0%}",
                    flush=True,
                )
                await asyncio.sleep(0.2)
    return results


def check_health(server: ServerProcess, workload: Workload, window: Window) -> None:
    """Stop the benchmark when a server died, echoed wrong bytes or echoed nothing."""
    problem = ""
    if server.process.poll() is not None:
        problem = f"exited with code {server.process.returncode}"
    elif window.errors:
        problem = f"{window.errors} bad or lost replies"
    elif not window.lines_per_s:
        problem = "echoed nothing"
    if problem:
        raise RuntimeError(f"{server.name} {problem} ({workload.label}):\n{server.stderr_text()}")


def summarize(
    results: list[Measurement], workloads: list[Workload], max_other: float
) -> list[dict[str, object]]:
    """Per workload: each server's medians and residentd's ratios to the others.

    The medians are over the undisturbed windows (other processes at most ``max_other`` of a
    core) when there are any, else over all of them.
    """
    rows: list[dict[str, object]] = []
    for workload in workloads:
        row: dict[str, object] = {"workload": workload.label, **asdict(workload)}
        for name in SERVERS:
            every = [r for r in results if r.server == name and _matches(r, workload)]
            clean = [r for r in every if r.other_cpu <= max_other]
            runs = clean or every
            if not runs:
                continue
            row[name] = {
                "windows": len(runs),
                "undisturbed": len(clean),
                "lines_per_s": statistics.median(r.lines_per_s for r in runs),
                "lines_per_cpu_s": statistics.median(r.lines_per_cpu_s for r in runs),
                "server_cpu": statistics.median(r.server_cpu for r in runs),
                "client_cpu": statistics.median(r.client_cpu for r in runs),
                "other_cpu": statistics.median(r.other_cpu for r in runs),
            }
        for peer in SERVERS[1:]:
            pairs = paired_windows(results, workload, peer, max_other)
            if pairs:
                row[f"ratio_vs_{peer}"] = statistics.median(
                    a.lines_per_s / b.lines_per_s for a, b in pairs
                )
                row[f"cpu_ratio_vs_{peer}"] = statistics.median(
                    a.lines_per_cpu_s / b.lines_per_cpu_s for a, b in pairs
                )
                row[f"pairs_vs_{peer}"] = len(pairs)
        rows.append(row)
    return rows


def paired_windows(
    results: list[Measurement], workload: Workload, peer: str, max_other: float
) -> list[tuple[Measurement, Measurement]]:
    """residentd's window and the peer's from the same round: seconds apart, so they share the
    machine's conditions. Pairs where both are undisturbed if there are any, else all pairs."""
    by_round: dict[int, dict[str, Measurement]] = {}
    for result in results:
        if _matches(result, workload):
            by_round.setdefault(result.round, {})[result.server] = result
    pairs = [
        (servers["residentd"], servers[peer])
        for servers in by_round.values()
        if "residentd" in servers and peer in servers
    ]
    clean = [(a, b) for a, b in pairs if max(a.other_cpu, b.other_cpu) <= max_other]
    return clean or pairs


def _matches(result: Measurement, workload: Workload) -> bool:
    return result.connections == workload.connections and result.depth == workload.depth


def print_table(rows: list[dict[str, object]]) -> None:
    print("\nMedians (cpu columns: share of one core during the window)")
    header = (
        f"{'workload':<26} {'server':<16} {'lines/s':>10} {'server':>7} {'client':>7}"
        f" {'other':>6} {'lines/server-cpu-s':>19} {'windows':>8}  note"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        for name in SERVERS:
            figures = row.get(name)
            if isinstance(figures, dict):
                print(
                    f"{row['workload']!s:<26} {name:<16} {figures['lines_per_s']:>10,.0f}"
                    f" {figures['server_cpu']:>7.0%} {figures['client_cpu']:>7.0%}"
                    f" {figures['other_cpu']:>6.0%} {figures['lines_per_cpu_s']:>19,.0f}"
                    f" {figures['windows']:>8}  {_note(figures)}"
                )
    print(
        "windows: how many windows the medians are over (the undisturbed ones if any)\n"
        "note: u = server under 90% CPU (the load generator or wake-ups set the pace, so compare"
        " efficiency);\n      d = no window was undisturbed (other processes took more than"
        " --max-other of a core)"
    )
    print(
        "\nresidentd ratios, median over rounds of residentd's window / the peer's window in the"
        "\nsame round: throughput (thr) and lines per server CPU second (eff); n = rounds used"
    )
    header = f"{'workload':<26} {'vs raw-uvloop (target 0.9)':>30}"
    header += f" {'vs asyncio-streams (target 1.5)':>36}"
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = [
            f"{_ratio_cell(row, 'raw-uvloop'):>30}",
            f"{_ratio_cell(row, 'asyncio-streams'):>36}",
        ]
        print(f"{row['workload']!s:<26} {' '.join(cells)}")


def _note(figures: dict[str, float]) -> str:
    unsaturated = "u" if figures["server_cpu"] < 0.9 else ""
    return unsaturated + ("d" if not figures["undisturbed"] else "")


def _ratio_cell(row: dict[str, object], peer: str) -> str:
    ratio, cpu_ratio = row.get(f"ratio_vs_{peer}"), row.get(f"cpu_ratio_vs_{peer}")
    if not isinstance(ratio, float) or not isinstance(cpu_ratio, float):
        return "-"
    return f"{ratio:.2f}x thr  {cpu_ratio:.2f}x eff  n={row[f'pairs_vs_{peer}']}"


def machine() -> dict[str, object]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "uvloop": uvloop.__version__,
        "platform": platform.platform(),
        "residentd_commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all servers (3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured (3)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before (0.5)")
    parser.add_argument("--connections", default="50,500", help="comma-separated (50,500)")
    parser.add_argument("--depths", default="1,16", help="lines per round trip (1,16)")
    parser.add_argument("--size", type=int, default=64, help="bytes per line with LF (64)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="which servers, in order")
    parser.add_argument(
        "--residentd-via",
        choices=("auto", "cli", "launcher"),
        default="auto",
        help="start residentd with `python -m residentd run echo` or bench/peers (auto: CLI)",
    )
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.15,
        help="CPU share of one core other processes may use in a window before it is redone (0.15)",
    )
    parser.add_argument("--retries", type=int, default=2, help="redos of a disturbed window (2)")
    parser.add_argument(
        "--load-generator",
        choices=("auto", "c", "python"),
        default="auto",
        help="echo_load.c, compiled at the start, or this process's uvloop Protocols"
        " (auto: C when a compiler is at hand)",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = parser.parse_args()
    args.servers = [name for name in args.servers.split(",") if name]
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}; known: {SERVERS}")
    if args.size < 2:
        parser.error("--size must be at least 2")
    return args


def main() -> None:
    args = parse_args()
    began = time.monotonic()
    workloads = [
        Workload(int(c), int(d))
        for c in args.connections.split(",")
        for d in args.depths.split(",")
    ]
    raise_nofile_limit()
    via = resolve_residentd_via(args.residentd_via)
    pin_to_cpu(CLIENT_CPU)
    with contextlib.ExitStack() as stack:
        args.load_binary = None
        if args.load_generator != "python":
            args.load_binary = build_load_generator(
                stack.enter_context(tempfile.TemporaryDirectory())
            )
            if args.load_binary is None and args.load_generator == "c":
                raise SystemExit("--load-generator c: no C compiler (cc or gcc) found")
        generator = (
            "echo_load.c, one process, one epoll loop"
            if args.load_binary
            else "this one process, uvloop Protocols"
        )
        print(
            f"servers pinned to CPU {SERVER_CPU}; load generator: {generator}, pinned to CPU"
            f" {CLIENT_CPU}; residentd started via {via}; {args.rounds} rounds of"
            f" {args.warmup:g}s warm-up + {args.duration:g}s measured; {args.size}-byte lines",
            flush=True,
        )
        servers = {
            name: stack.enter_context(ServerProcess(name, server_command(name, free_port(), via)))
            for name in args.servers
        }
        results = uvloop.run(run_rounds(servers, workloads, args))
    rows = summarize(results, workloads, args.max_other)
    print_table(rows)
    print(f"\ntook {time.monotonic() - began:.0f}s")
    if args.json:
        report = {
            "machine": machine(),
            "settings": {
                "rounds": args.rounds,
                "duration": args.duration,
                "warmup": args.warmup,
                "line_bytes": args.size,
                "residentd_via": via,
                "load_generator": f"{generator}, CPU {CLIENT_CPU}",
                "server_cpu": SERVER_CPU,
                "max_other": args.max_other,
            },
            "measurements": [asdict(r) for r in results],
            "medians": rows,
        }
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
