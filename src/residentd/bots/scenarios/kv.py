"""``kv``: a GET/SET mix against a server speaking RESP (``residentd run kv``, or Redis).

Each task is one command on a key drawn uniformly from ``keys`` keys: SET (a value of
``value_size`` bytes) with probability ``set_ratio``, GET otherwise. Steps are named after the
command. A RESP error reply counts as an error of kind ``resp-error``; a GET may find no value.

    residentd bots --scenario kv --target 127.0.0.1:6380 --set set_ratio=0.2
"""

from __future__ import annotations

import hiredis

from residentd.bots.scenario import Scenario, StepFailed, task


class KeyValue(Scenario):
    name = "kv"
    transport = "resp"
    port = 6380
    options = {"keys": 10_000, "value_size": 32, "set_ratio": 0.1}

    async def on_start(self) -> None:
        size = max(1, int(self.opts.get("value_size", 32)))
        self.value = (b"v%d-" % self.index).ljust(size, b"x")[:size]
        self.keys = max(1, int(self.opts.get("keys", 10_000)))
        self.set_ratio = float(self.opts.get("set_ratio", 0.1))

    @task()
    async def command(self) -> None:
        key = b"key:%d" % self.random.randrange(self.keys)
        if self.random.random() < self.set_ratio:
            with self.step("SET"):
                reply = await self.conn.request((b"SET", key, self.value))
                if reply != b"OK":
                    raise StepFailed("resp-error", repr(reply))
        else:
            with self.step("GET"):
                reply = await self.conn.request((b"GET", key))
                if isinstance(reply, hiredis.ReplyError):
                    raise StepFailed("resp-error", str(reply))
