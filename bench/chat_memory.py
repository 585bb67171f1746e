"""Chat server memory per idle signed-in TCP user, at 10,000 users (target: at most 3 KB).

The chat daemon (``residentd run chat``) runs in a subprocess pinned to CPU 0; this process,
pinned to CPU 1, opens the connections from source addresses 127.0.0.2, 127.0.0.3, ... Each
connection signs in as a user of its own (``hello``, a guest name) and, with ``--join``, joins
the lobby too; then it stays idle. Pings are off (``--ping-interval 0``) so nothing moves while
the RSS settles. (RSS after - RSS before) / users is the cost of one idle signed-in user: the
core's connection (transport, Connection, codec) plus the chat's session, user record, presence
entry and, with ``--join``, a room membership and fan-out sink.

For scale, the same number of connections to the built-in echo daemon (each sends one line) is
measured in the same rounds: the difference is what the chat adds on top of the core. Rounds
alternate chat / echo; medians are reported.

    python bench/chat_memory.py                      # 10,000 users, 3 rounds, echo beside it
    python bench/chat_memory.py --users 5000 --join --rounds 1 --no-echo
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time

from harness import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    ServerProcess,
    free_port,
    pin_to_cpu,
    raise_nofile_limit,
    server_command,
    source_address,
)
from idle_memory import settled_rss

PER_SOURCE = 2000
BATCH = 250
TARGET = 3 * 1024


def chat_command(tcp_port: int) -> list[str]:
    return [
        sys.executable, "-m", "residentd", "run", "chat",
        "--listen", f"{HOST}:{tcp_port}", "--http-listen", f"{HOST}:{free_port()}",
        "--admin", "off", "--log-level", "WARNING", "--ping-interval", "0",
        "--max-connections", "0", "--max-connections-per-ip", "0",
        "--max-users", "1000000", "--rate-limit", "0", "--presence-push-limit", "0",
    ]  # fmt: skip


def read_lines(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"the server closed the connection after {data!r}")
        data += chunk
    return data.splitlines()


def open_users(port: int, count: int, join: bool, prefix: str = "u") -> list[socket.socket]:
    """Open ``count`` signed-in connections, a batch at a time: connect, send, then read."""
    sockets: list[socket.socket] = []
    replies = 2 if join else 1
    try:
        for start in range(0, count, BATCH):
            fresh = []
            for index in range(start, min(start + BATCH, count)):
                source = (source_address(index, PER_SOURCE), 0)
                sock = socket.create_connection((HOST, port), timeout=30, source_address=source)
                fresh.append(sock)
                request = b'{"op":"hello","v":1,"user":"%s%d"}\n' % (prefix.encode(), index)
                if join:
                    request += b'{"op":"join","room":"lobby"}\n'
                sock.sendall(request)
            sockets.extend(fresh)
            for sock in fresh:
                lines = read_lines(sock, replies)
                ops = [json.loads(line)["op"] for line in lines]
                if ops[:replies] != ["hello", "join"][:replies]:
                    raise ConnectionError(f"unexpected replies {lines!r}")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def open_echo(port: int, count: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    for start in range(0, count, BATCH):
        fresh = []
        for index in range(start, min(start + BATCH, count)):
            source = (source_address(index, PER_SOURCE), 0)
            sock = socket.create_connection((HOST, port), timeout=30, source_address=source)
            sock.sendall(b"hello\n")
            fresh.append(sock)
        sockets.extend(fresh)
        for sock in fresh:
            read_lines(sock, 1)
    return sockets


def measure(server: ServerProcess, users: int, kind: str, join: bool) -> dict[str, float]:
    # Warm up the code paths (and the allocator) with a few users first.
    warm = (
        open_users(server.port, 20, join, "warm") if kind == "chat" else open_echo(server.port, 20)
    )
    baseline = settled_rss(server)
    started = time.monotonic()
    if kind == "chat":
        sockets = open_users(server.port, users, join)
    else:
        sockets = open_echo(server.port, users)
    opened = time.monotonic() - started
    try:
        loaded = settled_rss(server)
    finally:
        for sock in sockets + warm:
            sock.close()
    return {
        "baseline_rss": baseline,
        "loaded_rss": loaded,
        "bytes_per_user": (loaded - baseline) / users,
        "open_seconds": opened,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--users", type=int, default=10_000, help="(10000)")
    parser.add_argument("--rounds", type=int, default=3, help="(3)")
    parser.add_argument("--join", action="store_true", help="each user also joins the lobby")
    parser.add_argument("--no-echo", action="store_true", help="skip the echo comparison")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = parser.parse_args()
    limit = raise_nofile_limit()
    if args.users + 200 > limit:
        sys.exit(f"{args.users} users need more than the {limit} open files allowed")
    pin_to_cpu(CLIENT_CPU)
    kinds = ["chat"] if args.no_echo else ["chat", "echo"]
    print(
        f"server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}; {args.users:,} users"
        f"{' in the lobby' if args.join else ''}; {args.rounds} rounds",
        flush=True,
    )
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    for number in range(1, args.rounds + 1):
        for kind in kinds:
            port = free_port()
            if kind == "chat":
                command = chat_command(port)
            else:  # the echo daemon, its admin endpoint off so that runs never share a socket
                command = [*server_command("residentd", port), "--admin", "off"]
            with ServerProcess(f"residentd-{kind}", command) as server:
                figures = measure(server, args.users, kind, args.join)
            runs[kind].append(figures)
            print(
                f"round {number}  {kind:<5} baseline {figures['baseline_rss'] / 2**20:6.1f} MiB"
                f"  loaded {figures['loaded_rss'] / 2**20:6.1f} MiB"
                f"  {figures['bytes_per_user']:7,.0f} B/user  (opened in"
                f" {figures['open_seconds']:.1f}s)",
                flush=True,
            )
    medians = {
        kind: {key: statistics.median(run[key] for run in done) for key in done[0]}
        for kind, done in runs.items()
    }
    chat = medians["chat"]["bytes_per_user"]
    print(f"\nchat: {chat:,.0f} B per idle signed-in user (median)", end="")
    print(f"; {'meets' if chat <= TARGET else 'misses'} the {TARGET:,} B target")
    if "echo" in medians:
        echo = medians["echo"]["bytes_per_user"]
        print(f"echo: {echo:,.0f} B per idle connection: the chat adds {chat - echo:,.0f} B")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"users": args.users, "join": args.join, "runs": runs,
                       "medians": medians}, out, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
