"""The admin endpoint's ``/metrics``: the daemon's status in Prometheus text exposition format.

Every family has its ``# HELP`` and ``# TYPE`` lines, and every labelled family is there from the
start: the core's refusal, close and error reasons are written with 0 before anything has
happened, so a query over them (``rate(...)``, an alert on ``increase(...)``) has a series from the
first scrape. Apps' own reasons appear once they have been counted. Beside the ``residentd_*``
families go the standard ``process_*`` ones and ``residentd_build_info``, which is 1 and carries
the version, Python, event loop and C speedups as labels.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from typing import Any

from residentd.errors import CloseCode

__all__ = ["CLOSE_REASONS", "ERROR_KINDS", "REFUSE_REASONS", "prometheus_text"]

#: Why the core refuses a connection at the door (``Server.admit``).
REFUSE_REASONS = (
    CloseCode.MAX_CONNECTIONS,
    CloseCode.MAX_CONNECTIONS_PER_IP,
    CloseCode.SERVER_SHUTDOWN,
)
#: The errors the core itself raises (limits and timeouts); codecs and apps add their own.
ERROR_KINDS = (
    CloseCode.HANDSHAKE_TIMEOUT,
    CloseCode.IDLE_TIMEOUT,
    CloseCode.INPUT_BUFFER_FULL,
    CloseCode.INTERNAL_ERROR,
    CloseCode.TOO_MANY_BAD_MESSAGES,
)
#: Why the core closes a connection: the errors above, and these.
CLOSE_REASONS = (
    CloseCode.CLOSED_BY_PEER,
    CloseCode.CONNECTION_RESET,
    CloseCode.OUTPUT_BUFFER_FULL,
    CloseCode.SERVER_SHUTDOWN,
    CloseCode.SHUTDOWN_TIMEOUT,
    *ERROR_KINDS,
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())


class _Exposition:
    """Lines of one exposition: each family's HELP and TYPE, then its samples."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, str], Any]],
        *,
        app_label: bool = True,
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            merged = {"app": self.app, **labels} if app_label else labels
            rendered = f"{{{_labels(merged)}}}" if merged else ""
            self.lines.append(f"{name}{rendered} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: Any, app_label: bool = True) -> None:
        self.family(name, kind, help_text, [({}, value)], app_label=app_label)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _by_reason(
    counts: dict[str, int], known: Iterable[str], label: str
) -> list[tuple[dict[str, str], int]]:
    """Samples of a labelled counter: every known reason (0 until counted), then the rest."""
    reasons = dict.fromkeys(known, 0)
    reasons.update(counts)
    return [({label: reason}, count) for reason, count in sorted(reasons.items())]


def prometheus_text(status: dict[str, Any]) -> str:
    """Render a daemon's ``/status`` as Prometheus text exposition format (version 0.0.4)."""
    out = _Exposition(str(status.get("app", "")))
    build = {
        "version": str(status.get("version", "")),
        "python": platform.python_version(),
        "loop": str(status.get("loop", "")),
        "speedups": ",".join(status.get("speedups", [])) or "none",
    }
    out.family("residentd_build_info", "gauge", "residentd build; always 1", [(build, 1)])
    out.one(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        status.get("started_at", 0.0),
        app_label=False,
    )
    out.one("residentd_connections_open", "gauge", "Open connections.", status["connections_open"])
    out.one(
        "residentd_connections_total",
        "counter",
        "Connections accepted since the start.",
        status["connections_total"],
    )
    out.family(
        "residentd_refused_total",
        "counter",
        "Connections refused at the door, by reason.",
        _by_reason(status["refused"], REFUSE_REASONS, "reason"),
    )
    out.family(
        "residentd_closed_total",
        "counter",
        "Connections closed, by reason.",
        _by_reason(status["closed"], CLOSE_REASONS, "reason"),
    )
    out.family(
        "residentd_errors_total",
        "counter",
        "Protocol errors and limit violations, by kind.",
        _by_reason(status["errors"], ERROR_KINDS, "kind"),
    )
    for name, what in (
        ("messages_in", "Messages received."),
        ("messages_out", "Messages sent."),
        ("bytes_in", "Bytes received."),
        ("bytes_out", "Bytes sent."),
    ):
        out.one(f"residentd_{name}_total", "counter", what, status[name])
    for name, what in (
        ("connections", "Connections a stop's deadline cut off with replies undelivered."),
        ("bytes", "Reply bytes a stop's deadline cut off undelivered."),
    ):
        out.one(f"residentd_stop_dropped_{name}_total", "counter", what, status[f"dropped_{name}"])
    out.family(
        "residentd_reloads_total",
        "counter",
        "Reloads (SIGHUP or POST /reload), by result.",
        [
            ({"result": "ok"}, status.get("reloads", 0)),
            ({"result": "failed"}, status.get("reloads_failed", 0)),
        ],
    )
    out.family(
        "residentd_log_records_dropped_total",
        "counter",
        "Log records not written, by why: the log queue was full, or the rate limit held them.",
        [
            ({"why": "queue-full"}, status.get("log_records_dropped", 0)),
            ({"why": "rate-limited"}, status.get("log_records_suppressed", 0)),
        ],
    )
    lag = status.get("loop_lag", {})
    out.one(
        "residentd_loop_lag_max_seconds",
        "gauge",
        "Longest event loop lag over the last minute.",
        lag.get("max_ms", 0.0) / 1000,
    )
    out.one(
        "residentd_loop_lag_p99_seconds",
        "gauge",
        "99th percentile of the event loop lag over the last minute.",
        lag.get("p99_ms", 0.0) / 1000,
    )
    out.one("residentd_rss_bytes", "gauge", "Resident memory in bytes.", status.get("rss_bytes", 0))
    out.one("residentd_open_fds", "gauge", "Open file descriptors.", status.get("open_fds", 0))
    out.one(
        "residentd_uptime_seconds", "gauge", "Seconds since the start.", status.get("uptime", 0)
    )
    state = status.get("persistence")
    if state:
        _state_families(out, state)
    return out.text()


def _state_families(out: _Exposition, state: dict[str, Any]) -> None:
    """The durable state's families (residentd.state), present when the app persists."""
    for name, kind, help_text, value in (
        (
            "writable",
            "gauge",
            "1 while the journal accepts writes, 0 after a disk error.",
            state["writable"],
        ),
        (
            "journal_bytes",
            "gauge",
            "Size of the journal's incremental files.",
            state["journal_size"],
        ),
        (
            "fsync_lag_seconds",
            "gauge",
            "Seconds since the journal was last fsynced with data waiting.",
            state["fsync_lag"],
        ),
        (
            "changes_since_snapshot",
            "gauge",
            "Writes since the last snapshot.",
            state["changes_since_save"],
        ),
        (
            "last_snapshot_time_seconds",
            "gauge",
            "Unix time of the last good snapshot.",
            state["last_save_time"],
        ),
        (
            "last_snapshot_duration_seconds",
            "gauge",
            "How long the last snapshot took.",
            state["last_snapshot_duration"] or 0,
        ),
        (
            "disk_error",
            "gauge",
            "1 while the last disk error keeps writes refused.",
            state["last_disk_error"] is not None and not state["writable"],
        ),
    ):
        out.one(f"residentd_state_{name}", kind, help_text, value)


# -- workers: one scrape for a master and its workers -----------------------------------------


def merge_expositions(texts: dict[str, str], label: str) -> str:
    """One exposition of several (each worker's, by its ``label`` value): every sample gets
    ``label="<key>"`` first among its labels, and each family keeps one HELP and one TYPE,
    its samples from every text together."""
    families: dict[str, list[str]] = {}
    heads: dict[str, list[str]] = {}
    for value, text in texts.items():
        family = ""
        tag = f'{label}="{_escape(value)}"'
        for line in text.splitlines():
            if not line:
                continue
            if line.startswith("#"):
                parts = line.split(" ", 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    head = heads.setdefault(family, [])
                    if not any(seen.split(" ", 2)[1] == parts[1] for seen in head):
                        head.append(line)
                    families.setdefault(family, [])
                continue
            name, brace, rest = line.partition("{")
            if brace:
                labelled = (
                    f"{name}{{{tag}}}{rest[1:]}"
                    if rest.startswith("}")
                    else f"{name}{{{tag},{rest}"
                )
            else:
                name, _, number = line.partition(" ")
                labelled = f"{name}{{{tag}}} {number}"
            families.setdefault(family, []).append(labelled)
    lines = []
    for family, samples in families.items():
        lines.extend(heads.get(family, []))
        lines.extend(samples)
    return "\n".join(lines) + "\n" if lines else ""


def worker_families(status: dict[str, Any]) -> str:
    """The master's own families: its workers and their restarts."""
    out = _Exposition(str(status.get("app", "")))
    states: dict[str, int] = {"starting": 0, "ready": 0, "retiring": 0}
    for row in status.get("workers", []):
        states[row["state"]] = states.get(row["state"], 0) + 1
    out.one(
        "residentd_workers_configured",
        "gauge",
        "Worker processes the master keeps running (the workers setting).",
        status.get("workers_configured", 0),
    )
    out.family(
        "residentd_workers",
        "gauge",
        "Worker processes alive, by state.",
        [({"state": state}, count) for state, count in sorted(states.items())],
    )
    out.one(
        "residentd_worker_restarts_total",
        "counter",
        "Workers the master started again after one died or was killed.",
        status.get("worker_restarts", 0),
    )
    out.one(
        "residentd_master_rss_bytes",
        "gauge",
        "Resident memory of the master process in bytes.",
        status.get("rss_bytes", 0),
    )
    return out.text()
