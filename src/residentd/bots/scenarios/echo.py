"""``echo``: send a line, wait for the same line back, at once (no think time by default).

The load of ``bench``'s echo figures and of redis-benchmark's PING: one request in flight per
bot, a reply checked byte for byte. ``--set size=N`` sets the line length (default 16 bytes).
"""

from __future__ import annotations

from residentd.bots.scenario import Scenario, StepFailed, task


class Echo(Scenario):
    name = "echo"
    transport = "lines"
    port = 7007
    options = {"size": 16}

    async def on_start(self) -> None:
        size = max(1, int(self.opts.get("size", 16)))
        self.line = (b"bot-%d-" % self.index).ljust(size, b"x")[:size]

    @task()
    async def echo(self) -> None:
        with self.step("echo"):
            reply = await self.conn.request(self.line)
        if reply != self.line:
            raise StepFailed("wrong-reply", repr(reply[:80]))
