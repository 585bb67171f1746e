"""Every limit a connection or listener enforces, with its safe default.

One ``Limits`` object is shared by the server and all its connections and read on each use, so a
reload that swaps in a new one applies to open connections at once. A value of 0 for a count or
a timeout means "no limit". docs/operations.md lists each limit and what a violation looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

KiB = 1024
MiB = 1024 * KiB


def _limit(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = _limit(
        10_000,
        "Open connections at once, over all listeners; more are refused with ``max-connections``.",
    )
    max_connections_per_ip: int = _limit(
        1_024,
        "Open connections from one peer address; more are refused with ``max-connections-per-ip``.",
    )
    max_input_buffer: int = _limit(
        4 * MiB,
        "Bytes of unparsed input a connection may hold; more closes it with ``input-buffer-full``.",
    )
    max_output_buffer: int = _limit(
        8 * MiB,
        "Bytes of unsent output a connection may hold; more aborts it with ``output-buffer-full``.",
    )
    write_high_water: int = _limit(
        256 * KiB,
        "Unsent output at which the session is paused (``on_pause_writing``) and reads stop.",
    )
    write_low_water: int = _limit(
        64 * KiB, "Unsent output at which a paused session resumes (``on_resume_writing``)."
    )
    idle_timeout: float = _limit(
        300.0, "Seconds without input before a connection is closed with ``idle-timeout``."
    )
    handshake_timeout: float = _limit(
        10.0, "Seconds a new connection has to send its first message, else ``handshake-timeout``."
    )
    max_bad_messages: int = _limit(
        10, "Recoverable protocol errors (bad JSON, say) a connection may make before it is closed."
    )
    backlog: int = _limit(1_024, "Listen backlog of each listening socket.")

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0:
                raise ValueError(f"{item.name} must be >= 0, not {value!r}")
        if self.write_low_water > self.write_high_water:
            raise ValueError("write_low_water must not be above write_high_water")
        if self.max_output_buffer and self.max_output_buffer < self.write_high_water:
            raise ValueError("max_output_buffer must be at least write_high_water")
