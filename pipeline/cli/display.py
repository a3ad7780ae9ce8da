"""Showing a run: a live progress panel on a terminal, plain log lines elsewhere, a summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.live import Live
from rich.table import Table

from pipeline.cli.common import console, err_console
from pipeline.progress import Progress


def _panel(p: Progress) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    tpm = p.limiter.get("tokens_per_min")
    limit = f" / {p.limit_tpm:,} limit" if p.limit_tpm else ""
    table.add_row("done / failed", f"{p.done} / {p.failed}")
    table.add_row("waiting / in flight", f"{p.waiting} / {p.in_flight}")
    table.add_row("requests/s", f"{p.requests_per_s:.1f}")
    table.add_row("tokens/min", (f"{tpm:,.0f}" if tpm is not None else "-") + limit)
    table.add_row("cached input", f"{p.cached_ratio:.1%}")
    if p.cache_write_tokens:
        table.add_row("cache writes", f"{p.cache_write_tokens:,} tokens")
    table.add_row("cost so far", f"${p.cost_usd:.6f}")
    return table


@contextmanager
def progress_display(quiet: bool = False) -> Iterator[Callable[[Progress], None]]:
    """Yield a progress callback: a live panel on a TTY, a log line every 5 s otherwise."""
    if quiet:
        yield lambda _p: None
        return
    if sys.stderr.isatty():
        with Live(console=err_console, refresh_per_second=4, transient=True) as live:
            yield lambda p: live.update(_panel(p))
        return
    last = [0.0]

    def log_line(p: Progress) -> None:
        now = time.monotonic()
        if now - last[0] >= 5.0:
            last[0] = now
            err_console.print(p.line(), highlight=False)

    yield log_line


def print_summary(summary: dict[str, Any], title: str = "Run summary") -> None:
    """A readable table of a run summary's figures."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in summary.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
