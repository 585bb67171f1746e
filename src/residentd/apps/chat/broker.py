"""The link to the broker: one Redis connection for commands, one for the event stream.

``BrokerLink`` is a peer like any other of a resident daemon. ``open`` connects at start (and
raises ``ConfigError`` naming the address when Redis does not answer, unless ``wait``: then it
retries until it does). ``run`` then reads the event channel and hands each event to
``on_event``; when the connection breaks it logs once (``broker lost``), marks the link down,
and retries with backoff (0.5 s doubling up to 5 s, one line per attempt); when Redis answers
again it loads the scripts, calls ``on_up`` (the hub re-registers its users' presence), logs
``broker back`` and reads again. While the link is down ``call`` raises ``broker-unavailable``
at once, without waiting for a timeout, so local work goes on.

The client is redis-py's asyncio client with hiredis parsing, with two connections: one for
commands and one (PubSub) for the events. Commands are pipelined (``command``): those asked
for while a batch is on its way go together in the next one, in the order they were asked
for, so a busy node pays one round trip for many requests and Redis runs each connection's
scripts in their order. The scripts are loaded (SCRIPT LOAD) each time the link comes up and
run with EVALSHA; a NOSCRIPT answer (a Redis restarted unnoticed) counts as a broken link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from hashlib import sha1
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from residentd.apps.chat.errors import ChatError, ErrorCode
from residentd.apps.chat.scripts import CHANNEL, SOURCES
from residentd.errors import ConfigError

log = logging.getLogger("residentd.chat.broker")

CODES = {code.value: code for code in ErrorCode}  # a script's refusal, by its wire string

FIRST_RETRY = 0.5  # seconds before the first reconnection attempt; doubled up to LAST_RETRY
LAST_RETRY = 5.0
COMMAND_TIMEOUT = 5.0  # seconds a command may take before the link counts as broken


class BrokerLink:
    def __init__(
        self,
        url: str,
        on_event: Callable[[bytes], None],
        on_up: Callable[[], Awaitable[None]],
    ) -> None:
        self.url = url
        self.on_event = on_event
        self.on_up = on_up
        self.up = False
        self.closed = False
        self.client = aioredis.from_url(
            url,
            protocol=2,
            socket_connect_timeout=2.0,
            socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self.shas = {name: sha1(source.encode()).hexdigest() for name, source in SOURCES.items()}
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._sending = False
        self._sender: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def open(self, wait: bool) -> None:
        """Connect at start: ConfigError naming the address if Redis does not answer and
        ``wait`` is false; with ``wait``, retry (logging each attempt) until it answers."""
        delay = FIRST_RETRY
        while True:
            try:
                await self.client.ping()
                await self._load_scripts()
                break
            except ResponseError as exc:  # a server that is not Redis enough (kv: no EVAL)
                problem = str(exc).partition(", with args")[0]
                raise ConfigError(
                    f"broker {self.url} cannot run the chat's Lua scripts ({problem}): "
                    "it needs Redis 6.2 or later, or a server with EVALSHA and SCRIPT LOAD"
                ) from None
            except (RedisError, OSError) as exc:
                if not wait:
                    raise ConfigError(f"broker {self.url} is not reachable: {exc}") from None
                log.warning(
                    "broker %s is not reachable (%s): retrying in %.1f s", self.url, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, LAST_RETRY)
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._connected.wait()

    async def _load_scripts(self) -> None:
        for source in SOURCES.values():
            await self.client.script_load(source)

    async def call(self, script: str, *args: Any) -> list[Any]:
        """Run one script; its result past the leading ok mark. A refusal raises ChatError
        with the script's code; a broker that is down, ``broker-unavailable``."""
        result = await self.command("EVALSHA", self.shas[script], 0, *args)
        code = result[0]
        if code:
            raise ChatError(CODES[code.decode()], _refusal(result))
        return list(result[1:])

    async def command(self, *args: Any) -> Any:
        """One command (EVALSHA, HGET, HDEL, ...), sent with every other command asked for
        while the last batch was on its way, in one pipeline: one write and one read for
        them all, in the order they were asked for."""
        if not self.up:
            raise _unavailable(self.url)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((args, future))
        if not self._sending:
            self._sending = True
            self._sender = asyncio.ensure_future(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                pipe = self.client.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                try:
                    if self.closed:  # asked for while the node stops: never sent
                        raise ConnectionError("the link is closed")
                    results = await pipe.execute(raise_on_error=False)
                except (RedisError, OSError) as exc:
                    self._lost(exc)
                    results = [_unavailable(self.url)] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, NoScriptError):  # Redis restarted unnoticed
                        self._lost(result)
                        result = _unavailable(self.url)
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._sending = False

    def _lost(self, exc: BaseException) -> None:
        if self.up and not self.closed:
            self.up = False
            log.warning("broker %s lost: %s", self.url, exc or type(exc).__name__)

    async def _run(self) -> None:
        delay = FIRST_RETRY
        while not self.closed:
            pubsub = self.client.pubsub()
            try:
                await self.client.ping()
                await pubsub.subscribe(CHANNEL)
                await self._load_scripts()
                self.up = True
                await self.on_up()
                if self._connected.is_set():
                    log.warning("broker %s back", self.url)
                self._connected.set()
                delay = FIRST_RETRY
                on_event = self.on_event
                while self.up:  # until a command finds the link broken, or this read does
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None:
                        try:
                            on_event(message["data"])
                        except Exception:  # one event the hub cannot take costs only itself
                            log.exception("broker event %r not applied", message["data"][:200])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, ChatError) as exc:
                self._lost(exc)
            finally:
                self.up = False
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
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
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._task
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()


def _unavailable(url: str) -> ChatError:
    return ChatError(ErrorCode.BROKER_UNAVAILABLE, f"the broker {url} does not answer: retry later")


def _refusal(result: list[Any]) -> str:
    return " ".join(str(part.decode() if isinstance(part, bytes) else part) for part in result[1:])


__all__ = ["BrokerLink"]
