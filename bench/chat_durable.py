"""Chat posts with a durable state (``--state-dir``) against memory only: posts a second and the
server's CPU time per post.

The chat daemon runs in a subprocess pinned to CPU 0 (rate limit and pings off); this process,
pinned to CPU 1, is the load: ``--senders`` TCP connections, each a token user posting to a room
of its own (so a post's fan-out is one delivery and the post path itself is what is measured),
``--window`` posts in flight each, counting the ``post`` replies. After a warm-up, replies over
``--seconds`` give posts/s, and the server's CPU time over the same span (psutil) gives posts
per CPU second. Modes: ``memory`` (no state_dir), ``everysec`` (state_dir, chat's default
fsync) and ``always`` (state_dir, an fsync per loop iteration); rounds alternate the modes and
medians are reported with the ratio to memory.

    python bench/chat_durable.py                        # 3 rounds of 3 modes, about 1 min
    python bench/chat_durable.py --rounds 1 --modes memory everysec
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time

import uvloop

from harness import CLIENT_CPU, HOST, ServerProcess, free_port, pin_to_cpu

SECRET = "bench"
TEXT = "the quick brown fox jumps over the lazy dog"
MODES = ("memory", "everysec", "always")


def chat_command(port: int, mode: str, folder: str) -> list[str]:
    command = [
        sys.executable, "-m", "residentd", "run", "chat",
        "--listen", f"{HOST}:{port}", "--http-listen", f"{HOST}:{free_port()}",
        "--admin", "off", "--log-level", "WARNING", "--ping-interval", "0",
        "--rate-limit", "0", "--secret", SECRET,
    ]  # fmt: skip
    if mode != "memory":
        command += ["--state-dir", folder, "--appendfsync", mode]
    return command


class Sender(asyncio.Protocol):
    """Signs in, creates its room, then keeps ``window`` posts in flight, counting replies."""

    def __init__(self, index: int, window: int) -> None:
        from residentd.apps.chat.tokens import make_token

        self.user = f"sender{index}"
        self.room = f"room{index}"
        self.token = make_token(SECRET, self.user)
        self.window = window
        self.ready = asyncio.get_running_loop().create_future()
        self.replies = 0
        self.posting = False
        self.buffer = b""
        self.post = (json.dumps({"op": "post", "room": self.room, "text": TEXT}) + "\n").encode()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        hello = {"op": "hello", "v": 1, "user": self.user, "token": self.token, "id": 1}
        create = {"op": "create", "room": self.room, "id": 2}
        transport.write((json.dumps(hello) + "\n" + json.dumps(create) + "\n").encode())  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        done = 0
        for line in lines:
            if line.startswith(b'{"op":"post"'):
                done += 1
            elif line.startswith(b'{"op":"create"') and not self.ready.done():
                self.ready.set_result(None)
            elif line.startswith(b'{"op":"error"'):
                raise RuntimeError(line.decode())
        self.replies += done
        if self.posting and done:
            self.transport.write(self.post * done)

    def start(self) -> None:
        self.posting = True
        self.transport.write(self.post * self.window)


async def run_load(server: ServerProcess, args: argparse.Namespace) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    senders = []
    for index in range(args.senders):
        _, sender = await loop.create_connection(
            lambda i=index: Sender(i, args.window),  # type: ignore[misc]
            HOST,
            server.port,
        )
        senders.append(sender)
    await asyncio.gather(*(sender.ready for sender in senders))
    for sender in senders:
        sender.start()
    await asyncio.sleep(args.warmup)
    replies, cpu, started = sum(s.replies for s in senders), server.cpu_seconds(), time.monotonic()
    await asyncio.sleep(args.seconds)
    posts = sum(s.replies for s in senders) - replies
    seconds = time.monotonic() - started
    cpu = server.cpu_seconds() - cpu
    for sender in senders:
        sender.posting = False
        sender.transport.close()
    return {"posts_per_s": posts / seconds, "posts_per_cpu_s": posts / cpu, "cpu": cpu / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    pin_to_cpu(CLIENT_CPU)
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in args.modes}
    for round_number in range(1, args.rounds + 1):
        for mode in args.modes:
            with tempfile.TemporaryDirectory() as folder:
                command = chat_command(free_port(), mode, folder)
                with ServerProcess(mode, command) as server:
                    figures = uvloop.run(run_load(server, args))
            runs[mode].append(figures)
            print(
                f"round {round_number} {mode:9} {figures['posts_per_s']:9,.0f} posts/s "
                f"{figures['posts_per_cpu_s']:9,.0f} posts/CPU-s (server CPU "
                f"{figures['cpu']:.0%})",
                flush=True,
            )
    print("\nmedians")
    base = statistics.median(run["posts_per_cpu_s"] for run in runs[args.modes[0]])
    for mode, figures in runs.items():
        rate = statistics.median(run["posts_per_s"] for run in figures)
        per_cpu = statistics.median(run["posts_per_cpu_s"] for run in figures)
        print(
            f"{mode:9} {rate:9,.0f} posts/s {per_cpu:9,.0f} posts/CPU-s "
            f"({per_cpu / base:.2f}x {args.modes[0]} per CPU second)"
        )


if __name__ == "__main__":
    main()
