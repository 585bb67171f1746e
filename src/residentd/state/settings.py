"""The settings of durable state: one frozen ``StateSettings``, under Redis's names.

``Persistence.attach`` declares it on an app (``App.declare``), renamed as the app wants (chat
calls its folder ``state_dir``) and with the app's defaults; ``StateSettings.of`` reads the
values in force. A ``save`` schedule is Redis's: pairs of "seconds changes", a snapshot being
due once at least ``changes`` writes were made and ``seconds`` went by since the last one
("900 1 300 10"; "" for none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from residentd.settings import build, setting
from residentd.state.journal import POLICIES

MIB = 1 << 20


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


def _save_schedule(text: str) -> str | None:
    """Why ``text`` is not a ``save`` schedule, or None."""
    try:
        parse_save(text)
    except ValueError as exc:
        return str(exc).partition(": ")[2]
    return None


@dataclass(frozen=True, slots=True)
class StateSettings:
    dir: str | None = setting(
        ".", "folder of the journal and snapshot files (not set: the state is in memory only)"
    )
    appendonly: bool = setting(
        False, "keep a journal of every write (replayed at start-up)", reload=True
    )
    appendfsync: str = setting(
        "everysec",
        "when the journal is fsynced: always, everysec or no",
        reload=True,
        choices=POLICIES,
    )
    save: str = setting(
        "",
        'snapshot schedule, pairs of "seconds changes" (e.g. "900 1 300 10")',
        reload=True,
        check=_save_schedule,
    )
    auto_aof_rewrite_percentage: int = setting(
        100,
        "compact the journal when it grew by this percent since the last compaction (0: never)",
        reload=True,
        minimum=0,
    )
    auto_aof_rewrite_min_size: int = setting(
        64 * MIB, "do not compact a journal smaller than this", reload=True, minimum=0
    )

    @property
    def save_points(self) -> list[tuple[int, int]]:
        return parse_save(self.save or "")

    @classmethod
    def of(cls, options: Mapping[str, Any], names: Mapping[str, str]) -> StateSettings:
        """The settings in ``options`` (an app's, by the names it gives them)."""
        return build(cls, options, names)
