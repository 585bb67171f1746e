"""Cross-node delivery latency: a post on one chat node to a member on another, through Redis.

Two chat nodes (``residentd run chat --broker``, node A pinned to CPU 0, node B to CPU 1) on
one private redis-server, and this process (unpinned) as the users: ``--posters`` members
signed in on A post to one room at ``--rate`` messages a second in all, paced every
millisecond (a post's text is the time it was written, from this process's monotonic clock);
one member signed in on B, and one on A for comparison, take the time each message arrives.
The posters only count what they receive (their replies and the room's pushes). Latency =
arrival - write, for the messages written during the ``--seconds`` window after a 1 s
warm-up; every one must arrive (a missing message fails the run). Medians over ``--rounds``
fresh starts of the percentiles. Target (issue 17): p99 <= 5 ms on loopback at 10,000
messages a second.

    python bench/chat_latency.py                     # 10,000 messages/s, 3 rounds, ~40 s
    python bench/chat_latency.py --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import msgspec
import uvloop

from chat_broker import Redis
from chat_fanout import ROOM, chat_command
from harness import HOST, ServerProcess, free_port, raise_nofile_limit

PERCENTILES = (50, 90, 99, 99.9)


class User(asyncio.Protocol):
    """A signed-in member of the room. ``timed`` members decode each message and keep its
    latency; the others count lines."""

    def __init__(self, name: str, timed: bool) -> None:
        self.name = name
        self.timed = timed
        self.latencies: list[tuple[int, int]] = []  # (written at, latency), in ns
        self.lines = 0
        self.transport: asyncio.Transport | None = None
        self.joined = asyncio.get_running_loop().create_future()
        self._rest = b""
        self._decoder = msgspec.json.Decoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send(
            b'{"op":"hello","v":1,"user":"%s","id":1}\n{"op":"join","room":"%s","id":2}\n'
            % (self.name.encode(), ROOM.encode())
        )

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.lines += data.count(b"\n")
        if not self.joined.done() and b'"id":2' in data:
            self.joined.set_result(None)
        if not self.timed:
            return
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            if line.startswith(b'{"op":"message"'):
                text = self._decoder.decode(line)["text"]
                written = int(text)
                self.latencies.append((written, now - written))


async def connect(port: int, name: str, timed: bool) -> User:
    loop = asyncio.get_running_loop()
    _, user = await loop.create_connection(lambda: User(name, timed), HOST, port)
    await asyncio.wait_for(user.joined, 10)
    return user


async def one_round(a_port: int, b_port: int, args: argparse.Namespace) -> dict[str, list[int]]:
    posters = [await connect(a_port, f"p{i}", False) for i in range(args.posters)]
    far = await connect(b_port, "far", True)
    near = await connect(a_port, "near", True)
    await asyncio.sleep(0.5)  # the joins' pushes are through
    loop = asyncio.get_running_loop()
    start = time.monotonic_ns()
    window_from = start + 1_000_000_000
    window_to = window_from + int(args.seconds * 1e9)
    sent = 0
    in_window = 0
    turn = 0
    while True:
        now = time.monotonic_ns()
        if now >= window_to:
            break
        due = int((now - start) * args.rate / 1e9) - sent
        if due > 0:
            batches: list[list[bytes]] = [[] for _ in posters]
            for _ in range(due):
                stamp = time.monotonic_ns()
                batches[turn % len(posters)].append(
                    b'{"op":"post","room":"%s","text":"%d"}\n' % (ROOM.encode(), stamp)
                )
                turn += 1
                if window_from <= stamp < window_to:
                    in_window += 1
            for poster, batch in zip(posters, batches, strict=True):
                if batch:
                    poster.send(b"".join(batch))
            sent += due
        await asyncio.sleep(0.001)
    deadline = loop.time() + 5
    while loop.time() < deadline:
        if all(_count(u, window_from, window_to) >= in_window for u in (far, near)):
            break
        await asyncio.sleep(0.05)
    result = {}
    for user in (far, near):
        got = [lat for at, lat in user.latencies if window_from <= at < window_to]
        if len(got) != in_window:
            raise SystemExit(f"{user.name}: {len(got)} of {in_window} messages arrived")
        result[user.name] = sorted(got)
    for user in (*posters, far, near):
        assert user.transport is not None
        user.transport.close()
    return result


def _count(user: User, start: int, end: int) -> int:
    return sum(1 for at, _ in user.latencies if start <= at < end)


def percentile(ordered: list[int], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000, help="messages a second (10000)")
    parser.add_argument("--posters", type=int, default=4, help="(4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds (5)")
    parser.add_argument("--rounds", type=int, default=3, help="(3)")
    args = parser.parse_args()
    raise_nofile_limit()
    redis = Redis()
    rows: dict[str, list[list[float]]] = {"far": [], "near": []}
    try:
        for round_ in range(args.rounds):
            redis.flush()
            nodes = []
            for node_id, cpu in (("a", 0), ("b", 1)):
                argv = [*chat_command(free_port()), "--broker", redis.url, "--node-id", node_id]
                node = ServerProcess(f"node {node_id}", argv, cpu=cpu)
                node.start()
                nodes.append(node)
            try:
                result = uvloop.run(one_round(nodes[0].port, nodes[1].port, args))
            finally:
                for node in nodes:
                    node.stop()
            for name, ordered in result.items():
                values = [percentile(ordered, pct) for pct in PERCENTILES] + [ordered[-1] / 1e6]
                rows[name].append(values)
                print(
                    f"round {round_ + 1} {name:<4} {len(ordered):,} messages  "
                    + "  ".join(
                        f"p{pct:g} {value:.2f} ms"
                        for pct, value in zip(PERCENTILES, values, strict=False)
                    )
                    + f"  max {values[-1]:.2f} ms"
                )
    finally:
        redis.stop()
    print(f"\n{args.rate:,} messages/s from {args.posters} posters on node A; medians of rounds:")
    labels = {"far": "node B (through Redis)", "near": "node A (the posters' own node)"}
    for name, values in rows.items():
        medians = [statistics.median(column) for column in zip(*values, strict=True)]
        print(
            f"  {labels[name]:<32}"
            + "  ".join(
                f"p{pct:g} {m:.2f} ms" for pct, m in zip(PERCENTILES, medians, strict=False)
            )
            + f"  max {medians[-1]:.2f} ms"
        )


if __name__ == "__main__":
    main()
