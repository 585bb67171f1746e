"""Pipelining clients that count every request sent and every reply received, for the tests
(and bench/stop_loss.py) that stop a daemon under load.

Each client is what a busy pipelining client looks like to a server: asyncio streams, batches
of ``depth`` requests, ``ahead`` batches in flight (it sends the next batch before it reads the
replies to the oldest), so the server always has unread input from it, and it may think a
little over each batch of replies (``think`` seconds), as a client doing work does. It checks
every reply as it comes (echo: the very line it sent; kv ``INCR`` of its own key: the next
integer), and ends at EOF, which is what a graceful stop must give it, or at a reset.
"""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass


class Echo:
    """Lines to the echo app: ``<client> <n>``, each echoed back as it was sent."""

    name = "echo"

    def request(self, client: int, n: int) -> bytes:
        return b"%d %d\n" % (client, n)

    def check(self, client: int, n: int, reply: bytes) -> None:
        assert reply == self.request(client, n), (client, n, reply)


class KvIncr:
    """``INCR k<client>`` to kv: the n-th reply (from 0) is ``:n+1``."""

    name = "kv"

    def request(self, client: int, n: int) -> bytes:
        key = b"k%d" % client
        return b"*2\r\n$4\r\nINCR\r\n$%d\r\n%b\r\n" % (len(key), key)

    def check(self, client: int, n: int, reply: bytes) -> None:
        assert reply == b":%d\r\n" % (n + 1), (client, n, reply)


Workload = Echo | KvIncr


@dataclass
class Tally:
    """What one client sent and got back, and how its connection ended."""

    sent: int = 0
    received: int = 0
    ended: str = ""  # "eof" or "reset"


async def pipelining_client(
    port: int,
    workload: Workload,
    client: int,
    tally: Tally,
    depth: int = 16,
    ahead: int = 4,
    think: float = 0.0,
) -> None:
    """Pipeline ``workload``'s requests to ``port`` until the server closes, counting in
    ``tally``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    def send_batch() -> None:
        first = tally.sent
        writer.write(b"".join(workload.request(client, n) for n in range(first, first + depth)))
        tally.sent += depth

    try:
        for _ in range(ahead):
            send_batch()
        while True:
            for _ in range(depth):
                reply = await reader.readline()
                if not reply.endswith(b"\n"):
                    tally.ended = "eof"
                    return
                workload.check(client, tally.received, reply)
                tally.received += 1
            if think:
                await asyncio.sleep(think)
            send_batch()
    except ConnectionError:
        tally.ended = "reset"
    finally:
        writer.close()


async def stop_under_load(
    port: int,
    pid: int,
    workload: Workload,
    clients: int = 200,
    warmup: int = 64,
    depth: int = 16,
    ahead: int = 4,
    think: float = 0.001,
) -> list[Tally]:
    """Run ``clients`` pipelining clients; once each has had ``warmup`` replies, send SIGTERM
    to ``pid`` from here, and wait for every client to see its connection end."""
    tallies = [Tally() for _ in range(clients)]
    tasks = [
        asyncio.create_task(pipelining_client(port, workload, index, tally, depth, ahead, think))
        for index, tally in enumerate(tallies)
    ]
    async with asyncio.timeout(30):
        while min(tally.received for tally in tallies) < warmup:
            if any(task.done() for task in tasks):
                break  # a client failed: gather reports why
            await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGTERM)
        await asyncio.gather(*tasks)
    return tallies
