"""kv's Persistence: the framework's (residentd.state), reading kv's Redis-named settings.

Redis's ``appendonly`` takes ``yes`` or ``no`` where residentd's boolean settings are flags,
so kv declares it as a word and ``_RedisOptions`` hands the framework its truth value. The
file names (``appendfilename``, ``dbfilename``) are read from the options at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from residentd.state import Layout, Persistence

if TYPE_CHECKING:
    import asyncio


class _RedisOptions(Mapping[str, Any]):
    """kv's options as the framework reads them: ``appendonly`` as a bool."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = options

    def __getitem__(self, name: str) -> Any:
        value = self.options[name]
        if name == "appendonly" and isinstance(value, str):
            return value.lower() == "yes"
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)


class KvPersistence(Persistence):
    """The framework's Persistence, with kv's file names read from its options at start-up;
    ``on_settings`` (KvState's ``update_journal``) switches the keyspace's journal buffer
    on and off with the settings."""

    bgsave_scheduled = False  # BGSAVE SCHEDULE during a rewrite: run once it ends
    # Called after the settings were read (start-up, CONFIG SET, reload).
    on_settings: Callable[[], None] | None = None

    def settings_changed(self) -> None:
        if self.on_settings is not None:
            self.on_settings()

    def _after_child(self) -> None:
        super()._after_child()
        if self.bgsave_scheduled and not self.child_running:
            self.bgsave_scheduled = False
            self.snapshot_now()

    def open(
        self, options: Mapping[str, Any], loop: asyncio.AbstractEventLoop, flushes: Any
    ) -> None:
        self.layout = Layout.redis(appendfilename=options["appendfilename"], base_ext="rdb")
        self.snapshot_name = options["dbfilename"]
        super().open(_RedisOptions(options), loop, flushes)
        self.settings_changed()

    def reconfigure(self, options: Mapping[str, Any]) -> None:
        super().reconfigure(_RedisOptions(options))
        self.settings_changed()
