"""Report tables: a total row, money columns with one exact number of decimals."""

from __future__ import annotations

from decimal import Decimal

from flows.reporting import Row, markdown_table, table
from pipeline.reports.costs import CostFigures


def _row(key: str, cost: str, list_cost: str, failed: int = 0) -> Row:
    figures = CostFigures(
        requests=3,
        completed=3 - failed,
        failed=failed,
        input_tokens=4000,
        cached_tokens=1000,
        output_tokens=100,
        cost_usd=Decimal(cost),
        list_cost_usd=Decimal(list_cost),
    )
    return Row(key, figures)


def test_money_columns_share_the_decimals_that_show_every_value_exactly() -> None:
    """0.0008908 needs 7 places, so every money cell of the table gets 7."""
    rows = [_row("headline", "0.0008908", "0.0023884"), _row("summary", "0.002438", "0.00344")]
    cells = table(rows, "profile")
    assert [c["cost USD"] for c in cells] == ["0.0008908", "0.0024380", "0.0033288"]
    assert cells[-1]["profile"] == "total"
    assert cells[-1]["savings USD"] == "0.0024996"
    assert cells[-1]["cached %"] == "25.0"


def test_failures_count_failed_and_incomplete() -> None:
    """The failures column adds failed and incomplete generations."""
    row = Row("x", CostFigures(requests=5, failed=1, incomplete=2))
    assert table([row], "profile")[0]["failures"] == 3


def test_markdown_table_of_nothing_says_so() -> None:
    """An empty report renders as a sentence, not an empty table."""
    assert markdown_table([], "profile") == "_No generations._"
