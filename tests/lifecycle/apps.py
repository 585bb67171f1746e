"""Small apps the lifecycle tests run with ``residentd run tests/lifecycle/apps.py:NAME``."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
from dataclasses import dataclass
from pathlib import Path

from residentd import App, LineCodec, Session
from residentd.apps.kv import create_app
from residentd.settings import setting


@dataclass(frozen=True, slots=True)
class SlowSettings:
    reply_delay: float = setting(0.0, "seconds before each reply", reload=True)
    stop_delay: float = setting(0.0, "seconds the stop hook takes")
    greeting: str = setting("hi", "a reloadable text setting", reload=True)


slow = App("slow", "replies after a delay, says goodbye on shutdown, slow stop hook")
slow.declare(SlowSettings)


class Slow(Session):
    __slots__ = ()

    async def on_message(self, line: bytes) -> None:
        if line == b"greeting":
            self.send(slow.current(SlowSettings).greeting)
            return
        await asyncio.sleep(slow.current(SlowSettings).reply_delay)
        self.send(line)

    def on_shutdown(self) -> None:
        self.send(b"BYE")


@slow.on_stop
async def wait_a_while() -> None:
    await asyncio.sleep(slow.current(SlowSettings).stop_delay)


slow.service("slow", Slow, codec=LineCodec, listen=["127.0.0.1:0"])


# kv that writes every key's value to the file ``--dump-file`` names when the process exits:
# after the stop, so the file holds whatever the daemon executed, to the last command.


@dataclass(frozen=True, slots=True)
class DumpSettings:
    dump_file: str = setting("", "write the keyspace here as JSON at exit")


kv = create_app()
kv.declare(DumpSettings)


@atexit.register
def dump_keyspace() -> None:
    path = kv.options.get("dump_file")
    if path:
        data = {key.decode(): int(value) for key, value in kv.state.db.data.items()}
        Path(path).write_text(json.dumps(data))


# An echo whose server exits with status 3 as it starts: a worker that crashes at start.

crashy = App("crashy", "exits with status 3 as soon as it starts serving")
crashy.service("crashy", Slow, codec=LineCodec, listen=["127.0.0.1:0"])


@crashy.on_start
def crash_now() -> None:
    os._exit(3)
