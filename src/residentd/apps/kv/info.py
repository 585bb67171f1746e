"""INFO's text: Redis 7.0's sections, with Redis's names, order and fields.

Field names are Redis's, so tools that read INFO (redis-cli, exporters, redis-py's test
fixtures, redis-benchmark's checks) find what they look for; the values come from residentd's
own counters, read through kv's state (the server's snapshot folds in the live connections),
and from the process through psutil. A field kv has no use for (replication offsets, Lua
memory, defragmentation, forks of modules) is still there, with the value an idle standalone
Redis without that feature shows, never left out. Commandstats, Errorstats and Latencystats
are empty: kv keeps no per-command figures.
``used_memory`` is what the allocators hand out (memory.py: pymalloc's allocated blocks and
malloc's bytes in use), measured when INFO asks, as ``maxmemory`` compares it;
``used_memory_rss`` is the process's resident set, and their ratio the fragmentation.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
import zlib
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING

import psutil

from residentd import __version__, speedups
from residentd.apps.kv import errors

if TYPE_CHECKING:
    from residentd.apps.kv.client import Client

REDIS_VERSION = "7.0.0"  # the Redis whose commands and replies kv follows

Fields = list[tuple[str, object]]
Section = Callable[["Client"], Fields]

# This process's random identities, as Redis makes them at start (40 hex digits each).
RUN_ID = os.urandom(20).hex()
REPLICATION_ID = os.urandom(20).hex()


def _zeros(names: str, value: object = 0) -> Fields:
    """Fields kv has no figure for, each with the value an idle standalone Redis shows."""
    return [(name, value) for name in names.split()]


def _server(s: Client) -> Fields:
    state = s.state
    now = time.time()
    uptime = int(now - state.started)
    ports = [port for _, port in state.tcp_addresses()]
    return [
        ("redis_version", REDIS_VERSION),
        ("redis_git_sha1", "00000000"),
        ("redis_git_dirty", 0),
        ("redis_build_id", f"{zlib.crc32(__version__.encode()):016x}"),
        ("redis_mode", "standalone"),
        ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
        ("monotonic_clock", "POSIX clock_gettime"),
        ("multiplexing_api", state.counters()["loop"]),
        ("atomicvar_api", "c11-builtin"),
        ("gcc_version", "0.0.0"),
        ("process_id", os.getpid()),
        ("process_supervised", "no"),
        ("run_id", RUN_ID),
        ("tcp_port", ports[0] if ports else 0),
        ("server_time_usec", int(now * 1_000_000)),
        ("uptime_in_seconds", uptime),
        ("uptime_in_days", uptime // 86400),
        ("hz", 10),
        ("configured_hz", 10),
        ("lru_clock", int(now) & ((1 << 24) - 1)),
        ("executable", sys.executable),
        ("config_file", ""),
        ("io_threads_active", 0),
        ("residentd_version", __version__),
        ("python_version", platform.python_version()),
        ("residentd_c_speedups", _speedups()),
    ]


def _speedups() -> str:
    """Which C speedups this process runs: ``connection_core,fastpath,lines,resp_reader`` when
    they were built at install, ``none`` without a compiler or with ``RESIDENTD_PURE_PYTHON``
    set (docs/operations.md)."""
    return ",".join(sorted(speedups.loaded)) or "none"


def _clients(s: Client) -> Fields:
    state = s.state
    limits = state.limits
    return [
        ("connected_clients", state.connected_clients()),
        ("cluster_connections", 0),
        ("maxclients", limits.max_connections),
        ("client_recent_max_input_buffer", limits.max_input_buffer),
        ("client_recent_max_output_buffer", 0),
        ("blocked_clients", len(state.blocking)),
        ("tracking_clients", 0),
        ("clients_in_timeout_table", 0),
        ("pubsub_clients", len(state.subscribers)),
    ]


def _memory(s: Client) -> Fields:
    state = s.state
    memory = state.memory
    used = memory.measure()
    peak = memory.peak
    rss = psutil.Process().memory_info().rss
    startup = memory.startup
    dataset = max(used - startup, 0)
    total = psutil.virtual_memory().total
    eviction = state.eviction
    limit = eviction.maxmemory if eviction is not None else 0
    ratio = f"{rss / used:.2f}"
    return [
        ("used_memory", used),
        ("used_memory_human", _human(used)),
        ("used_memory_rss", rss),
        ("used_memory_rss_human", _human(rss)),
        ("used_memory_peak", peak),
        ("used_memory_peak_human", _human(peak)),
        ("used_memory_peak_perc", f"{used * 100 / peak:.2f}%"),
        ("used_memory_overhead", startup),
        ("used_memory_startup", startup),
        ("used_memory_dataset", dataset),
        ("used_memory_dataset_perc", f"{dataset * 100 / used:.2f}%"),
        ("allocator_allocated", used),
        ("allocator_active", rss),
        ("allocator_resident", rss),
        ("total_system_memory", total),
        ("total_system_memory_human", _human(total)),
        *_zeros("used_memory_lua used_memory_vm_eval"),
        ("used_memory_lua_human", "0B"),
        ("used_memory_scripts_eval", 0),
        ("number_of_cached_scripts", len(s.state.scripts.cache) if s.state.scripts else 0),
        *_zeros(
            "number_of_functions number_of_libraries used_memory_vm_functions used_memory_vm_total"
        ),
        ("used_memory_vm_total_human", "0B"),
        *_zeros("used_memory_functions used_memory_scripts"),
        ("used_memory_scripts_human", "0B"),
        ("maxmemory", limit),
        ("maxmemory_human", _human(limit)),
        ("maxmemory_policy", state.options.get("maxmemory_policy", "noeviction")),
        ("allocator_frag_ratio", "1.00"),
        ("allocator_frag_bytes", 0),
        ("allocator_rss_ratio", "1.00"),
        ("allocator_rss_bytes", 0),
        ("rss_overhead_ratio", "1.00"),
        ("rss_overhead_bytes", 0),
        ("mem_fragmentation_ratio", ratio),
        ("mem_fragmentation_bytes", rss - used),
        *_zeros(
            "mem_not_counted_for_evict mem_replication_backlog mem_total_replication_buffers "
            "mem_clients_slaves mem_clients_normal mem_cluster_links mem_aof_buffer"
        ),
        ("mem_allocator", "pymalloc"),
        *_zeros("active_defrag_running lazyfree_pending_objects lazyfreed_objects"),
    ]


def _cpu(s: Client) -> Fields:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    thread = resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF))
    return [
        ("used_cpu_sys", f"{usage.ru_stime:.6f}"),
        ("used_cpu_user", f"{usage.ru_utime:.6f}"),
        ("used_cpu_sys_children", f"{children.ru_stime:.6f}"),
        ("used_cpu_user_children", f"{children.ru_utime:.6f}"),
        ("used_cpu_sys_main_thread", f"{thread.ru_stime:.6f}"),
        ("used_cpu_user_main_thread", f"{thread.ru_utime:.6f}"),
    ]


def _stats(s: Client) -> Fields:
    snapshot = s.state.counters()
    base = s.state.stats_base
    dbs = s.state.dbs
    hub = s.state.hub
    return [
        ("total_connections_received", snapshot["accepted"] - base.get("accepted", 0)),
        ("total_commands_processed", s.state.commands),
        ("instantaneous_ops_per_sec", 0),
        ("total_net_input_bytes", snapshot["bytes_in"] - base.get("bytes_in", 0)),
        ("total_net_output_bytes", snapshot["bytes_out"] - base.get("bytes_out", 0)),
        *_zeros("total_net_repl_input_bytes total_net_repl_output_bytes"),
        *_zeros(
            "instantaneous_input_kbps instantaneous_output_kbps instantaneous_input_repl_kbps "
            "instantaneous_output_repl_kbps",
            "0.00",
        ),
        ("rejected_connections", sum(snapshot["refused"].values()) - base.get("refused", 0)),
        *_zeros("sync_full sync_partial_ok sync_partial_err"),
        ("expired_keys", sum(db.expired_keys for db in dbs)),
        ("expired_stale_perc", "0.00"),
        *_zeros(
            "expired_time_cap_reached_count expire_cycle_cpu_milliseconds",
        ),
        ("evicted_keys", s.state.evicted_keys),
        *_zeros("evicted_clients total_eviction_exceeded_time current_eviction_exceeded_time"),
        ("keyspace_hits", sum(db.hits for db in dbs)),
        ("keyspace_misses", sum(db.misses for db in dbs)),
        ("pubsub_channels", len(hub.channels)),
        ("pubsub_patterns", len(hub.patterns)),
        ("pubsubshard_channels", len(hub.shard_channels)),
        *_zeros(
            "latest_fork_usec total_forks migrate_cached_sockets "
            "slave_expires_tracked_keys active_defrag_hits active_defrag_misses "
            "active_defrag_key_hits active_defrag_key_misses total_active_defrag_time "
            "current_active_defrag_time tracking_total_keys tracking_total_items "
            "tracking_total_prefixes unexpected_error_replies total_error_replies "
            "dump_payload_sanitizations total_reads_processed total_writes_processed "
            "io_threaded_reads_processed io_threaded_writes_processed reply_buffer_shrinks "
            "reply_buffer_expands"
        ),
    ]


def _replication(s: Client) -> Fields:
    """A master without replicas, as a standalone Redis reports itself."""
    return [
        ("role", "master"),
        ("connected_slaves", 0),
        ("master_failover_state", "no-failover"),
        ("master_replid", REPLICATION_ID),
        ("master_replid2", "0" * 40),
        ("master_repl_offset", 0),
        ("second_repl_offset", -1),
        ("repl_backlog_active", 0),
        ("repl_backlog_size", 1024 * 1024),
        ("repl_backlog_first_byte_offset", 0),
        ("repl_backlog_histlen", 0),
    ]


def _persistence(s: Client) -> Fields:
    """Redis 7.0's persistence section, from residentd.state's figures; without persistence,
    what a Redis that never saved shows."""
    figures = dict(_persistence_figures(s))
    defaults = dict(_PERSISTENCE_DEFAULTS, rdb_last_save_time=int(s.state.started))
    lines = [(name, figures.pop(name, value)) for name, value in defaults.items()]
    return lines + list(figures.items())


_PERSISTENCE_DEFAULTS: Fields = [
    *_zeros("loading async_loading current_cow_peak current_cow_size current_cow_size_age"),
    ("current_fork_perc", "0.00"),
    *_zeros(
        "current_save_keys_processed current_save_keys_total rdb_changes_since_last_save "
        "rdb_bgsave_in_progress rdb_last_save_time"
    ),
    ("rdb_last_bgsave_status", "ok"),
    ("rdb_last_bgsave_time_sec", -1),
    ("rdb_current_bgsave_time_sec", -1),
    *_zeros(
        "rdb_saves rdb_last_cow_size rdb_last_load_keys_expired rdb_last_load_keys_loaded "
        "aof_enabled aof_rewrite_in_progress aof_rewrite_scheduled"
    ),
    ("aof_last_rewrite_time_sec", -1),
    ("aof_current_rewrite_time_sec", -1),
    ("aof_last_bgrewrite_status", "ok"),
    *_zeros("aof_rewrites aof_rewrites_consecutive_failures"),
    ("aof_last_write_status", "ok"),
    *_zeros("aof_last_cow_size module_fork_in_progress module_fork_last_cow_size"),
]


def _persistence_figures(s: Client) -> Fields:
    persistence = s.state.persistence
    if persistence is None:
        return []
    figures = persistence.info()
    aof = figures["appendonly"]
    duration = figures["last_snapshot_duration"]
    rewrite = figures["last_rewrite_duration"]
    refusal = s.state.misconf()
    writing = refusal is None or not refusal.startswith(errors.MISCONF_AOF_PREFIX)
    lines: Fields = [
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


def _nothing(s: Client) -> Fields:
    return []


def _cluster(s: Client) -> Fields:
    return [("cluster_enabled", 0)]


def _keyspace(s: Client) -> Fields:
    """One ``dbN`` line for each database that holds keys."""
    fields: Fields = []
    now = time.time() * 1000
    for db in s.state.dbs:
        if not db.data:
            continue
        # Redis's avg_ttl is an estimate from the expiry cycle's samples; kv samples 100 keys.
        sample = [max(when - now, 0) for when in islice(db.expires.values(), 100)]
        average = int(sum(sample) / len(sample)) if sample else 0
        fields.append(
            (f"db{db.index}", f"keys={len(db.data)},expires={len(db.expires)},avg_ttl={average}")
        )
    return fields


# Redis's sections in its order, by name: (title, fields, in INFO's default set).
SECTIONS: dict[str, tuple[str, Section, bool]] = {
    "server": ("Server", _server, True),
    "clients": ("Clients", _clients, True),
    "memory": ("Memory", _memory, True),
    "persistence": ("Persistence", _persistence, True),
    "stats": ("Stats", _stats, True),
    "replication": ("Replication", _replication, True),
    "cpu": ("CPU", _cpu, True),
    "modules": ("Modules", _nothing, True),
    "commandstats": ("Commandstats", _nothing, False),
    "errorstats": ("Errorstats", _nothing, True),
    "latencystats": ("Latencystats", _nothing, False),
    "cluster": ("Cluster", _cluster, True),
    "keyspace": ("Keyspace", _keyspace, True),
}
_ALIASES = {"module_list": "modules"}


def info_text(s: Client, names: list[str]) -> bytes:
    """INFO's reply body for the asked sections, as Redis 7.0 picks them: none or ``default``
    the default set, ``all`` and ``everything`` every section, other names their section
    (several at once, in Redis's order whatever the order asked); unknown names are skipped."""
    wanted: set[str] = set()
    for name in [name.lower() for name in names] or ["default"]:
        if name == "default":
            wanted.update(key for key, (_, _, default) in SECTIONS.items() if default)
        elif name in ("all", "everything"):
            wanted.update(SECTIONS)
        else:
            wanted.add(_ALIASES.get(name, name))
    parts = []
    for name, (title, section, _) in SECTIONS.items():
        if name in wanted:
            lines = [f"# {title}"]
            lines += [f"{key}:{value}" for key, value in section(s)]
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
