"""The live terminal view of a run: a progress bar and the last second's figures, with rich.

``LiveView`` is a context manager; the controller calls ``update`` once a second with the
merged statistics and the last server sample. It shows users online, requests per second,
p50 and p99 of the last complete second, errors so far, the busiest generator's CPU, the open
model's late and dropped counts, and the server's RSS and fds. When the output is not a
terminal (a pipe, CI) it draws nothing, so logs stay clean; the final table is printed either
way.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from residentd.bots.server import ServerSample
from residentd.bots.stats import RunStats


class LiveView:
    def __init__(self, title: str, duration: float, enabled: bool = True) -> None:
        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.duration = duration
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}s"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task(title, total=duration)
        self.table = Table.grid(padding=(0, 2))
        self.live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.enabled:
            self.live = Live(
                Group(self.progress, self.table), console=self.console, refresh_per_second=4
            )
            self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.__exit__(exc_type, exc, traceback)
            self.live = None

    def update(self, elapsed: float, stats: RunStats, server: ServerSample | None) -> None:
        if self.live is None:
            return
        self.progress.update(self.task, completed=min(elapsed, self.duration))
        point = stats.last_point
        errors = sum(step.error_count for step in stats.steps.values())
        cells = {
            "users": f"{stats.users:,}",
            "req/s": f"{point.count:,}" if point else "-",
            "p50": f"{point.latency.get('p50_ms', 0):.2f} ms" if point else "-",
            "p99": f"{point.latency.get('p99_ms', 0):.2f} ms" if point else "-",
            "errors": f"{errors:,}",
            "bots CPU": f"{point.generator_cpu_percent:.0f}%" if point else "-",
        }
        if stats.late or stats.dropped:
            cells["late/dropped"] = f"{stats.late:,}/{stats.dropped:,}"
        if server is not None:
            cells["server RSS"] = f"{server.rss / 2**20:,.1f} MiB"
            cells["fds"] = f"{server.fds:,}"
        table = Table.grid(padding=(0, 2))
        for name in cells:
            table.add_column(justify="right", header=name)
        table.add_row(*(f"[dim]{name}[/dim]" for name in cells))
        table.add_row(*cells.values())
        self.live.update(Group(self.progress, table))
