"""The settings of durable state, declared as app options (the one settings mechanism).

``declare`` adds them to an app, under Redis's names unless the app renames them (chat calls
its folder ``state_dir``); ``StateSettings.of`` reads their current values back. A ``save``
schedule is Redis's: pairs of "seconds changes", a snapshot being due once at least ``changes``
writes were made and ``seconds`` went by since the last one ("900 1 300 10"; "" for none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from residentd.app import App
from residentd.state.journal import POLICIES

MIB = 1 << 20

# (key, default, help, reloadable)
OPTIONS: tuple[tuple[str, Any, str, bool], ...] = (
    ("dir", ".", "folder of the journal and snapshot files", False),
    ("appendonly", False, "keep a journal of every write (replayed at start-up)", True),
    ("appendfsync", "everysec", "when the journal is fsynced: always, everysec or no", True),
    ("save", "", 'snapshot schedule, pairs of "seconds changes" (e.g. "900 1 300 10")', True),
    (
        "auto_aof_rewrite_percentage",
        100,
        "compact the journal when it grew by this percent since the last compaction (0: never)",
        True,
    ),
    ("auto_aof_rewrite_min_size", 64 * MIB, "do not compact a journal smaller than this", True),
)


def truthy(value: Any) -> bool:
    """An on/off setting given as a bool or as Redis spells it (``"yes"``/``"no"``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "true", "on", "1")
    return bool(value)


def parse_save(text: str) -> list[tuple[int, int]]:
    """``"900 1 300 10"`` as ``[(900, 1), (300, 10)]``; ValueError if it is not pairs."""
    words = text.split()
    if len(words) % 2:
        raise ValueError(f"save = {text!r}: expected pairs of 'seconds changes'")
    points = [(int(words[i]), int(words[i + 1])) for i in range(0, len(words), 2)]
    if any(seconds < 1 or changes < 1 for seconds, changes in points):
        raise ValueError(f"save = {text!r}: seconds and changes must be at least 1")
    return points


@dataclass(frozen=True, slots=True)
class StateSettings:
    dir: str | None
    appendonly: bool
    appendfsync: str
    save: list[tuple[int, int]]
    rewrite_percentage: int
    rewrite_min_size: int

    @classmethod
    def of(cls, options: Mapping[str, Any], names: Mapping[str, str]) -> StateSettings:
        def get(key: str) -> Any:
            return options[names.get(key, key)]

        return cls(
            get("dir"),
            truthy(get("appendonly")),
            get("appendfsync"),
            parse_save(get("save") or ""),
            int(get("auto_aof_rewrite_percentage")),
            int(get("auto_aof_rewrite_min_size")),
        )


def declare(app: App, names: Mapping[str, str], defaults: Mapping[str, Any]) -> None:
    """Declare the state options on ``app`` (``names`` renames, ``defaults`` overrides)."""
    unknown = set(defaults) - {key for key, *_ in OPTIONS}
    if unknown:
        raise ValueError(f"not state settings: {', '.join(sorted(unknown))}")
    for key, default, text, reloadable in OPTIONS:
        name = names.get(key, key)
        if name in app.declared_options:
            continue  # the app declared it itself (its own help text)
        value = defaults.get(key, default)
        if key == "appendfsync":
            app.option(name, value, text, reloadable=True, choices=POLICIES)
        elif key in ("auto_aof_rewrite_percentage", "auto_aof_rewrite_min_size"):
            app.option(name, value, text, reloadable=True, minimum=0)
        else:
            app.option(name, value, text, reloadable=reloadable)
