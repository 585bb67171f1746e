"""Small apps the lifecycle tests run with ``residentd run tests/lifecycle/apps.py:NAME``."""

from __future__ import annotations

import asyncio

from residentd import App, LineCodec, Session

slow = App("slow", "replies after a delay, says goodbye on shutdown, slow stop hook")
slow.option("reply_delay", 0.0, "seconds before each reply", reloadable=True)
slow.option("stop_delay", 0.0, "seconds the stop hook takes")
slow.option("greeting", "hi", "a reloadable text option", reloadable=True)


class Slow(Session):
    __slots__ = ()

    async def on_message(self, line: bytes) -> None:
        if line == b"greeting":
            self.send(slow.options["greeting"])
            return
        await asyncio.sleep(slow.options["reply_delay"])
        self.send(line)

    def on_shutdown(self) -> None:
        self.send(b"BYE")


@slow.on_stop
async def wait_a_while() -> None:
    await asyncio.sleep(slow.options["stop_delay"])


slow.service("slow", Slow, codec=LineCodec, listen=["127.0.0.1:0"])
