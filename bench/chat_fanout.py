"""Chat fan-out: a message to a room of 5,000 members reaches all of them, and how many
deliveries a second the daemon sustains on one core (target: 300,000).

The chat daemon runs in a subprocess pinned to CPU 0 (``residentd run chat`` with the rate
limit, pings and presence pushes off). This process, pinned to CPU 1, is the load: one uvloop
loop with ``--members`` TCP connections from 127.0.0.2, 127.0.0.3, ..., each signed in as its
own user and joined to one room, counting the lines it receives (``bytes.count``, no parsing);
``--senders`` of them also post.

1. *Reach*: one post at a time; the time until every member, the sender included, has it.
   Repeated ``--reach-rounds`` times; the median and the worst are reported.
2. *Sustained*: the senders post without pause, pipelined, while at most *window* posts are
   not yet delivered to every member (so no member falls behind and no output buffer grows).
   After a warm-up, deliveries counted at the members over ``--seconds`` give deliveries/s, and
   the server's CPU time over the same span (psutil) gives deliveries per CPU second: the
   one-core figure, which does not depend on whether the load generator kept up. Each window of
   ``--windows`` is measured: window 1 is one post at a time; a larger window lets several posts
   meet in one loop iteration, so each member gets them in one write.

For scale the same load runs against ``raw``: a bare uvloop Protocol server in this file
(``--serve-raw``) that answers every line and writes each post's bytes to every connection's
transport at once, with no sessions, rooms, history or coalescing. Rounds alternate chat / raw;
medians are reported with the ratio.

    python bench/chat_fanout.py                       # 5,000 members, 3 rounds, about 2 min
    python bench/chat_fanout.py --members 2000 --rounds 1 --servers chat
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable

import uvloop

from harness import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    ServerProcess,
    free_port,
    pin_to_cpu,
    raise_nofile_limit,
    source_address,
)

PER_SOURCE = 2000
ROOM = "big"
TEXT = "the quick brown fox jumps over the lazy dog"


def chat_command(port: int) -> list[str]:
    return [
        sys.executable, "-m", "residentd", "run", "chat",
        "--listen", f"{HOST}:{port}", "--http-listen", f"{HOST}:{free_port()}",
        "--admin", "off", "--log-level", "WARNING", "--ping-interval", "0",
        "--max-connections", "0", "--max-connections-per-ip", "0", "--rate-limit", "0",
        "--presence-push-limit", "0", "--rooms", ROOM, "--max-rooms-per-user", "1",
    ]  # fmt: skip


def raw_command(port: int) -> list[str]:
    return [sys.executable, __file__, "--serve-raw", "--listen", f"{HOST}:{port}"]


# -- the load --------------------------------------------------------------------------------------


class Member(asyncio.Protocol):
    """A member connection: signs in, joins, then only counts the lines it receives."""

    def __init__(self, name: str, counter: Callable[[int], None]) -> None:
        self.name = name
        self.lines = 0
        self.transport: asyncio.Transport | None = None
        self._count = counter
        self.ready = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        hello = {"op": "hello", "v": 1, "user": self.name}
        join = {"op": "join", "room": ROOM}
        transport.write(json.dumps(hello).encode() + b"\n" + json.dumps(join).encode() + b"\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        lines = data.count(b"\n")
        self.lines += lines
        if not self.ready.done():
            if self.lines >= 2:
                self.ready.set_result(None)
            return
        self._count(lines)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"{self.name} lost: {exc}"))


class Load:
    """The members, and the two phases driven from what they receive (no polling loop, so
    the load generator spends its CPU on reading)."""

    def __init__(self, port: int, members: int, senders: int) -> None:
        self.port = port
        self.count = members
        self.senders_count = senders
        self.members: list[Member] = []
        self.received = 0  # pushes and post replies counted at the members after sign-in
        self.post_line = json.dumps({"op": "post", "room": ROOM, "text": TEXT}).encode() + b"\n"
        self.per_post = members + 1  # a line to every member plus the sender's reply
        self._goal = 0  # reach: the count that means "everyone has it"
        self._reached: asyncio.Future[None] | None = None
        self._pumping = False  # sustained: post more whenever fewer than window are pending
        self._window = 0
        self._sent = 0
        self._base = 0
        self._chunk = b""

    def _counter(self, lines: int) -> None:
        self.received += lines
        if self._reached is not None and self.received >= self._goal:
            self._reached.set_result(None)
            self._reached = None
        if self._pumping:
            self._pump()

    def _pump(self) -> None:
        posts = self._chunk.count(b"\n") * len(self.senders)
        while self._sent - (self.received - self._base) / self.per_post < self._window:
            for sender in self.senders:
                assert sender.transport is not None
                sender.transport.write(self._chunk)
            self._sent += posts

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        for start in range(0, self.count, 500):
            batch = []
            for index in range(start, min(start + 500, self.count)):
                member = Member(f"m{index}", self._counter)
                local = (source_address(index, PER_SOURCE), 0)
                await loop.create_connection(lambda m=member: m, HOST, self.port, local_addr=local)
                batch.append(member)
            await asyncio.gather(*(member.ready for member in batch))
            self.members.extend(batch)

    def close(self) -> None:
        for member in self.members:
            if member.transport is not None:
                member.transport.close()

    @property
    def senders(self) -> list[Member]:
        return self.members[: self.senders_count]

    async def reach(self, rounds: int, server: ServerProcess) -> tuple[list[float], float]:
        """Seconds until one post reached every member, for ``rounds`` posts one at a time,
        and the server's CPU seconds per post."""
        loop = asyncio.get_running_loop()
        times = []
        cpu = server.cpu_seconds()
        for _ in range(rounds):
            self._goal = self.received + self.per_post
            self._reached = loop.create_future()
            started = loop.time()
            sender = self.senders[0]
            assert sender.transport is not None
            sender.transport.write(self.post_line)
            await asyncio.wait_for(self._reached, 30)
            times.append(loop.time() - started)
            await asyncio.sleep(0.05)
        return times, (server.cpu_seconds() - cpu) / rounds

    async def sustain(self, warmup: float, seconds: float, window: int, server: ServerProcess,
                      batch: int) -> dict[str, float]:  # fmt: skip
        loop = asyncio.get_running_loop()
        self._base = self.received
        self._sent = 0
        self._window = window
        self._chunk = self.post_line * batch
        self._pumping = True
        self._pump()
        await asyncio.sleep(warmup)
        wall_start, cpu_start, received_start = loop.time(), server.cpu_seconds(), self.received
        await asyncio.sleep(seconds)
        wall = loop.time() - wall_start
        cpu = server.cpu_seconds() - cpu_start
        delivered = self.received - received_start
        self._pumping = False
        # Let the tail drain before the next phase.
        deadline = loop.time() + 30
        while self.received - self._base < self._sent * self.per_post and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return {
            "deliveries_per_s": delivered / wall,
            "deliveries_per_cpu_s": delivered / cpu if cpu else 0.0,
            "server_cpu": cpu / wall,
            "posts_per_s": delivered / self.per_post / wall,
        }


async def run_load(server: ServerProcess, args: argparse.Namespace) -> dict[str, float]:
    load = Load(server.port, args.members, args.senders)
    await load.open()
    figures: dict[str, float] = {}
    try:
        reach, reach_cpu = await load.reach(args.reach_rounds, server)
        for window in args.windows:
            sustained = await load.sustain(args.warmup, args.seconds, window, server, args.batch)
            figures.update({f"w{window}_{key}": value for key, value in sustained.items()})
    finally:
        load.close()
    figures["reach_median_ms"] = statistics.median(reach) * 1000
    figures["reach_max_ms"] = max(reach) * 1000
    figures["reach_server_cpu_ms"] = reach_cpu * 1000
    return figures


# -- the raw peer ----------------------------------------------------------------------------------


def serve_raw(listen: str) -> None:
    """A bare broadcast server: a reply to every line, each post written to everyone at once."""
    host, _, port = listen.rpartition(":")
    transports: list[asyncio.Transport] = []
    sequence = 0

    class Raw(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buffer = b""
            transports.append(self.transport)

        def data_received(self, data: bytes) -> None:
            nonlocal sequence
            *lines, self.buffer = (self.buffer + data).split(b"\n")
            for line in lines:
                if b'"post"' in line:
                    sequence += 1
                    ts = int(time.time() * 1000)
                    message = {"op": "message", "room": ROOM, "seq": sequence, "ts": ts,
                               "user": "m0", "text": TEXT}  # fmt: skip
                    payload = json.dumps(message, separators=(",", ":")).encode() + b"\n"
                    for transport in transports:
                        transport.write(payload)
                self.transport.write(b'{"op":"ok"}\n')

        def connection_lost(self, exc: Exception | None) -> None:
            transports.remove(self.transport)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Raw, host, int(port), backlog=4096)
        await server.serve_forever()

    uvloop.run(main())


# -- the report ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--members", type=int, default=5000, help="room members (5000)")
    parser.add_argument("--senders", type=int, default=4, help="members that post (4)")
    parser.add_argument(
        "--windows", default="1,4,16,64", help="posts not yet everywhere, one run each (1,4,16,64)"
    )
    parser.add_argument("--batch", type=int, default=1, help="posts per sender write (1)")
    parser.add_argument("--reach-rounds", type=int, default=10, help="(10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per window (1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured, per window (3)")
    parser.add_argument("--rounds", type=int, default=3, help="(3)")
    parser.add_argument("--servers", default="chat,raw", help="chat,raw")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    parser.add_argument("--serve-raw", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--listen", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_raw:
        serve_raw(args.listen)
        return
    servers = [name for name in args.servers.split(",") if name]
    args.windows = [int(window) for window in args.windows.split(",") if window]
    limit = raise_nofile_limit()
    if args.members + 100 > limit:
        sys.exit(f"{args.members} members need more than the {limit} open files allowed")
    pin_to_cpu(CLIENT_CPU)
    print(
        f"server on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}; {args.members:,} members,"
        f" {args.senders} senders, windows {args.windows}, batch {args.batch};"
        f" {args.rounds} rounds",
        flush=True,
    )
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    for number in range(1, args.rounds + 1):
        for name in servers:
            port = free_port()
            command = chat_command(port) if name == "chat" else raw_command(port)
            with ServerProcess(name, command) as server:
                figures = uvloop.run(run_load(server, args))
            runs[name].append(figures)
            sustained = "  ".join(
                f"w{w} {figures[f'w{w}_deliveries_per_s'] / 1000:,.0f}k/s"
                f" ({figures[f'w{w}_server_cpu']:.0%})"
                for w in args.windows
            )
            print(
                f"round {number}  {name:<4}  reach {figures['reach_median_ms']:6.1f} ms"
                f" (server CPU {figures['reach_server_cpu_ms']:5.1f} ms)  {sustained}",
                flush=True,
            )
    medians = {
        name: {key: statistics.median(run[key] for run in done) for key in done[0]}
        for name, done in runs.items()
    }
    print(f"\nmedians of {args.rounds} rounds; a post to {args.members:,} members:")
    for name, row in medians.items():
        print(
            f"  {name:<4} reaches all in {row['reach_median_ms']:.1f} ms"
            f" (worst {row['reach_max_ms']:.1f} ms), {row['reach_server_cpu_ms']:.1f} ms of"
            " server CPU per post"
        )
    print("\nsustained fan-out (deliveries/s; server share of its core; deliveries per CPU-s):")
    print(f"  {'window':>6}" + "".join(f"  {name + ' /s':>12} {'cpu':>5} {'per CPU-s':>12}"
                                       for name in medians))  # fmt: skip
    for w in args.windows:
        cells = "".join(
            f"  {row[f'w{w}_deliveries_per_s']:>12,.0f} {row[f'w{w}_server_cpu']:>5.0%}"
            f" {row[f'w{w}_deliveries_per_cpu_s']:>12,.0f}"
            for row in medians.values()
        )
        ratio = ""
        if "chat" in medians and "raw" in medians:
            chat_cpu = medians["chat"][f"w{w}_deliveries_per_cpu_s"]
            raw_cpu = medians["raw"][f"w{w}_deliveries_per_cpu_s"]
            ratio = f"   chat/raw per CPU-s {chat_cpu / raw_cpu:.2f}" if raw_cpu else ""
        print(f"  {w:>6}{cells}{ratio}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "runs": runs, "medians": medians}, out, indent=2)


if __name__ == "__main__":
    main()
