"""The "Budgets" section of ``contentgen report``: each recurring budget's current period."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from pipeline.cli.common import console
from pipeline.db import BudgetUse
from pipeline.reports import usd_text


def budgets_json(uses: list[BudgetUse]) -> list[dict[str, Any]]:
    """Plain values for ``--json``."""
    return [
        {
            "budget": use.spec.key,
            "period": use.spec.period,
            "period_start_utc": use.period_start.isoformat(),
            "period_end_utc": use.period_end.isoformat(),
            "spent_usd": str(use.spent_usd),
            "held_usd": str(use.held_usd),
            "limit_usd": str(use.spec.limit_usd),
            "soft_share": use.spec.soft_share,
        }
        for use in uses
    ]


def print_budgets(uses: list[BudgetUse], timezone: str) -> None:
    """Spent against the limit per budget, today's or this month's (periods in ``timezone``)."""
    table = Table(
        "budget",
        "period",
        "spent",
        "held by running runs",
        "limit",
        "used",
        "soft alert at",
        title=f"Budgets (config/budgets.toml; periods in {timezone})",
    )
    for use in uses:
        period = "today" if use.spec.period == "daily" else "this month"
        soft = "-" if use.spec.soft_share is None else f"{use.spec.soft_share:.0%}"
        table.add_row(
            use.spec.key,
            f"{period} (from {use.period_start:%Y-%m-%d %H:%M} UTC)",
            f"${usd_text(use.spent_usd)}",
            f"${usd_text(use.held_usd)}",
            f"${usd_text(use.spec.limit_usd)}",
            f"{use.share:.0%}",
            soft,
        )
    console.print(table)
