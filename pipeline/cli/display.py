"""Showing a run: a live progress panel on a terminal, plain log lines elsewhere, a summary.

The panel is refreshed a few times a second at most, however often the runner reports. While
it is on, the retry events of ``contentgen.retry`` are counted in it instead of printed over
it (handlers configured on the root logger, such as a log file, still get them). Off a
terminal the same figures are one plain line every ``PLAIN_EVERY_S`` and retries are logged.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from pipeline.cli.common import console, err_console
from pipeline.money import format_usd
from pipeline.run import (
    Progress,
    ProgressView,
    duration_text,
    money_text,
    rate_text,
    stopping_text,
    tpm_text,
)

PANEL_EVERY_S = 0.25
PLAIN_EVERY_S = 10.0
RETRY_LOGGER = "contentgen.retry"


class RetryTally(logging.Filter):
    """Counts the retry events logged on ``contentgen.retry`` (the give-ups are failures)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Count a retry; let every record through."""
        if str(record.msg).startswith("retry "):
            self.count += 1
        return True


@contextmanager
def counting_retries(*, quiet_console: bool) -> Iterator[RetryTally]:
    """Count retry events while the block runs; with ``quiet_console`` keep them off the
    terminal (Python's last-resort stderr handler) but not from configured handlers."""
    logger = logging.getLogger(RETRY_LOGGER)
    tally = RetryTally()
    silencer = logging.NullHandler()
    logger.addFilter(tally)
    if quiet_console:
        logger.addHandler(silencer)
    try:
        yield tally
    finally:
        logger.removeFilter(tally)
        logger.removeHandler(silencer)


def _bar(percent: float | None, width: int = 24) -> str:
    if percent is None:
        return ""
    filled = round(percent / 100 * width)
    return "█" * filled + "░" * (width - filled) + " "


def panel(v: ProgressView) -> Table:
    """The live panel of a run's figures."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    if v.stopping is not None:
        table.add_row("[yellow]stopping[/]", f"[yellow]{stopping_text(v.stopping, v.in_flight)}[/]")
    if v.total is not None and v.percent is not None:
        done = f"{_bar(v.percent)}{v.finished:,} / {v.total:,} ({v.percent:.1f}%)"
    else:
        done = f"{v.finished:,}"
    table.add_row("done", done)
    table.add_row("failed / retries", f"{v.failed:,} / {v.retries:,}")
    table.add_row("waiting / in flight", f"{v.waiting:,} / {v.in_flight:,}")
    table.add_row(
        "rate / ETA",
        f"{rate_text(v.rate_per_min)} (last minute) / {duration_text(v.eta_s)}",
    )
    table.add_row("tokens/min", tpm_text(v.tokens_per_min, v.tpm_limit, v.token_factor))
    table.add_row("cached input", f"{v.cached_ratio:.1%}")
    if v.cache_write_tokens:
        table.add_row("cache writes", f"{v.cache_write_tokens:,} tokens")
    table.add_row(
        "cost / projected",
        f"${money_text(v.cost_usd)} / ${money_text(v.projected_usd)}",
    )
    if v.budget_usd is not None:
        table.add_row(
            "budget left",
            f"${money_text(v.budget_left_usd)} of ${money_text(v.budget_usd)}",
        )
    for name, spent, limit in v.budgets:
        table.add_row(f"budget {name}", f"${money_text(spent)} of ${money_text(limit)}")
    return table


def throttled(
    show: Callable[[Progress], None], every_s: float, clock: Callable[[], float] = time.monotonic
) -> Callable[[Progress], None]:
    """``show`` at most once per ``every_s`` (the runner reports after every result); a change
    of the stopping state shows at once."""
    last: list[Any] = [float("-inf"), None]

    def maybe_show(p: Progress) -> None:
        now = clock()
        if now - last[0] >= every_s or p.stopping != last[1]:
            last[0], last[1] = now, p.stopping
            show(p)

    return maybe_show


@contextmanager
def progress_display(
    quiet: bool = False, *, out: Console | None = None, tty: bool | None = None
) -> Iterator[Callable[[Progress], None]]:
    """Yield a progress callback: a live panel on a TTY, a plain line every 10 s otherwise.

    ``out`` and ``tty`` default to standard error and whether it is a terminal.
    """
    if quiet:
        yield lambda _p: None
        return
    out = out or err_console
    on_terminal = sys.stderr.isatty() if tty is None else tty
    with counting_retries(quiet_console=on_terminal) as tally:
        if on_terminal:
            with Live(console=out, refresh_per_second=4, transient=True) as live:

                def update(p: Progress) -> None:
                    p.retries = tally.count
                    live.update(panel(p.view()))

                yield throttled(update, PANEL_EVERY_S)
            return
        latest: list[Progress] = []

        def log_line(p: Progress) -> None:
            if not p.claimed:  # nothing to report yet (or at all: "nothing queued" says so)
                return
            p.retries = tally.count
            out.print(p.view().line(), highlight=False, markup=False, soft_wrap=True)

        def remember(p: Progress) -> None:
            latest[:] = [p]
            shown(p)

        shown = throttled(log_line, PLAIN_EVERY_S)
        try:
            yield remember
        finally:
            if latest:  # the final figures, whenever the last line was printed
                log_line(latest[0])


def print_summary(summary: dict[str, Any], title: str = "Run summary") -> None:
    """A readable table of a run summary's figures."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in summary.items():
        if isinstance(value, dict):  # e.g. token factors per model
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    console.print(table)


def with_usd(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` with every ``*_usd`` figure formatted by ``format_usd`` (for tables)."""
    return {
        key: format_usd(value) if key.endswith("_usd") and value not in (None, "") else value
        for key, value in summary.items()
    }
