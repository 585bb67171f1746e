"""Replies lost at a graceful stop: SIGTERM to echo or kv under pipelining clients.

Each round starts ``residentd run APP`` as a subprocess, runs ``--clients`` asyncio-streams
clients that pipeline batches of ``--depth`` requests with ``--ahead`` batches in flight
(echo lines, or kv ``INCR`` of the client's own key) and think ``--think`` seconds over each
batch of replies, sends SIGTERM from this process once
every client has had ``--warmup`` replies, and waits for every client to see its connection
end. It prints what the daemon executed (``messages_in`` of its "stopped" log line), the
replies the clients received, the difference (replies lost), and how many clients were reset
instead of closed. Bounded: ``--rounds`` rounds of about a second each; loopback only.

    python bench/stop_loss.py --app echo --rounds 3
    python bench/stop_loss.py --app kv --loop asyncio

The clients are the ones tests/lifecycle/test_graceful_stop.py uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lifecycle.helpers import Daemon  # noqa: E402
from tests.lifecycle.pipelining import Echo, KvIncr, stop_under_load  # noqa: E402


def one_round(args: argparse.Namespace) -> dict[str, int]:
    app, loop = args.app, args.loop
    workload = Echo() if app == "echo" else KvIncr()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(Path(tmp), app, "--log-format", "json", loop=loop).start()
        try:
            tallies = asyncio.run(
                stop_under_load(
                    daemon.port,
                    daemon.pid,
                    workload,
                    args.clients,
                    args.warmup,
                    depth=args.depth,
                    ahead=args.ahead,
                    think=args.think,
                )
            )
            daemon.wait()
        finally:
            daemon.stop()
        lines = [json.loads(line) for line in daemon.log().splitlines()]
    stopped = next(line for line in lines if line["msg"] == "stopped")
    received = sum(tally.received for tally in tallies)
    return {
        "executed": stopped["messages_in"],
        "received": received,
        "lost": stopped["messages_in"] - received,
        "reset": sum(tally.ended == "reset" for tally in tallies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=["echo", "kv"], default="echo")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--ahead", type=int, default=4)
    parser.add_argument("--think", type=float, default=0.001)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.app} on {args.loop}: {args.clients} clients, {args.ahead}x{args.depth} in flight")
    print(f"{'round':>5} {'executed':>9} {'received':>9} {'lost':>7} {'reset':>6}")
    for number in range(1, args.rounds + 1):
        result = one_round(args)
        print(
            f"{number:>5} {result['executed']:>9,} {result['received']:>9,} "
            f"{result['lost']:>7,} {result['reset']:>6}"
        )


if __name__ == "__main__":
    main()
