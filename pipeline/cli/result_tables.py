"""The tables of ``contentgen results``: texts cut to the terminal, narrow terminals drop
columns first (every column is in --format csv/jsonl)."""

from __future__ import annotations

from rich.table import Table

from pipeline.checks import summary_text
from pipeline.cli.common import console
from pipeline.reports import (
    FailedJob,
    ResultRow,
    cell_text,
    local_time,
    shown_places,
    usd_shown,
)

_MIN_TEXT_WIDTH = 40
# On a narrow terminal these columns go first, so the text keeps some room.
_DROP_ORDER = (
    "cached",
    "created",
    "model",
    "out",
    "in",
    "checks",
    "status",
    "version",
    "review",
)


def _cells(row: ResultRow, places: int) -> dict[str, str]:
    return {
        "article": row.source_id,
        "task": row.task,
        "version": row.version.partition("@")[2],
        "status": row.status,
        "checks": summary_text(row.checks),
        "review": row.review_state or "-",
        "model": row.model,
        "in": f"{row.input_tokens:,}",
        "cached": f"{row.cached_tokens:,}",
        "out": f"{row.output_tokens:,}",
        "cost $": usd_shown(row.cost_usd, places),
        "created": local_time(row.created_at),
    }


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def print_results_table(rows: list[ResultRow], width: int, title: str = "Generated texts") -> None:
    """A table with the text cut to fit ``width``; narrow terminals lose columns first."""
    places = shown_places(r.cost_usd for r in rows)
    cells = [_cells(r, places) for r in rows]
    headers = list(cells[0])
    widths = {h: max(len(h), *(len(c[h]) for c in cells)) for h in headers}
    shown = list(headers)

    def room() -> int:
        # Each column costs its width plus 3 (borders and padding); the text column too.
        return width - sum(widths[h] + 3 for h in shown) - 4

    for name in _DROP_ORDER:
        if room() >= _MIN_TEXT_WIDTH:
            break
        shown.remove(name)
    text_width = max(room(), 10)
    table = Table(title=title)
    right = {"in", "cached", "out", "cost $"}
    for h in shown:
        table.add_column(h, justify="right" if h in right else "left", no_wrap=True)
    table.add_column("text", no_wrap=True, overflow="ellipsis", max_width=text_width)
    for row, cell in zip(rows, cells, strict=True):
        table.add_row(*(cell[h] for h in shown), _clip(cell_text(row), text_width))
    console.print(table)


def print_failed_table(rows: list[FailedJob], width: int, title: str = "Failed jobs") -> None:
    """Failed jobs with their reason and last error cut to fit ``width``."""
    table = Table(title=title)
    for h in ("article", "task", "reason", "attempts", "failed at"):
        table.add_column(h, no_wrap=True, justify="right" if h == "attempts" else "left")
    used = sum(
        max(len(h), *(len(v) for v in values)) + 3
        for h, values in (
            ("article", [r.source_id for r in rows]),
            ("task", [r.task for r in rows]),
            ("reason", [r.reason or "-" for r in rows]),
            ("attempts", [str(r.attempts) for r in rows]),
            ("failed at", [local_time(r.updated_at) for r in rows]),
        )
    )
    error_width = max(width - used - 4, 10)
    table.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=error_width)
    for r in rows:
        table.add_row(
            r.source_id,
            r.task,
            r.reason or "-",
            str(r.attempts),
            local_time(r.updated_at),
            _clip(r.last_error or "-", error_width),
        )
    console.print(table)
