"""Every limit a connection or listener enforces, with its safe default.

One ``Limits`` object is shared by the server and all its connections and read on each use, so a
reload that swaps in a new one applies to open connections at once (every limit but ``backlog``
is reloadable). A value of 0 for a count or a timeout means "no limit". Each field is a setting
(residentd.settings: ``--max-connections``, ``RESIDENTD_MAX_CONNECTIONS``, ``max_connections``
in the file), and an app may give its own defaults (``app.declare(Limits, idle_timeout=0)``).
docs/operations.md lists each limit and what a violation looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from residentd.settings import setting

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = setting(
        10_000,
        "Open connections at once, over all listeners; more are refused with ``max-connections``.",
        reload=True,
        minimum=0,
        zero="no limit",
    )
    max_connections_per_ip: int = setting(
        1_024,
        "Open connections from one peer address; more are refused with ``max-connections-per-ip``.",
        reload=True,
        minimum=0,
        zero="no limit",
    )
    max_input_buffer: int = setting(
        4 * MiB,
        "Bytes of unparsed input a connection may hold; more closes it with ``input-buffer-full``.",
        reload=True,
        minimum=1,
    )
    max_output_buffer: int = setting(
        8 * MiB,
        "Bytes of unsent output a connection may hold; more aborts it with ``output-buffer-full``.",
        reload=True,
        minimum=0,
        zero="no limit",
    )
    write_high_water: int = setting(
        256 * KiB,
        "Unsent output at which the session is paused (``on_pause_writing``) and reads stop.",
        reload=True,
        minimum=0,
    )
    write_low_water: int = setting(
        64 * KiB,
        "Unsent output at which a paused session resumes (``on_resume_writing``).",
        reload=True,
        minimum=0,
    )
    idle_timeout: float = setting(
        300.0,
        "Seconds without input before a connection is closed with ``idle-timeout``.",
        reload=True,
        minimum=0,
        zero="no timeout",
    )
    handshake_timeout: float = setting(
        10.0,
        "Seconds a new connection has to send its first message, else ``handshake-timeout``.",
        reload=True,
        minimum=0,
        zero="no timeout",
    )
    max_bad_messages: int = setting(
        10,
        "Recoverable protocol errors (bad JSON, say) a connection may make before it is closed.",
        reload=True,
        minimum=0,
        zero="no limit",
    )
    backlog: int = setting(1_024, "Listen backlog of each listening socket.", minimum=0)

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0:
                raise ValueError(f"{item.name} must be >= 0, not {value!r}")
        if self.write_low_water > self.write_high_water:
            raise ValueError("write_low_water must not be above write_high_water")
        if self.max_output_buffer and self.max_output_buffer < self.write_high_water:
            raise ValueError("max_output_buffer must be at least write_high_water")
