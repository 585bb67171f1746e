"""The broker link's Redis client: redis-py's asyncio client beside residentd's own connection.

Both do the two things a chat node asks of its broker, on the same private redis-server, in
this one process (pinned to one CPU; redis-server and the publisher on the other), and the
process's CPU time per operation is what is compared:

- *commands*: ``--tasks`` tasks each run ``EVALSHA`` of a small script again and again, so
  about that many share a pipeline, as a busy node's requests do. redis-py: its pipeline
  (``pipeline(transaction=False)``, ``execute(raise_on_error=False)``), batched as the first
  broker link did; residentd: ``RedisConnection.command`` (every command of a loop iteration
  in one write, replies parsed by hiredis's ``Reader``).
- *events*: a publisher process sends ``--events`` messages of 200 bytes to a channel as fast
  as it can; the subscriber under test reads them. redis-py: ``PubSub.get_message``;
  residentd: ``RedisConnection.subscribe`` (every message of a read handed over at once).

Rounds alternate the two clients; medians of ``--rounds``.

    python bench/broker_client.py                 # 5 rounds, about 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import redis.asyncio as aioredis
import uvloop

from chat_broker import Redis
from harness import CLIENT_CPU, SERVER_CPU, pin_to_cpu
from residentd.apps.chat.redisconn import RedisAddress, connect

SCRIPT = "return {0, ARGV[1]}"
CHANNEL = "bench:events"


async def commands_redis_py(url: str, tasks: int, count: int) -> float:
    client = aioredis.from_url(url, protocol=2)
    sha = await client.script_load(SCRIPT)
    queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
    sending = False
    senders: set[asyncio.Future[None]] = set()

    async def send() -> None:
        nonlocal sending, queue
        try:
            while queue:
                batch, queue = queue, []
                pipe = client.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                results = await pipe.execute(raise_on_error=False)
                for (_, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
        finally:
            sending = False

    async def command(*args: Any) -> Any:
        nonlocal sending
        future = asyncio.get_running_loop().create_future()
        queue.append((args, future))
        if not sending:
            sending = True
            sender = asyncio.ensure_future(send())
            senders.add(sender)
            sender.add_done_callback(senders.discard)
        return await future

    async def worker(n: int) -> None:
        for i in range(n):
            await command("EVALSHA", sha, 0, i)

    start = time.process_time()
    await asyncio.gather(*(worker(count // tasks) for _ in range(tasks)))
    spent = time.process_time() - start
    await client.aclose()
    return spent / count


async def commands_residentd(url: str, tasks: int, count: int) -> float:
    connection = await connect(RedisAddress.parse(url), 5.0, lambda exc: None)
    sha = await connection.command("SCRIPT", "LOAD", SCRIPT)

    async def worker(n: int) -> None:
        for i in range(n):
            await connection.command("EVALSHA", sha, 0, i)

    start = time.process_time()
    await asyncio.gather(*(worker(count // tasks) for _ in range(tasks)))
    spent = time.process_time() - start
    connection.close()
    return spent / count


def publisher(port: int, events: int) -> subprocess.Popen[bytes]:
    """A process that publishes ``events`` messages as fast as it can, pipelined."""
    code = f"""
import socket
s = socket.create_connection(("127.0.0.1", {port}))
payload = b"x" * 200
head = b"*3\\r\\n$7\\r\\nPUBLISH\\r\\n${len(CHANNEL)}\\r\\n{CHANNEL}\\r\\n$200\\r\\n"
command = head + payload + b"\\r\\n"
for _ in range({events} // 100):
    s.sendall(command * 100)
    got = 0
    while got < 100:
        got += s.recv(65536).count(b":")
"""
    return subprocess.Popen([sys.executable, "-c", code])


async def events_redis_py(url: str, port: int, events: int) -> float:
    client = aioredis.from_url(url, protocol=2)
    pubsub = client.pubsub()
    await pubsub.subscribe(CHANNEL)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    got = 0
    start = time.process_time()
    sender = publisher(port, events)
    while got < events:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
        if message is None:
            raise SystemExit("events stopped coming")
        got += 1
    spent = time.process_time() - start
    sender.wait()
    await pubsub.aclose()
    await client.aclose()
    return spent / events


async def events_residentd(url: str, port: int, events: int) -> float:
    done = asyncio.get_running_loop().create_future()
    got = 0

    def on_messages(messages: list[bytes]) -> None:
        nonlocal got
        got += len(messages)
        if got >= events and not done.done():
            done.set_result(None)

    connection = await connect(RedisAddress.parse(url), 5.0, lambda exc: None)
    await connection.subscribe(CHANNEL, on_messages)
    start = time.process_time()
    sender = publisher(port, events)
    await asyncio.wait_for(done, 60)
    spent = time.process_time() - start
    sender.wait()
    connection.close()
    return spent / events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--commands", type=int, default=32_000)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--events", type=int, default=50_000)
    args = parser.parse_args()
    redis = Redis()
    results: dict[str, list[float]] = {}
    try:
        pin_to_cpu(CLIENT_CPU)  # the publisher processes started later too
        os.sched_setaffinity(redis.process.pid, {SERVER_CPU})
        url = redis.url
        for round_ in range(args.rounds):
            order = ["redis-py", "residentd"] if round_ % 2 == 0 else ["residentd", "redis-py"]
            for client in order:
                if client == "redis-py":
                    command = commands_redis_py(url, args.tasks, args.commands)
                    event = events_redis_py(url, redis.port, args.events)
                else:
                    command = commands_residentd(url, args.tasks, args.commands)
                    event = events_residentd(url, redis.port, args.events)
                results.setdefault(f"{client} command", []).append(uvloop.run(command))
                results.setdefault(f"{client} event", []).append(uvloop.run(event))
    finally:
        redis.stop()
    print(f"client on CPU {CLIENT_CPU}, redis-server on CPU {SERVER_CPU}; medians of {args.rounds}")
    print(f"{'what':<20} {'us of client CPU each':>22}")
    medians = {name: statistics.median(values) * 1e6 for name, values in results.items()}
    for name, value in medians.items():
        print(f"{name:<20} {value:>22.2f}")
    for kind in ("command", "event"):
        ratio = medians[f"redis-py {kind}"] / medians[f"residentd {kind}"]
        print(f"{kind}: redis-py costs {ratio:.1f}x residentd's connection")


if __name__ == "__main__":
    main()
