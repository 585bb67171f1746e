"""The results of a run: one document, shown as a table, written as JSON, CSV and HTML.

``build_results`` turns the merged statistics, the server samples and the run's settings into
one plain dict, the *results document*; every output is a view of it, so the JSON file, the CSV
files, the HTML report and the terminal table always agree. docs/bots.md lists every field.

* ``print_summary``: the final table per step (count, errors, rps, p50, p90, p99, p99.9, max),
  the totals, the errors by kind and the server figures, with rich.
* ``write_json``: the whole document.
* ``write_csv``: ``PREFIX_steps.csv`` (one row per step and a ``total`` row) and
  ``PREFIX_timeline.csv`` (one row per second).
* ``write_html``: ``DIR/index.html``, self-contained: styles and charts inline (SVG drawn here,
  no script, no CDN), so it opens from disk anywhere. Charts over time: throughput and errors,
  latency percentiles, users online, server RSS.
"""

from __future__ import annotations

import csv
import html
import json
import math
import os
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from residentd import __version__
from residentd.bots.server import ServerSample, memory_per_user, trend
from residentd.bots.stats import RunStats, StepTotals

# A generator whose own loop lags more than this is too busy to time requests well.
SATURATED_LAG_MS = 50.0
# Steps that are not requests: a connection being opened, a whole session.
NOT_REQUESTS = ("connect", "session")
STEP_COLUMNS = ("name", "count", "ok", "errors", "rps", "mean_ms", "p50_ms", "p90_ms",
                "p99_ms", "p999_ms", "max_ms")  # fmt: skip
TIMELINE_COLUMNS = ("t", "rps", "errors", "users", "late", "dropped", "p50_ms", "p90_ms",
                    "p99_ms", "max_ms", "generator_lag_ms", "generator_cpu_percent",
                    "server_rss_bytes", "server_fds", "server_cpu_percent")  # fmt: skip


def build_results(
    *,
    settings: dict[str, Any],
    stats: RunStats,
    elapsed: float,
    started: float,
    probe: str | None,
    baseline: ServerSample | None,
    samples: list[ServerSample],
    soak: bool,
    generator_errors: list[str],
) -> dict[str, Any]:
    """The results document (see docs/bots.md for every field)."""
    steps = [stats.steps[name].summary(elapsed) for name in sorted(stats.steps)]
    requests = StepTotals("requests")
    errors: dict[str, int] = {}
    for step in stats.steps.values():
        for kind, n in step.errors.items():
            errors[f"{step.name}: {kind}"] = n
        if step.name in NOT_REQUESTS:
            continue
        requests.ok += step.ok
        for kind, n in step.errors.items():
            requests.errors[kind] = requests.errors.get(kind, 0) + n
        requests.histogram.add(step.histogram)
    total = requests.summary(elapsed)
    by_second = {round(s.t): s for s in samples}
    timeline = []
    last_second = math.ceil(settings["load"]["duration"])
    for point in stats.timeline:
        if point.second > last_second:
            continue  # the tail after the end: in the totals, not a second of the run
        row = point.as_dict()
        sample = by_second.get(point.second)
        row["server_rss_bytes"] = sample.rss if sample else None
        row["server_fds"] = sample.fds if sample else None
        row["server_cpu_percent"] = sample.cpu_percent if sample else None
        timeline.append(row)
    connect = stats.steps.get("connect")
    server = None
    if probe is not None and baseline is not None:
        server = {
            "source": probe,
            **memory_per_user(baseline, samples),
            "samples": [s.as_dict() for s in [baseline, *samples]],
            "soak": trend(samples) if soak else None,
        }
    return {
        "tool": "residentd bots",
        "version": __version__,
        **settings,
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "elapsed": round(elapsed, 3),
        "summary": {
            "requests": total["count"],
            "errors": sum(errors.values()),
            "request_errors": total["errors"],
            "rps": total["rps"],
            **{k: total[k] for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms")},
            "max_ms": total["max_ms"],
            "connects": connect.count if connect else 0,
            "connect_errors": connect.error_count if connect else 0,
            "users_peak": stats.peak_users,
            "users_online_end": timeline[-1]["users"] if timeline else 0,
            "late": stats.late,
            "dropped": stats.dropped,
            "pushes": stats.pushes,
            "generator_lag_max_ms": max((p["generator_lag_ms"] for p in timeline), default=0.0),
            "generator_cpu_max_percent": max(
                (p["generator_cpu_percent"] for p in timeline), default=0.0
            ),
        },
        "steps": steps,
        "errors": dict(sorted(errors.items(), key=lambda item: -item[1])),
        "server": server,
        "timeline": timeline,
        "generator_errors": generator_errors,
        "status": {"exit_code": 0, "ok": True, "reason": ""},
    }


# -- terminal ------------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def steps_table(results: dict[str, Any]) -> Table:
    table = Table(title=f"{results['scenario']} against {results['target']}", title_justify="left")
    width = max((len(step["name"]) for step in results["steps"]), default=4)
    table.add_column("step", no_wrap=True, min_width=max(8, width))
    for column in ("count", "errors", "rps", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"):
        table.add_column(column, justify="right")
    summary = results["summary"]
    rows = [*results["steps"], {"name": "requests", "count": summary["requests"],
                                "errors": summary["request_errors"], **summary}]  # fmt: skip
    for n, step in enumerate(rows):
        table.add_row(
            step["name"],
            f"{step['count']:,}",
            f"{step['errors']:,}",
            f"{step['rps']:,.0f}",
            *(_ms(step[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
            end_section=n == len(rows) - 2,
            style="bold" if n == len(rows) - 1 else None,
        )
    return table


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    console.print(steps_table(results))
    summary = results["summary"]
    load = results["load"]
    line = (
        f"{summary['requests']:,} requests in {results['elapsed']:.1f}s: "
        f"{summary['rps']:,.0f}/s, p50 {_ms(summary['p50_ms'])} ms, "
        f"p99 {_ms(summary['p99_ms'])} ms; users online: peak {summary['users_peak']:,}"
    )
    if load["model"] != "closed":
        line += f"; late {summary['late']:,}, dropped {summary['dropped']:,}"
    console.print(line)
    if summary["generator_lag_max_ms"] > SATURATED_LAG_MS:
        console.print(
            f"[yellow]warning[/yellow]: a generator's loop lagged up to "
            f"{summary['generator_lag_max_ms']:,.0f} ms (CPU up to "
            f"{summary['generator_cpu_max_percent']:.0f}%): latencies include that delay; "
            "more --processes would spread the bots"
        )
    if results["errors"]:
        shown = ", ".join(f"{k} x{n:,}" for k, n in list(results["errors"].items())[:6])
        console.print(f"[red]errors[/red]: {shown}")
    server = results["server"]
    if server:
        per_user = server["memory_per_user_bytes"]
        console.print(
            f"server ({server['source']}): RSS {_bytes(server['baseline_rss_bytes'])} idle, "
            f"{_bytes(server['rss_at_measure_bytes'])} with {server['users_at_measure']:,} "
            f"users online: [bold]{_bytes(per_user)} per online user[/bold]; "
            f"fds max {server['max_fds']:,}"
        )
        soak = server["soak"]
        if soak:
            rss, fds = soak["rss"], soak["fds"]
            slope = rss.get("slope_per_hour")
            console.print(
                f"soak over {soak['window_seconds']:.0f}s: [bold]{soak['verdict']}[/bold] "
                f"(RSS {_bytes(slope)}/h, 95% CI "
                + (" .. ".join(_bytes(v) for v in rss["ci95_per_hour"]) if slope is not None
                   else "-")
                + f"; fds {fds.get('slope_per_hour', 0):+.1f}/h)"
            )  # fmt: skip
    for error in results["generator_errors"]:
        console.print(f"[red]generator error[/red]: {error}")


# -- files ---------------------------------------------------------------------------------------


def write_json(results: dict[str, Any], path: str) -> None:
    with open(path, "w") as file:
        json.dump(results, file, indent=2)
        file.write("\n")


def write_csv(results: dict[str, Any], prefix: str) -> list[str]:
    steps_path, timeline_path = f"{prefix}_steps.csv", f"{prefix}_timeline.csv"
    summary = results["summary"]
    total = {"name": "requests", "count": summary["requests"], "ok": None,
             "errors": summary["request_errors"], **summary}  # fmt: skip
    with open(steps_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(STEP_COLUMNS)
        for step in [*results["steps"], total]:
            writer.writerow([step.get(column) for column in STEP_COLUMNS])
    with open(timeline_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(TIMELINE_COLUMNS)
        for row in results["timeline"]:
            writer.writerow([row.get(column) for column in TIMELINE_COLUMNS])
    return [steps_path, timeline_path]


def write_html(results: dict[str, Any], directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "index.html")
    with open(path, "w") as file:
        file.write(render_html(results))
    return path


# -- HTML ----------------------------------------------------------------------------------------

COLORS = ("#2563eb", "#16a34a", "#ea580c", "#dc2626", "#7c3aed")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value)))
    for step in (0.1, 0.2, 0.25, 0.5, 1.0):
        if value <= magnitude * step:
            return magnitude * step
    return float(magnitude)


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def svg_chart(
    title: str, xs: list[float], series: list[tuple[str, list[float | None]]], unit: str = ""
) -> str:
    """A line chart as inline SVG: one polyline per series, y from zero to a round maximum."""
    width, height, left, right, top, bottom = 640, 220, 56, 12, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, ys in series for v in ys if v is not None]
    y_max = _nice_max(max(values, default=0.0))
    x_min, x_max = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x_span = (x_max - x_min) or 1.0

    def x(value: float) -> float:
        return left + (value - x_min) / x_span * plot_w

    def y(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="16" class="title">{html.escape(title)}</text>',
    ]
    for n in range(5):
        value = y_max * n / 4
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            f'class="grid"/><text x="{left - 6}" y="{y(value) + 4:.1f}" class="tick" '
            f'text-anchor="end">{_short(value)}{unit}</text>'
        )
    for value in (x_min, (x_min + x_max) / 2, x_max):
        parts.append(
            f'<text x="{x(value):.1f}" y="{height - 8}" class="tick" '
            f'text-anchor="middle">{value:.0f}s</text>'
        )
    legend_x = left + 8
    for n, (label, ys) in enumerate(series):
        color = COLORS[n % len(COLORS)]
        points = " ".join(
            f"{x(t):.1f},{y(v):.1f}" for t, v in zip(xs, ys, strict=True) if v is not None
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                     f'stroke-width="1.6"/>')  # fmt: skip
        # A swatch and the label, both in the line's colour (the class sets size, not fill).
        parts.append(f'<line x1="{legend_x}" x2="{legend_x + 12}" y1="{top + 8}" '
                     f'y2="{top + 8}" stroke="{color}" stroke-width="3"/>'
                     f'<text x="{legend_x + 16}" y="{top + 12}" fill="{color}" class="legend">'
                     f"{html.escape(label)}</text>")  # fmt: skip
        legend_x += 26 + 7 * len(label)
    parts.append("</svg>")
    return "".join(parts)


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1340px;
       padding: 0 1em; color: #111827; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: right; }
th { border-bottom: 1px solid #9ca3af; } td:first-child, th:first-child { text-align: left; }
tr.total td { font-weight: bold; border-top: 1px solid #9ca3af; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(600px, 1fr));
          gap: 12px; }
svg { width: 100%; height: auto; background: #f9fafb; border: 1px solid #e5e7eb; }
svg .title { font-size: 13px; font-weight: 600; } svg .tick { font-size: 10px; fill: #4b5563; }
svg .legend { font-size: 10px; font-weight: 600; }
svg .grid { stroke: #e5e7eb; } dl { display: grid; grid-template-columns: max-content auto;
gap: 2px 16px; } dt { color: #4b5563; } dd { margin: 0; } .bad { color: #dc2626; }
"""


def render_html(results: dict[str, Any]) -> str:
    esc = html.escape
    summary, load, server = results["summary"], results["load"], results["server"]
    timeline = results["timeline"]
    xs = [float(row["t"]) for row in timeline]
    charts = [
        svg_chart("throughput (per second)", xs,
                  [("requests/s", [row["rps"] for row in timeline]),
                   ("errors/s", [row["errors"] for row in timeline])]),
        svg_chart("latency (ms)", xs,
                  [(name, [row[f"{key}_ms"] for row in timeline])
                   for name, key in (("p50", "p50"), ("p90", "p90"), ("p99", "p99"),
                                     ("max", "max"))], " ms"),
        svg_chart("users online", xs, [("users", [row["users"] for row in timeline])]),
    ]  # fmt: skip
    if server:
        charts.append(
            svg_chart("server RSS (MiB)", xs,
                      [("RSS", [None if row["server_rss_bytes"] is None
                                else row["server_rss_bytes"] / 2**20 for row in timeline])],
                      " MiB")
        )  # fmt: skip
    head = ("step", "count", "errors", "rps", "mean ms", "p50 ms", "p90 ms", "p99 ms",
            "p99.9 ms", "max ms")  # fmt: skip
    keys = ("mean_ms", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
    rows = []
    total = {"name": "requests", "count": summary["requests"],
             "errors": summary["request_errors"], **summary}  # fmt: skip
    for step in [*results["steps"], total]:
        cells = [esc(step["name"]), f"{step['count']:,}", f"{step['errors']:,}",
                 f"{step['rps']:,.1f}", *(f"{step[k]:.3f}" for k in keys)]  # fmt: skip
        css = ' class="total"' if step is total else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    facts = {
        "scenario": results["scenario"],
        "target": f"{results['target']} ({results['transport']})",
        "load": ", ".join(f"{k}={v}" for k, v in load.items() if v not in (None, 0, "")),
        "started": results["started"],
        "elapsed": f"{results['elapsed']:.1f} s",
        "requests/s": f"{summary['rps']:,.1f}",
        "users online (peak)": f"{summary['users_peak']:,}",
        "late / dropped": f"{summary['late']:,} / {summary['dropped']:,}",
    }
    if server:
        facts["server"] = server["source"]
        facts["memory per online user"] = _bytes(server["memory_per_user_bytes"])
        facts["server RSS idle / measured"] = (
            f"{_bytes(server['baseline_rss_bytes'])} / {_bytes(server['rss_at_measure_bytes'])}"
            f" with {server['users_at_measure']:,} users"
        )
        if server["soak"]:
            facts["soak verdict"] = server["soak"]["verdict"]
    errors = "".join(
        f"<tr><td>{esc(kind)}</td><td>{n:,}</td></tr>" for kind, n in results["errors"].items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>residentd bots: {esc(results["scenario"])} against {esc(results["target"])}</title>
<style>{STYLE}</style></head><body>
<h1>residentd bots: {esc(results["scenario"])} against {esc(results["target"])}</h1>
<dl>{"".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in facts.items())}</dl>
<h2>Steps</h2>
<table><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>{"".join(rows)}</table>
<h2>Over time</h2>
<div class="charts">{"".join(charts)}</div>
<h2>Errors</h2>
{
        f'<table class="bad"><tr><th>step: kind</th><th>count</th></tr>{errors}</table>'
        if errors
        else "<p>none</p>"
    }
<p>Produced by residentd bots {esc(results["version"])}. Latencies are HdrHistogram
percentiles in milliseconds{
        ", timed from each request&#39;s intended send time" if load["model"] != "closed" else ""
    }.</p>
</body></html>
"""
