"""The daily cost chart: savings drawn, stacked by --by, sized to the window or terminal."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.reports.chart import daily_cost_chart, load_chart_rows, text_chart
from pipeline.reports.costs import CostFigures, DayTaskCost, ReportFilter
from pipeline.settings import Settings, get_settings
from tests.test_reports import random_specs, seed

DAY = dt.date(2026, 11, 20)


def _cell(day: int, task: str, cost: str, list_cost: str) -> DayTaskCost:
    figures = CostFigures(
        requests=2,
        completed=2,
        input_tokens=1000,
        cached_tokens=600,
        cost_usd=Decimal(cost),
        list_cost_usd=Decimal(list_cost),
    )
    return DayTaskCost(DAY + dt.timedelta(days=day), task, figures)


def _heights(html: str, fill: str) -> list[float]:
    # Bars carry a tooltip; the legend's swatches do not.
    pattern = (
        rf'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill="{fill}"[^>]*><title>'
    )
    return [float(h) for h in re.findall(pattern, html)]


def test_savings_are_drawn_on_top_of_the_cost() -> None:
    """Cost $1 at list $2: a hatched savings bar as tall as the cost bar, with its amount."""
    html = daily_cost_chart([_cell(0, "summary", "1", "2")])
    (cost,) = _heights(html, "#0072B2")
    (saved,) = _heights(html, r"url\(#saved\)")
    assert saved == pytest.approx(cost, abs=0.2)
    assert "saved $1.00 against list price $2" in html
    assert "saved against list price" in html  # the legend
    assert "<th>Saved (USD)</th>" in html


def test_no_savings_bar_when_caching_saved_nothing() -> None:
    """Cost at list price (or above, unread cache writes): nothing hatched is drawn."""
    html = daily_cost_chart([_cell(0, "summary", "1", "1"), _cell(1, "summary", "2", "1.5")])
    assert _heights(html, r"url\(#saved\)") == []


def test_the_svg_follows_the_window_and_needs_no_network() -> None:
    """The drawing scales to the page's width; no scripts, nothing fetched."""
    html = daily_cost_chart([_cell(0, "summary", "1", "2")])
    assert re.search(r'<svg [^>]*width="100%"', html)
    assert "<script" not in html.lower()
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_text_chart_fits_the_terminal() -> None:
    """Every line fits the width; a wider terminal gets longer bars; savings are drawn."""
    rows = [_cell(0, "summary", "1", "2"), _cell(0, "headline", "0.5", "0.5")]
    rows.append(_cell(2, "summary", "0.25", "1"))
    drawn = []
    for width in (50, 80, 160):
        lines = text_chart(rows, width=width).splitlines()
        assert all(len(line) <= width for line in lines)
        assert len(lines) == 1 + 3  # legend, three days (one empty)
        bar = lines[1].split("|", 1)[1]
        drawn.append(len(bar) - len(bar.lstrip("█▓░")))
        assert "░" in lines[1] and "saved $1.00" in lines[1]
    assert drawn[0] < drawn[1] < drawn[2]
    assert drawn[2] > 100


def test_the_text_chart_without_data_says_so() -> None:
    """An empty period prints one line saying so."""
    assert text_chart([], width=80) == "No generations in this period."


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(settings.config_dir))
    monkeypatch.setenv("CONTENTGEN_CACHE_DIR", str(settings.cache_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _report(runner: CliRunner, *args: str, columns: int = 100) -> Result:
    return runner.invoke(
        app, ["report", *args], env={"COLUMNS": str(columns)}, catch_exceptions=False
    )


def test_chart_is_stacked_by_the_report_dimension(
    cli: CliRunner, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """`--by model --chart` stacks the bars by model, not by profile; the sums still match."""
    specs = random_specs(60)
    with sessions() as session:
        seed(session, specs)
        by_model = load_chart_rows(session, "model", ReportFilter())
        by_task = load_chart_rows(session, "task", ReportFilter())
    assert {r.task for r in by_model} == {s.model or s.request_model for s in specs}
    total = sum((r.figures for r in by_model), CostFigures())
    assert total == sum((r.figures for r in by_task), CostFigures())

    chart = tmp_path / "by-model.html"
    result = _report(cli, "--by", "model", "--chart", str(chart))
    assert result.exit_code == 0, result.output
    html = chart.read_text(encoding="utf-8")
    assert "Daily cost by model" in html
    for model in {r.task for r in by_model}:
        assert f"<th>{model} (USD)</th>" in html
    assert "<th>summary (USD)</th>" not in html


def test_chart_in_the_terminal_takes_its_width(
    cli: CliRunner, sessions: sessionmaker[Session]
) -> None:
    """`--chart -` draws the chart as text as wide as the terminal (COLUMNS here)."""
    with sessions() as session:
        seed(session, random_specs(40))
    narrow = _report(cli, "--by", "section", "--chart", "-", "--json", columns=70)
    wide = _report(cli, "--by", "section", "--chart", "-", "--json", columns=140)
    assert narrow.exit_code == 0 and wide.exit_code == 0, narrow.output
    narrow_lines = [line for line in narrow.stderr.splitlines() if "|" in line]
    wide_lines = [line for line in wide.stderr.splitlines() if "|" in line]
    assert narrow_lines and all(len(line) <= 70 for line in narrow_lines)
    assert max(len(line) for line in wide_lines) > 100
    assert "Daily cost by section" in wide.stderr
