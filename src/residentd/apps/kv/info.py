"""INFO's text: the server, clients, memory, persistence, cpu, stats and keyspace sections.

Field names are Redis's, so tools that read INFO (redis-cli, exporters, redis-benchmark's
checks) find what they look for; the values come from residentd's own counters, read through
kv's state (the server's snapshot folds in the live connections), and from the process
through psutil.
Memory is the process's resident set: CPython does not keep an allocator total the way
jemalloc does, so ``used_memory`` and ``used_memory_rss`` are the same number.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import psutil

from residentd import __version__, speedups
from residentd.apps.kv import errors

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

REDIS_VERSION = "7.0.0"  # the Redis whose commands and replies kv follows

Section = Callable[["Client"], list[tuple[str, object]]]


def _server(s: Client) -> list[tuple[str, object]]:
    state = s.state
    uptime = int(time.time() - state.started)
    ports = [port for _, port in state.tcp_addresses()]
    return [
        ("redis_version", REDIS_VERSION),
        ("redis_mode", "standalone"),
        ("residentd_version", __version__),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("multiplexing_api", state.counters()["loop"]),
        ("python_version", platform.python_version()),
        ("residentd_c_speedups", _speedups()),
        ("process_id", os.getpid()),
        ("tcp_port", ports[0] if ports else 0),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("hz", 10),
        ("executable", sys.executable),
    ]


def _speedups() -> str:
    """Which C speedups this process runs: ``connection_core,fastpath,lines,resp_reader`` when
    they were built at install, ``none`` without a compiler or with ``RESIDENTD_PURE_PYTHON``
    set (docs/operations.md)."""
    return ",".join(sorted(speedups.loaded)) or "none"


def _clients(s: Client) -> list[tuple[str, object]]:
    state = s.state
    limits = state.limits
    return [
        ("connected_clients", state.connected_clients()),
        ("maxclients", limits.max_connections),
        ("client_recent_max_input_buffer", limits.max_input_buffer),
        ("blocked_clients", 0),
        ("pubsub_clients", len(state.subscribers)),
    ]


def _memory(s: Client) -> list[tuple[str, object]]:
    rss = psutil.Process().memory_info().rss
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [
        ("used_memory", rss),
        ("used_memory_human", _human(rss)),
        ("used_memory_rss", rss),
        ("used_memory_rss_human", _human(rss)),
        ("used_memory_peak", peak),
        ("used_memory_peak_human", _human(peak)),
        ("maxmemory", 0),
        ("maxmemory_policy", "noeviction"),
        ("mem_allocator", "pymalloc"),
    ]


def _cpu(s: Client) -> list[tuple[str, object]]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return [("used_cpu_sys", f"{usage.ru_stime:.6f}"), ("used_cpu_user", f"{usage.ru_utime:.6f}")]


def _stats(s: Client) -> list[tuple[str, object]]:
    snapshot = s.state.counters()
    db = s.db
    hub = s.state.hub
    return [
        ("total_connections_received", snapshot["accepted"]),
        ("total_commands_processed", s.state.commands),
        ("total_net_input_bytes", snapshot["bytes_in"]),
        ("total_net_output_bytes", snapshot["bytes_out"]),
        ("rejected_connections", sum(snapshot["refused"].values())),
        ("expired_keys", db.expired_keys),
        ("evicted_keys", 0),
        ("keyspace_hits", db.hits),
        ("keyspace_misses", db.misses),
        ("pubsub_channels", len(hub.channels)),
        ("pubsub_patterns", len(hub.patterns)),
    ]


def _persistence(s: Client) -> list[tuple[str, object]]:
    """Redis 7.0's persistence section, from residentd.state's figures."""
    persistence = s.state.persistence
    if persistence is None:
        return [("loading", 0), ("aof_enabled", 0)]
    figures = persistence.info()
    aof = figures["appendonly"]
    duration = figures["last_snapshot_duration"]
    rewrite = figures["last_rewrite_duration"]
    refusal = s.state.misconf()
    writing = refusal is None or not refusal.startswith(errors.MISCONF_AOF_PREFIX)
    lines: list[tuple[str, object]] = [
        ("loading", 0),
        ("async_loading", 0),
        ("rdb_changes_since_last_save", figures["changes_since_save"]),
        ("rdb_bgsave_in_progress", int(figures["snapshot_in_progress"])),
        ("rdb_last_save_time", figures["last_save_time"]),
        ("rdb_last_bgsave_status", figures["last_bgsave_status"]),
        ("rdb_last_bgsave_time_sec", -1 if duration is None else round(duration)),
        ("aof_enabled", int(aof)),
        ("aof_rewrite_in_progress", int(figures["rewrite_in_progress"])),
        ("aof_rewrite_scheduled", int(figures["rewrite_scheduled"])),
        ("aof_last_rewrite_time_sec", -1 if rewrite is None else round(rewrite)),
        ("aof_last_bgrewrite_status", figures["last_rewrite_status"]),
        ("aof_last_write_status", "ok" if writing else "err"),
    ]
    if aof:
        lines += [
            ("aof_current_size", figures["journal_size"]),
            ("aof_base_size", figures["journal_base_size"]),
            ("aof_pending_rewrite", int(figures["rewrite_scheduled"])),
            ("aof_buffer_length", figures["journal_buffer"]),
            ("aof_pending_bio_fsync", 0),
            ("aof_delayed_fsync", 0),
        ]
    return lines


def _keyspace(s: Client) -> list[tuple[str, object]]:
    db = s.db
    if not db.data:
        return []
    return [("db0", f"keys={len(db.data)},expires={len(db.expires)},avg_ttl=0")]


SECTIONS: dict[str, Section] = {
    "server": _server,
    "clients": _clients,
    "memory": _memory,
    "persistence": _persistence,
    "cpu": _cpu,
    "stats": _stats,
    "keyspace": _keyspace,
}


def info_text(s: Client, names: list[str]) -> bytes:
    """INFO's reply body for the asked sections (all of them for none, ``all``, ``default``
    or ``everything``); unknown section names are skipped, as Redis skips them."""
    wanted = [name.lower() for name in names]
    if not wanted or {"all", "default", "everything"} & set(wanted):
        wanted = list(SECTIONS)
    parts = []
    for name in SECTIONS:
        if name in wanted:
            lines = [f"# {name.capitalize()}"]
            lines += [f"{key}:{value}" for key, value in SECTIONS[name](s)]
            parts.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(parts).encode()


def _human(size: int) -> str:
    """Redis's ``bytesToHuman``: ``512B``, ``1.50K``, ``12.25M``, ``3.00G``."""
    if size < 1024:
        return f"{size}B"
    value = size / 1024
    for unit in ("K", "M"):
        if value < 1024:
            return f"{value:.2f}{unit}"
        value /= 1024
    return f"{value:.2f}G"
