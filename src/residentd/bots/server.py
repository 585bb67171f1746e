"""The server's side of a run: its RSS, open files and CPU every second, and what they mean.

A ``ServerProbe`` reads a process by pid (``--server-pid``, through psutil) or asks a residentd
daemon's admin endpoint (``--server-admin``, ``GET /status``: ``rss_bytes``, ``open_fds``,
``connections_open`` and the ``pid``, whose CPU time psutil then reads). The controller takes
one sample before any bot starts, the idle *baseline*, then one a second, each paired with the
number of bots online at that moment.

*Memory per online user* is the RSS growth over the baseline divided by the users online, taken
at the last sample with the most users online: the figure the original team read off their
bots. With ``--soak``, ``trend`` fits a least-squares line to RSS and to open fds over the
steady part of the run (from when the users were all online, after a tenth of what remains for
warm-up) and gives the slope with its 95% confidence interval; a leak is called only when the
whole interval is above zero and the fitted growth over the window is material (over 1 MiB and
1% of the RSS, or over one fd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import psutil

from residentd.daemon.control import ControlError, admin_json
from residentd.errors import ResidentdError


@dataclass
class ServerSample:
    t: float  # seconds since the load began (negative: the baseline)
    rss: int
    fds: int
    cpu_percent: float | None
    users: int = 0  # bots online at that moment
    connections: int | None = None  # connections the daemon reports open (admin only)

    def as_dict(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 3),
            "rss_bytes": self.rss,
            "fds": self.fds,
            "cpu_percent": self.cpu_percent,
            "users": self.users,
            "connections": self.connections,
        }


class ProbeError(ResidentdError, RuntimeError):
    """The server cannot be observed (no such pid, admin endpoint unreachable)."""


class ServerProbe:
    """Samples one server process by pid or through its admin endpoint."""

    def __init__(
        self, pid: int | None = None, admin: str | None = None, token: str | None = None
    ) -> None:
        if (pid is None) == (admin is None):
            raise ValueError("give a pid or an admin address")
        self.admin = admin
        self.token = token
        self.gone = False
        if admin is not None:
            pid = int(self._status()["pid"])
        assert pid is not None
        self.pid = pid
        try:
            self.process = psutil.Process(pid)
            self.process.cpu_percent(None)  # starts the CPU clock
        except psutil.Error as exc:
            raise ProbeError(f"cannot observe server pid {pid}: {exc}") from None

    def describe(self) -> str:
        return f"admin {self.admin} (pid {self.pid})" if self.admin else f"pid {self.pid}"

    def _status(self) -> dict[str, Any]:
        assert self.admin is not None
        try:
            status: dict[str, Any] = admin_json(self.admin, "GET", "/status", self.token)
        except ControlError as exc:
            raise ProbeError(str(exc)) from None
        return status

    def sample(self, t: float, users: int = 0) -> ServerSample | None:
        """One sample, or ``None`` once the server is gone."""
        if self.gone:
            return None
        connections = None
        try:
            cpu = self.process.cpu_percent(None)
            if self.admin is not None:
                status = self._status()
                rss, fds = int(status["rss_bytes"]), int(status["open_fds"])
                connections = int(status.get("connections_open", 0))
            else:
                with self.process.oneshot():
                    rss, fds = self.process.memory_info().rss, self.process.num_fds()
        except (psutil.Error, ProbeError, KeyError, ValueError):
            self.gone = True
            return None
        return ServerSample(t, rss, fds, cpu, users, connections)


def memory_per_user(baseline: ServerSample, samples: list[ServerSample]) -> dict[str, Any]:
    """RSS growth over the baseline per user online, at the last sample with the most users."""
    best: ServerSample | None = None
    for sample in samples:
        if sample.users > 0 and (best is None or sample.users >= best.users):
            best = sample
    result: dict[str, Any] = {
        "baseline_rss_bytes": baseline.rss,
        "baseline_fds": baseline.fds,
        "peak_rss_bytes": max((s.rss for s in samples), default=baseline.rss),
        "max_fds": max((s.fds for s in samples), default=baseline.fds),
        "users_at_measure": 0,
        "rss_at_measure_bytes": None,
        "rss_growth_bytes": None,
        "memory_per_user_bytes": None,
    }
    cpu = [s.cpu_percent for s in samples if s.cpu_percent is not None]
    result["cpu_percent_mean"] = sum(cpu) / len(cpu) if cpu else None
    result["cpu_percent_max"] = max(cpu) if cpu else None
    if best is not None:
        growth = best.rss - baseline.rss
        result.update(
            users_at_measure=best.users,
            rss_at_measure_bytes=best.rss,
            rss_growth_bytes=growth,
            memory_per_user_bytes=growth / best.users,
        )
    return result


@dataclass
class Fit:
    """A least-squares line y = intercept + slope * t, with the slope's standard error."""

    slope: float
    intercept: float
    stderr: float
    r2: float
    n: int

    @property
    def low(self) -> float:
        return self.slope - 1.96 * self.stderr

    @property
    def high(self) -> float:
        return self.slope + 1.96 * self.stderr


def fit_line(ts: list[float], ys: list[float]) -> Fit | None:
    n = len(ts)
    if n < 3:
        return None
    mean_t = sum(ts) / n
    mean_y = sum(ys) / n
    stt = sum((t - mean_t) ** 2 for t in ts)
    if stt == 0:
        return None
    sty = sum((t - mean_t) * (y - mean_y) for t, y in zip(ts, ys, strict=True))
    slope = sty / stt
    intercept = mean_y - slope * mean_t
    residual = sum((y - intercept - slope * t) ** 2 for t, y in zip(ts, ys, strict=True))
    syy = sum((y - mean_y) ** 2 for y in ys)
    r2 = 1.0 - residual / syy if syy > 0 else 1.0
    stderr = math.sqrt(residual / (n - 2) / stt)
    return Fit(slope, intercept, stderr, r2, n)


def steady_window(samples: list[ServerSample]) -> list[ServerSample]:
    """The samples after every user was online, less a tenth of the rest for warm-up."""
    if not samples:
        return []
    peak = max(s.users for s in samples)
    start = next((i for i, s in enumerate(samples) if s.users >= 0.99 * peak), 0)
    rest = samples[start:]
    return rest[len(rest) // 10 :]


def trend(samples: list[ServerSample]) -> dict[str, Any]:
    """The soak verdict: RSS and fd slopes over the steady window, and whether they leak."""
    window = steady_window(samples)
    result: dict[str, Any] = {"window_seconds": 0.0, "samples": len(window)}
    if len(window) >= 2:
        result["window_seconds"] = window[-1].t - window[0].t
    ts = [s.t for s in window]
    for name, values, floor in (
        ("rss", [float(s.rss) for s in window], None),
        ("fds", [float(s.fds) for s in window], 1.0),
    ):
        fit = fit_line(ts, values)
        if fit is None:
            result[name] = {"verdict": "not enough samples"}
            continue
        span = result["window_seconds"]
        growth = fit.slope * span
        if floor is None:
            mean = sum(values) / len(values)
            floor = max(1024 * 1024, 0.01 * mean)
        leaking = fit.low > 0 and growth > floor
        result[name] = {
            "slope_per_hour": fit.slope * 3600,
            "ci95_per_hour": [fit.low * 3600, fit.high * 3600],
            "r2": fit.r2,
            "growth_over_window": growth,
            "verdict": "leak" if leaking else "stable",
        }
    verdicts = [result[k].get("verdict") for k in ("rss", "fds")]
    result["verdict"] = (
        "leak suspected"
        if "leak" in verdicts
        else "no leak"
        if all(v == "stable" for v in verdicts)
        else "not enough samples"
    )
    return result
