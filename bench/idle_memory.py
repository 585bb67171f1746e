"""Server memory per idle connection: RSS growth at 10,000 open connections.

For each server (residentd's echo and the raw uvloop Protocol echo by default; see harness.py)
a fresh subprocess is started, pinned to CPU 0, and one throwaway connection echoes a line so
that lazily built code paths are in place. Its RSS is then the baseline. The bench process
(pinned to CPU 1) opens the connections from source addresses 127.0.0.2, 127.0.0.3, ...; each
one sends a line and reads its echo, so the server holds a fully set-up connection (for
residentd: an admitted Connection with its Session, codec and deadline entry). After the RSS
settles, (RSS - baseline) / connections is the growth per idle connection. Rounds alternate
between the servers and the medians are reported, with the ratio residentd/raw-uvloop.

It also shows where the bytes go: ``sys.getsizeof`` of the Python objects residentd keeps per
connection, and the Python heap (tracemalloc) per connection of both servers' protocol code,
built in this process with a stand-in transport.

    python bench/idle_memory.py                   # 10,000 connections, 3 rounds
    python bench/idle_memory.py --connections 5000 --servers residentd,raw-uvloop,asyncio-streams
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, cast

import uvloop

from harness import (
    CLIENT_CPU,
    HOST,
    PEERS_DIR,
    SERVER_CPU,
    SERVERS,
    ServerProcess,
    free_port,
    pin_to_cpu,
    raise_nofile_limit,
    resolve_residentd_via,
    server_command,
    source_address,
)

CONNECTIONS_PER_SOURCE = 2000
LINE = b"hello\n"


def read_echo(sock: socket.socket) -> None:
    """Read until the echo of ``LINE`` is back."""
    received = b""
    while len(received) < len(LINE):
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        received += chunk
    if received != LINE:
        raise ConnectionError(f"bad echo {received!r}")


def open_connections(port: int, count: int, batch: int = 200) -> list[socket.socket]:
    """Open ``count`` connections, ``batch`` at a time: connect all, send on all, read all."""
    sockets: list[socket.socket] = []
    try:
        for start in range(0, count, batch):
            fresh = [
                socket.create_connection(
                    (HOST, port),
                    timeout=10,
                    source_address=(source_address(index, CONNECTIONS_PER_SOURCE), 0),
                )
                for index in range(start, min(start + batch, count))
            ]
            sockets.extend(fresh)
            for sock in fresh:
                sock.sendall(LINE)
            for sock in fresh:
                read_echo(sock)
    except BaseException:
        close_all(sockets)
        raise
    return sockets


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def settled_rss(server: ServerProcess, timeout: float = 10.0) -> int:
    """The server's RSS once two reads half a second apart differ by under 16 KiB."""
    time.sleep(0.5)
    previous = server.rss()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = server.rss()
        if abs(current - previous) < 16 * 1024:
            return current
        previous = current
    return previous


def measure(server: ServerProcess, connections: int) -> dict[str, float]:
    with socket.create_connection((HOST, server.port), timeout=10) as warmup:
        warmup.sendall(LINE)
        read_echo(warmup)
    baseline = settled_rss(server)
    started = time.monotonic()
    sockets = open_connections(server.port, connections)
    opened_in = time.monotonic() - started
    try:
        loaded = settled_rss(server)
    finally:
        close_all(sockets)
    return {
        "baseline_rss": baseline,
        "loaded_rss": loaded,
        "bytes_per_connection": (loaded - baseline) / connections,
        "open_seconds": opened_in,
    }


class StandInTransport:
    """Just enough of a transport for a protocol to accept a connection and echo one line."""

    __slots__ = ("peer",)

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass


def traced_heap_per_connection(make: Callable[[], asyncio.Protocol], count: int) -> float:
    """Python heap (tracemalloc) per protocol that accepted a connection and echoed a line.

    The uvloop transport, its libuv handle and socket are not in it: both servers have them.
    """
    transports = [StandInTransport(("127.0.0.2", 10_000 + i)) for i in range(count)]
    protocols: list[asyncio.Protocol] = []
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for transport in transports:
        protocol = make()
        protocol.connection_made(cast(asyncio.Transport, transport))
        protocol.data_received(LINE)
        protocols.append(protocol)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def float_objects(conn: Any) -> dict[str, float]:
    """The connection's times that are float objects of their own (the C core keeps
    ``last_active`` in its struct; the Python one in a slot, as a float)."""
    from residentd.net import connection_core

    names = ["connected_at"]
    if connection_core.ConnectionCore in type(conn).__mro__:
        names.append("last_active")
    label = f"{', '.join(names)} ({len(names)} float{'s' if len(names) > 1 else ''})"
    return {label: len(names) * sys.getsizeof(conn.connected_at)}


def residentd_sizes(count: int) -> dict[str, float]:
    """Per-connection Python objects of residentd's echo, and its traced heap per connection."""
    from residentd import Limits, LineCodec, Server
    from residentd.apps.echo import app
    from residentd.net.connection import Connection, ServiceRuntime

    loop = uvloop.new_event_loop()
    try:
        server = Server(app, Limits(max_connections=0, max_connections_per_ip=0), loop=loop)
        runtime = ServiceRuntime.of(app.services[0])
        heap = traced_heap_per_connection(lambda: Connection(server, runtime), count)
        conn = next(iter(server.connections.values()))
        codec = cast(LineCodec, conn.codec)
        sizes: dict[str, float] = {
            f"Connection (core + {len(Connection.__slots__)} slots)": sys.getsizeof(conn),
            "Echo session": sys.getsizeof(conn.session),
            "LineCodec": sys.getsizeof(codec),
            # Made on first use: the output list by the first reply (the bench's connections
            # have echoed a line), the codec's buffer only for a partial line (they hold none).
            "Connection._out (list, from the first send)": sys.getsizeof([b""]),
            **float_objects(conn),
            "id (int)": sys.getsizeof(conn.id),
        }
        sizes["sum of the above"] = sum(sizes.values())
        sizes["traced Python heap per connection"] = heap
    finally:
        loop.close()
    return sizes


def raw_sizes(count: int) -> dict[str, float]:
    """The same for the raw uvloop echo."""
    sys.path.insert(0, str(PEERS_DIR))
    from raw_uvloop_echo import LineEcho

    return {
        "LineEcho protocol": sys.getsizeof(LineEcho()),
        "traced Python heap per connection": traced_heap_per_connection(LineEcho, count),
    }


def print_report(rows: dict[str, dict[str, float]], connections: int) -> None:
    print()
    print(f"Server RSS growth per idle connection, {connections:,} connections (medians)")
    header = f"{'server':<16} {'baseline RSS':>13} {'loaded RSS':>12} {'bytes/conn':>11}"
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        print(
            f"{name:<16} {row['baseline_rss'] / 2**20:>10.1f} MiB {row['loaded_rss'] / 2**20:>8.1f}"
            f" MiB {row['bytes_per_connection']:>11,.0f}"
        )
    if "residentd" in rows and "raw-uvloop" in rows:
        ratio = (
            rows["residentd"]["bytes_per_connection"] / rows["raw-uvloop"]["bytes_per_connection"]
        )
        ours = rows["residentd"]["bytes_per_connection"]
        verdict = "meets" if ours <= 2048 else "misses"
        print(f"\nresidentd / raw-uvloop: {ratio:.2f}x; {ours:,.0f} B {verdict} the 2 KB target")


def print_sizes(title: str, sizes: dict[str, float]) -> None:
    print(f"\n{title}")
    for part, size in sizes.items():
        print(f"  {part:<40} {size:>6,.0f} B")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--connections", type=int, default=10_000, help="(10000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the servers (3)")
    parser.add_argument("--servers", default="residentd,raw-uvloop", help="which servers")
    parser.add_argument(
        "--residentd-via", choices=("auto", "cli", "launcher"), default="auto", help="(auto: CLI)"
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = parser.parse_args()
    args.servers = [name for name in args.servers.split(",") if name]
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown server(s) {', '.join(sorted(unknown))}; known: {SERVERS}")
    return args


def main() -> None:
    args = parse_args()
    began = time.monotonic()
    limit = raise_nofile_limit()
    if args.connections + 100 > limit:
        sys.exit(f"{args.connections} connections need more than the {limit} open files allowed")
    via = resolve_residentd_via(args.residentd_via)
    pin_to_cpu(CLIENT_CPU)
    print(
        f"servers pinned to CPU {SERVER_CPU}, clients in this process on CPU {CLIENT_CPU};"
        f" residentd started via {via}; {args.rounds} rounds",
        flush=True,
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.servers}
    for number in range(1, args.rounds + 1):
        for name in args.servers:
            with ServerProcess(name, server_command(name, free_port(), via)) as server:
                figures = measure(server, args.connections)
            runs[name].append(figures)
            print(
                f"round {number}  {name:<16} baseline {figures['baseline_rss'] / 2**20:6.1f} MiB"
                f"  loaded {figures['loaded_rss'] / 2**20:6.1f} MiB"
                f"  {figures['bytes_per_connection']:6,.0f} B/conn"
                f"  (opened in {figures['open_seconds']:.1f}s)",
                flush=True,
            )
    medians = {
        name: {key: statistics.median(run[key] for run in done) for key in done[0]}
        for name, done in runs.items()
    }
    print_report(medians, args.connections)
    sizes = {
        "residentd": residentd_sizes(args.connections),
        "raw-uvloop": raw_sizes(args.connections),
    }
    print_sizes("residentd per-connection Python objects (sys.getsizeof)", sizes["residentd"])
    print_sizes("raw-uvloop per-connection Python objects (sys.getsizeof)", sizes["raw-uvloop"])
    print("  (traced heap: built in this process with a stand-in transport; the uvloop transport")
    print("   and libuv handle that both servers hold per connection are not in these figures)")
    print(f"\ntook {time.monotonic() - began:.0f}s")
    if args.json:
        report = {
            "connections": args.connections,
            "residentd_via": via,
            "runs": runs,
            "medians": medians,
            "object_sizes": sizes,
        }
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
