"""The chat daemon: its two services, its options and the hooks that build and run the hub.

``residentd run chat`` serves the chat protocol on TCP (``listen``, default 127.0.0.1:7700) and
the web port (``http_listen``, default 127.0.0.1:7780: the page, the dashboard, ``/ws`` and
the backend API under ``/api/v1/``, whose keys are read at start and reload).
The hub is built from the options in force when it is first needed (at start, or by a
connection accepted while the listeners are still being bound); a reload swaps new settings
into it, and a stop lets the next start build a new one. Once started, a periodic job runs the
hub's liveness checks and takes the dashboard's sample every second.

With ``state_dir`` set, the world is durable (durable.py): the framework loads it before the
listeners open, through ``ChatState``, and the hub writes each change to the journal.

``build_app()`` makes a fresh app with a hub of its own, so tests can run several at once;
``app`` is the one ``residentd run chat`` loads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from residentd.app import App
from residentd.apps.chat import (
    api,
    openapi,  # noqa: F401 (registers the API's /openapi.json)
)
from residentd.apps.chat.brokered import BrokeredHub, node_name
from residentd.apps.chat.durable import ChatState, Journal, after_load
from residentd.apps.chat.hub import Hub
from residentd.apps.chat.metrics import Sampler
from residentd.apps.chat.settings import ChatSettings
from residentd.apps.chat.tcp import ChatLineCodec, TcpSession
from residentd.apps.chat.ws import WebSocketSession, web_codec
from residentd.codecs.web import WebCodec
from residentd.errors import ConfigError
from residentd.state import Persistence

# The state settings of residentd.state, as chat declares them: a journal, fsynced about once a
# second, on as soon as state_dir names a folder; compaction by the journal's growth.
STATE_DEFAULTS = {"dir": None, "appendonly": True, "appendfsync": "everysec", "save": ""}

TCP_LISTEN = "127.0.0.1:7700"
HTTP_LISTEN = "127.0.0.1:7780"


class ChatApp(App):
    """An App with the chat's world attached while it runs."""

    def __init__(self) -> None:
        super().__init__(
            "chat", "users online: presence, rooms and messages over TCP and WebSocket"
        )
        self._hub: Hub | None = None
        self.sampler: Sampler | None = None
        self.api_keys: tuple[bytes, ...] = ()  # the backend API's keys; none: the API is off

    def settings(self) -> ChatSettings:
        return self.current(ChatSettings)

    @property
    def hub(self) -> Hub:
        """The world, made from the options in force when first needed: by the start hook, or
        by a connection accepted while the listeners are still being bound."""
        if self._hub is None:
            settings = self.settings()
            persistence = self.persistence
            journal = None
            if isinstance(persistence, Persistence) and persistence.enabled:
                journal = Journal(persistence)
            if settings.broker is not None and journal is None:
                self._hub = BrokeredHub(
                    settings, settings.broker, node_name(settings.node_id, self.worker)
                )
            else:  # with state_dir too, the start refuses it
                self._hub = Hub(settings, journal)
        return self._hub

    def workers_refused(self, workers: int, options: Mapping[str, Any]) -> str | None:
        """Why chat cannot run ``workers`` worker processes, or None: each would hold a world
        of its own unless they share one through a broker."""
        if workers > 1 and not options.get("broker"):
            return (
                f"chat with workers = {workers} needs a broker (broker = redis://HOST:PORT/DB): "
                "without one each worker would hold users, rooms and messages of its own"
            )
        return None

    def forget_hub(self) -> None:
        """After a stop: the next start builds a new world (sessions keep the old one)."""
        self._hub = None


def check_broker(settings: ChatSettings, hub: Hub) -> None:
    """Refuse what a broker cannot go with (ConfigError, exit 2)."""
    if hub.journal is not None:
        raise ConfigError(
            "state_dir and broker cannot go together: with a broker the shared state lives in "
            "Redis (give Redis its own persistence: appendonly yes)"
        )
    if settings.api_keys or settings.api_keys_file:
        raise ConfigError(
            "the backend API (api_keys, api_keys_file) is not served with a broker yet: "
            "its calls change one node's memory"
        )


def build_app() -> ChatApp:
    app = ChatApp()
    app.declare(ChatSettings)
    Persistence.attach(
        app,
        ChatState(app),
        snapshot_name="chat.snap",
        names={"dir": "state_dir"},
        defaults=STATE_DEFAULTS,
    )

    def line_codec() -> ChatLineCodec:
        return ChatLineCodec(app.settings().max_message)

    def http_codec() -> WebCodec:
        return web_codec(app.settings())

    app.service("chat", TcpSession, codec=line_codec, listen=[TCP_LISTEN])
    app.service("http", WebSocketSession, codec=http_codec, listen=[HTTP_LISTEN])

    @app.on_start
    async def start() -> None:
        settings = app.settings()
        if not settings.guests and not settings.secret:
            raise ConfigError("guests = false needs a secret, or nobody can sign in")
        app.api_keys = api.load_keys(settings)
        hub = app.hub
        if settings.broker is not None:
            check_broker(settings, hub)
            assert isinstance(hub, BrokeredHub)
            await hub.link.open(settings.broker_wait)
        if hub.journal is not None:
            after_load(hub)
        app.sampler = Sampler(hub, asyncio.get_running_loop())
        app.sampler.start()

    @app.on_stop
    async def stop() -> None:
        if app.sampler is not None:
            app.sampler.stop()
            app.sampler = None
        hub = app._hub
        if isinstance(hub, BrokeredHub):
            await hub.close()
        app.forget_hub()

    @app.on_reload
    def reload(changed: dict[str, Any]) -> None:
        settings = app.settings()
        app.hub.reconfigure(settings)
        app.api_keys = api.load_keys(settings)  # a bad key or file keeps the old keys

    @app.every(1.0)
    def tick() -> None:
        if app.sampler is not None:  # started
            app.hub.tick(asyncio.get_running_loop().time())
            app.sampler.sample()

    return app


app = build_app()
