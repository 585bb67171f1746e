"""Chat fan-out with and without a broker: deliveries per CPU-second of the chat node.

One room of ``--members`` members (guests over TCP, from this process) and ``--senders``
posters keeping at most ``--window`` posts not yet delivered to everyone (chat_fanout.py's
load, reused). The node is ``residentd run chat`` pinned to CPU 0, either alone ("local": the
world in its memory) or with ``--broker`` on a private redis-server ("broker": every post is a
Lua script in Redis and comes back to the node on its event channel before the node fans it
out). For each, deliveries counted at the members over ``--seconds`` divided by the node's
CPU time over the same span (psutil) gives deliveries per node CPU-second; redis-server's CPU
over that span is reported on its own, per delivery. Rounds alternate local / broker, each
with a fresh node (and a flushed Redis); medians are reported, with what the broker costs the
node per delivery (target: at most 25% more CPU per delivery than local).

    python bench/chat_broker.py                  # 1,000 members, 3 rounds, about 1 minute
    python bench/chat_broker.py --members 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import uvloop

from chat_fanout import Load, chat_command
from harness import (
    CLIENT_CPU,
    HOST,
    SERVER_CPU,
    ServerProcess,
    free_port,
    pin_to_cpu,
    raise_nofile_limit,
)


class Redis:
    """A private redis-server, no persistence; its CPU time on the side."""

    def __init__(self) -> None:
        path = shutil.which("redis-server")
        if path is None:
            sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
        self.port = free_port()
        self.folder = tempfile.TemporaryDirectory()
        command = [path, "--port", str(self.port), "--bind", HOST, "--save", "",
                   "--appendonly", "no", "--dir", self.folder.name]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self.ps = psutil.Process(self.process.pid)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def flush(self) -> None:
        with socket.create_connection((HOST, self.port)) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            sock.recv(64)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.folder.cleanup()


class Meter:
    """What ``Load.sustain`` reads the node's CPU through; it notes Redis's CPU at the same
    moments, so the last two readings bound the measured span for both."""

    def __init__(self, node: ServerProcess, redis: Redis | None) -> None:
        self.node = node
        self.redis = redis
        self.readings: list[float] = []

    def cpu_seconds(self) -> float:
        self.readings.append(self.redis.cpu_seconds() if self.redis is not None else 0.0)
        return self.node.cpu_seconds()

    def redis_span(self) -> float:
        return self.readings[-1] - self.readings[-2]


async def ready(port: int) -> None:
    """Until a hello is answered: a brokered node listens before its link is up."""
    for _ in range(200):
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(b'{"op":"hello","v":1,"user":"probe"}\n')
        line = await reader.readline()
        writer.close()
        if b'"op":"hello"' in line:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the node never signed anyone in")


async def paced(load: Load, args: argparse.Namespace, meter: Meter) -> dict[str, float]:
    """``args.rate`` posts a second, spread over the senders, every 10 ms: the same offered
    load for both modes, so neither gets more posts per loop iteration (and fewer writes per
    delivery) than the other."""
    loop = asyncio.get_running_loop()
    senders = load.senders
    sent = 0
    started = loop.time()

    def tick() -> None:
        nonlocal sent
        due = int((loop.time() - started) * args.rate)
        while sent < due:
            transport = senders[sent % len(senders)].transport
            assert transport is not None
            transport.write(load.post_line)
            sent += 1
        handle[0] = loop.call_later(0.01, tick)

    handle = [loop.call_later(0, tick)]
    await asyncio.sleep(args.warmup)
    wall_start, cpu_start, received_start = loop.time(), meter.cpu_seconds(), load.received
    sent_start = sent
    await asyncio.sleep(args.seconds)
    wall = loop.time() - wall_start
    cpu = meter.cpu_seconds() - cpu_start
    delivered = load.received - received_start
    posted = sent - sent_start
    handle[0].cancel()
    await asyncio.sleep(1.0)  # the tail
    return {
        "deliveries_per_s": delivered / wall,
        "deliveries_per_cpu_s": delivered / cpu if cpu else 0.0,
        "server_cpu": cpu / wall,
        "posts_per_s": delivered / load.per_post / wall,
        "kept_up": delivered / (posted * load.per_post) if posted else 0.0,
    }


async def run_load(
    node: ServerProcess, redis: Redis | None, args: argparse.Namespace
) -> dict[str, float]:
    await ready(node.port)
    load = Load(node.port, args.members, args.senders)
    await load.open()
    meter = Meter(node, redis)
    try:
        if args.rate:
            figures = await paced(load, args, meter)
        else:
            figures = await load.sustain(args.warmup, args.seconds, args.window, meter, 1)  # type: ignore[arg-type]
        redis_cpu = meter.redis_span()
    finally:
        load.close()
    delivered = figures["deliveries_per_s"] * args.seconds
    figures["redis_cpu_us_per_delivery"] = redis_cpu / delivered * 1e6 if delivered else 0.0
    figures["redis_cpu"] = redis_cpu / args.seconds
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--members", type=int, default=1000, help="room members (1000)")
    parser.add_argument("--senders", type=int, default=16, help="members that post (16)")
    parser.add_argument(
        "--rate", type=int, default=200, help="posts a second, paced (200; 0: --window instead)"
    )
    parser.add_argument("--window", type=int, default=64, help="without --rate: posts in flight")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds (1)")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured per round (4)")
    parser.add_argument("--rounds", type=int, default=3, help="(3)")
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = parser.parse_args()
    limit = raise_nofile_limit()
    if args.members + 100 > limit:
        sys.exit(f"{args.members} members need more than the {limit} open files allowed")
    pin_to_cpu(CLIENT_CPU)
    redis = Redis()
    print(
        f"node on CPU {SERVER_CPU}, load on CPU {CLIENT_CPU}, redis-server unpinned;"
        f" {args.members:,} members, {args.senders} senders,"
        f" {f'{args.rate} posts/s' if args.rate else f'window {args.window}'};"
        f" {args.rounds} rounds",
        flush=True,
    )
    runs: dict[str, list[dict[str, float]]] = {"local": [], "broker": []}
    try:
        for number in range(1, args.rounds + 1):
            for mode in runs:
                command = chat_command(free_port())
                if mode == "broker":
                    redis.flush()
                    command += ["--broker", redis.url]
                with ServerProcess(mode, command) as node:
                    figures = uvloop.run(run_load(node, redis if mode == "broker" else None, args))
                runs[mode].append(figures)
                print(
                    f"round {number}  {mode:<6}  {figures['deliveries_per_s']:>9,.0f} deliveries/s"
                    f"  node CPU {figures['server_cpu']:4.0%}"
                    f"  {figures['deliveries_per_cpu_s']:>9,.0f} per node CPU-s"
                    f"  posts/s {figures['posts_per_s']:>6,.0f}"
                    + (
                        f"  redis CPU {figures['redis_cpu']:4.0%}"
                        f" ({figures['redis_cpu_us_per_delivery']:.2f} us/delivery)"
                        if mode == "broker"
                        else ""
                    ),
                    flush=True,
                )
    finally:
        redis.stop()
    medians = {
        mode: {key: statistics.median(run[key] for run in done) for key in done[0]}
        for mode, done in runs.items()
    }
    local, broker = medians["local"], medians["broker"]
    cost = local["deliveries_per_cpu_s"] / broker["deliveries_per_cpu_s"] - 1
    print(f"\nmedians of {args.rounds} rounds, {args.members:,} members:")
    for mode, row in medians.items():
        print(
            f"  {mode:<6} {row['deliveries_per_cpu_s']:>9,.0f} deliveries per node CPU-s,"
            f" {row['deliveries_per_s']:>9,.0f} deliveries/s ({row['posts_per_s']:,.0f} posts/s)"
        )
    print(
        f"  the broker costs the node {cost:+.0%} CPU per delivery (target <= +25%);"
        f" redis-server {broker['redis_cpu_us_per_delivery']:.2f} us CPU per delivery"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"args": vars(args), "runs": runs, "medians": medians}, out, indent=2)


if __name__ == "__main__":
    main()
