"""The link to the broker: one Redis connection for commands, one for the event stream.

``BrokerLink`` is a peer like any other of a resident daemon. ``open`` connects at start (and
raises ``ConfigError`` naming the address when Redis does not answer, unless ``wait``: then it
retries until it does). ``run`` then hands the events of the channel to ``on_events``, in the
order Redis published them; when a connection breaks it logs once (``broker lost``), marks the
link down, and retries with backoff (0.5 s doubling up to 5 s, one line per attempt); when
Redis answers again it loads the scripts, calls ``on_up`` (the hub re-registers its users'
presence), logs ``broker back`` and goes on. While the link is down ``call`` raises
``broker-unavailable`` at once, without waiting for a timeout, so local work goes on.

Two connections (redisconn.py, on hiredis's parser): one for commands, one subscribed to the
event channel. Commands are pipelined: all those asked for in one loop iteration go out in one
write, in the order they were asked for, so a busy node pays one round trip for many requests
and Redis runs each node's scripts in their order; the events come in batches, every event one
read brought, handed to ``on_events`` at once. The scripts are loaded (SCRIPT LOAD) each time
the link comes up and run with EVALSHA; a NOSCRIPT answer (a Redis restarted unnoticed) counts
as a broken link, as does either connection breaking or a command without a reply for
``COMMAND_TIMEOUT`` seconds: then both connections are closed and made again.

Events that come while this node has commands in flight wait until the last of those has its
reply (at most one round trip: the link sends no blocking command; a broken link answers
them all at once), then go to
``on_events`` in one batch with every event that came meanwhile, in Redis's order. A busy node
always has scripts in flight when the events of its earlier posts come back. Without the wait
its posts would reach the members in two alternating half-batches, one per loop iteration,
each paying a write per member. Held, they go out together, as a node without a broker writes
every post of an iteration to a member at once. ``bench/chat_broker.py`` measures what this
saves at saturation (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from hashlib import sha1
from typing import Any

from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.redisconn import RedisAddress, RedisConnection, ReplyError, connect
from residentd.apps.chat.scripts import CHANNEL, SOURCES
from residentd.errors import ConfigError

log = logging.getLogger("residentd.chat.broker")

CODES = {code.value: code for code in ErrorCode}  # a script's refusal, by its wire string

FIRST_RETRY = 0.5  # seconds before the first reconnection attempt; doubled up to LAST_RETRY
LAST_RETRY = 5.0
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0  # seconds a command may wait for its reply before the link counts as broken


class BrokerLink:
    def __init__(
        self,
        url: str,
        on_events: Callable[[list[bytes]], None],
        on_up: Callable[[], Awaitable[None]],
    ) -> None:
        self.url = url
        self.address = RedisAddress.parse(url)
        self.on_events = on_events
        self.on_up = on_up
        self.up = False
        self.closed = False
        self.shas = {name: sha1(source.encode()).hexdigest() for name, source in SOURCES.items()}
        self._commands: RedisConnection | None = None
        self._events: RedisConnection | None = None
        self._down: asyncio.Event = asyncio.Event()  # set when the link breaks
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._held: list[bytes] | None = None  # events waiting for a command's reply

    async def open(self, wait: bool) -> None:
        """Connect at start: ConfigError naming the address if Redis does not answer and
        ``wait`` is false; with ``wait``, retry (logging each attempt) until it answers."""
        delay = FIRST_RETRY
        while True:
            try:
                await self._connect()
                break
            except ReplyError as exc:  # a server that is not Redis enough (no EVAL)
                self._disconnect()
                raise ConfigError(
                    f"broker {self.url} cannot run the chat's Lua scripts ({exc}): "
                    "it needs Redis 6.2 or later, or a server with EVALSHA and SCRIPT LOAD"
                ) from None
            except OSError as exc:
                self._disconnect()
                if not wait:
                    raise ConfigError(f"broker {self.url} is not reachable: {exc}") from None
                log.warning(
                    "broker %s is not reachable (%s): retrying in %.1f s", self.url, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAST_RETRY)
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._connected.wait()

    async def _connect(self) -> None:
        """Both connections made, the scripts loaded and the event channel subscribed."""
        self._down.clear()
        self._commands = await connect(self.address, CONNECT_TIMEOUT, self._lost)
        self._events = await connect(self.address, CONNECT_TIMEOUT, self._lost)
        loads = [self._commands.command("SCRIPT", "LOAD", source) for source in SOURCES.values()]
        for loaded in loads:
            await loaded
        await asyncio.wait_for(self._events.subscribe(CHANNEL, self._deliver), COMMAND_TIMEOUT)

    def _disconnect(self) -> None:
        for connection in (self._commands, self._events):
            if connection is not None:
                connection.close()
        self._commands = self._events = None

    def _deliver(self, events: list[bytes]) -> None:
        """Hand events to ``on_events``; those that come while commands of this node are in
        flight are held until the last of those commands has its reply, and handed over then
        with every event that came meanwhile (see the module's opening comment)."""
        if not self.up:
            return
        if self._held is not None:
            self._held.extend(events)
            return
        last = self._commands.last_waiting() if self._commands is not None else None
        if last is None:
            self.on_events(events)
            return
        self._held = events
        last.add_done_callback(self._release)

    def _release(self, _: asyncio.Future[Any]) -> None:
        held, self._held = self._held, None
        if held:
            self.on_events(held)

    async def call(self, script: str, *args: Any) -> list[Any]:
        """Run one script; its result past the leading ok mark. A refusal raises ChatError
        with the script's code; a broker that is down, ``broker-unavailable``."""
        result = await self.command("EVALSHA", self.shas[script], 0, *args)
        code = result[0]
        if code:
            raise ChatError(CODES[code.decode()], _refusal(result))
        return list(result[1:])

    async def command(self, *args: Any) -> Any:
        """One command (EVALSHA, HGET, HDEL, ...), sent with every other command asked for in
        the same loop iteration, in one write, in the order they were asked for. An error
        reply raises ReplyError."""
        connection = self._commands
        if not self.up or connection is None:
            raise _unavailable(self.url)
        try:
            return await connection.command(*args)
        except ConnectionError:
            raise _unavailable(self.url) from None
        except ReplyError as exc:
            if str(exc).startswith("NOSCRIPT"):  # Redis restarted unnoticed
                self._lost(exc)
                raise _unavailable(self.url) from None
            raise

    def _lost(self, exc: BaseException) -> None:
        if self.up and not self.closed:
            log.warning("broker %s lost: %s", self.url, exc or type(exc).__name__)
        self.up = False
        self._down.set()

    async def _run(self) -> None:
        delay = FIRST_RETRY
        first = True
        while not self.closed:
            try:
                if not first:
                    await self._connect()
                first = False
                self.up = True
                await self.on_up()
                if self._connected.is_set():
                    log.warning("broker %s back", self.url)
                self._connected.set()
                delay = FIRST_RETRY
                await self._down.wait()  # until a connection breaks
            except asyncio.CancelledError:
                raise
            except (OSError, ReplyError, ChatError) as exc:
                self._lost(exc)
            finally:
                self.up = False
                self._disconnect()
            if self.closed:
                return
            log.warning("broker %s: retrying in %.1f s", self.url, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY)

    async def close(self) -> None:
        self.closed = True
        self.up = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._disconnect()


def _unavailable(url: str) -> ChatError:
    return ChatError(ErrorCode.BROKER_UNAVAILABLE, f"the broker {url} does not answer: retry later")


def _refusal(result: list[Any]) -> str:
    return " ".join(str(part.decode() if isinstance(part, bytes) else part) for part in result[1:])


__all__ = ["BrokerLink"]
