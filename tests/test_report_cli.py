"""``contentgen report`` and ``contentgen prices``: formats, exact totals, filters, history."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.money.pricing import TIERS, load_pricing
from pipeline.reports.costs import CostFigures
from pipeline.settings import Settings, get_settings
from tests.test_reports import TASKS, figures_of, random_specs, seed

Invoke = Callable[..., Result]


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run ``contentgen`` against the test database and the repository's config."""
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(settings.config_dir))
    monkeypatch.setenv("CONTENTGEN_CACHE_DIR", str(settings.cache_dir))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def _decimals(line: str) -> list[Decimal]:
    values = []
    for cell in line.replace("┃", "│").split("│"):
        try:
            values.append(Decimal(cell.strip().replace(",", "")))
        except InvalidOperation:
            continue
    return values


def test_report_table_is_by_profile_with_an_exact_total(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """The default report groups by profile and ends with the total cost, rounded to
    format_usd's precision (issue 22: no 7-10 decimals on screen; CSV/JSON stay exact)."""
    rows = random_specs(60)
    with sessions() as session:
        seed(session, rows)
    total = sum((figures_of(s) for s in rows), CostFigures())
    result = cli("report")
    assert result.exit_code == 0, result.output
    assert "Cost by profile" in result.stdout
    for task in {s.task for s in rows}:
        assert task in result.stdout
    (total_line,) = [line for line in result.stdout.splitlines() if "│ total" in line]
    shown = _decimals(total_line)
    assert any(abs(d - total.cost_usd) <= Decimal("0.00005") for d in shown), total_line
    assert all(len(str(d).partition(".")[2]) <= 6 for d in shown), total_line
    assert Decimal(total.requests) in _decimals(total_line)


def test_report_csv_has_every_column_and_an_exact_total_line(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """CSV: one line per day, then TOTAL; money is exact and the lines add up to the total."""
    rows = random_specs(60)
    with sessions() as session:
        seed(session, rows)
    result = cli("report", "--by", "day", "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = list(csv.DictReader(io.StringIO(result.stdout)))
    *days, total = lines
    assert list(lines[0]) == [
        "day",
        "requests",
        "completed",
        "incomplete",
        "failed",
        "from_cache",
        "input_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cached_ratio",
        "cost_usd",
        "list_cost_usd",
        "savings_usd",
    ]
    assert total["day"] == "TOTAL"
    assert [d["day"] for d in days] == sorted({str(s.created_at.date()) for s in rows})
    want = sum((figures_of(s) for s in rows), CostFigures())
    for column in ("cost_usd", "list_cost_usd", "savings_usd"):
        assert Decimal(total[column]) == getattr(want, column)
        assert sum(Decimal(d[column]) for d in days) == getattr(want, column)
    assert int(total["requests"]) == len(rows)


def test_report_json_is_exact(cli: Invoke, sessions: sessionmaker[Session]) -> None:
    """JSON: money as exact decimal strings, rows keyed like the SQL views, and the total."""
    rows = random_specs(40)
    with sessions() as session:
        seed(session, rows)
    result = cli("report", "--by", "model", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == "model"
    want = sum((figures_of(s) for s in rows), CostFigures())
    assert Decimal(data["total"]["cost_usd"]) == want.cost_usd
    assert Decimal(data["total"]["savings_usd"]) == want.savings_usd
    assert data["total"]["cached_ratio"] == pytest.approx(want.cached_ratio)
    assert data["total"]["cache_write_tokens"] == want.cache_write_tokens > 0
    assert sum(r["cache_write_tokens"] for r in data["rows"]) == want.cache_write_tokens
    assert sum(Decimal(r["cost_usd"]) for r in data["rows"]) == want.cost_usd
    assert {r["model"] for r in data["rows"]} == {s.model or s.request_model for s in rows}
    assert data["runs"] == []


def test_report_by_tier_shows_each_modes_savings(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """`--by tier` groups by the price tier (standard, flex, batch) with its savings."""
    rows = random_specs(40)
    with sessions() as session:
        seed(session, rows)
    result = cli("report", "--by", "tier", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == "price_tier"
    got = {r["price_tier"]: Decimal(r["savings_usd"]) for r in data["rows"]}
    want: dict[str, Decimal] = {}
    for spec in rows:
        want[spec.price_tier] = want.get(spec.price_tier, Decimal(0)) + (
            spec.list_cost_usd - spec.cost_usd
        )
    assert got == want
    table = cli("report", "--by", "tier")
    assert table.exit_code == 0, table.output
    assert "price tier" in table.stdout


def test_report_since_yesterday_keeps_yesterday_and_today(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """`--since yesterday` answers "what did last night cost" (UTC days)."""
    today = dt.datetime.now(dt.UTC).date()
    base = random_specs(1)[0]
    ages = (0, 1, 1, 2, 9)
    rows = [
        dataclasses.replace(
            base,
            task=TASKS[i % len(TASKS)],
            created_at=dt.datetime.combine(today - dt.timedelta(days=age), dt.time(0, 0, 1)),
        )
        for i, age in enumerate(ages)
    ]
    with sessions() as session:
        seed(session, rows)
    data = json.loads(cli("report", "--since", "yesterday", "--json").stdout)
    assert data["total"]["requests"] == 3
    assert data["filter"]["since"] == str(today - dt.timedelta(days=1))
    data = json.loads(cli("report", "--since", "9d", "--until", "2d", "--json").stdout)
    assert data["total"]["requests"] == 2


def test_report_on_the_last_run_shows_forecast_against_actual(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """`--run last` covers the newest run only and sets its forecast against what it cost."""
    rows = random_specs(50)
    with sessions() as session:
        run_ids = seed(session, rows)
    actual = sum((figures_of(s) for s in rows if s.run == 1), CostFigures())
    result = cli("report", "--run", "last")
    assert result.exit_code == 0, result.output
    assert f"Cost by profile, run {run_ids[1]}" in result.stdout
    assert "Forecast vs actual" in result.stdout
    data = json.loads(cli("report", "--run", "last", "--json").stdout)
    (run,) = data["runs"]
    assert run["run_id"] == run_ids[1]
    assert Decimal(run["forecast_cost_usd"]) == Decimal("2.50")
    assert Decimal(run["cost_usd"]) == actual.cost_usd == Decimal(data["total"]["cost_usd"])
    assert Decimal(run["cost_error_usd"]) == actual.cost_usd - Decimal("2.50")
    by_run = json.loads(cli("report", "--by", "run", "--json").stdout)
    assert [r["run_id"] for r in by_run["runs"]] == run_ids
    lines = list(
        csv.DictReader(io.StringIO(cli("report", "--by", "run", "--format", "csv").stdout))
    )
    forecasts = {line["run_id"]: line["forecast_cost_usd"] for line in lines}
    assert Decimal(forecasts[str(run_ids[1])]) == Decimal("2.50")
    assert forecasts["TOTAL"] == ""


def test_report_chart_is_written(
    cli: Invoke, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """`--chart FILE` writes a non-empty self-contained HTML chart naming every profile."""
    rows = random_specs(60)
    with sessions() as session:
        seed(session, rows)
    chart = tmp_path / "cost.html"
    result = cli("report", "--since", "2026-11-01", "--chart", str(chart), "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)  # the chart message goes to stderr, stdout stays JSON
    html = chart.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html
    for task in {s.task for s in rows}:
        assert task in html
    assert "<script" not in html


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "last week"), "not a day"),
        (("--since", "2026-02-01", "--until", "2026-01-01"), "after --until"),
        (("--run", "last"), "no runs yet"),
        (("--run", "x7"), "not a run id"),
        (("--run", "42"), "no run with id 42"),
    ],
)
def test_report_input_errors_are_one_line(cli: Invoke, args: tuple[str, ...], message: str) -> None:
    """Bad options end with one error line and exit status 2, not a traceback."""
    result = cli("report", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_report_help_ends_with_an_example(cli: Invoke) -> None:
    """Each command's help ends with an example."""
    for args in (("report",), ("prices", "load"), ("prices", "list")):
        result = cli(*args, "--help")
        assert result.exit_code == 0
        assert f"Example: `contentgen {' '.join(args)}" in result.stdout


def _price_rows(settings: Settings) -> int:
    table = load_pricing(settings.config_dir / "pricing.toml")
    return sum(1 for entry in table.entries for tier in TIERS if entry.tier(tier) is not None)


def test_prices_load_is_idempotent(cli: Invoke, settings: Settings) -> None:
    """Loading the same price file twice adds its rows once."""
    first = json.loads(cli("prices", "load", "--json").stdout)
    assert first["added"] == first["stored"] == _price_rows(settings)
    again = json.loads(cli("prices", "load", "--json").stdout)
    assert again["added"] == 0
    assert again["stored"] == first["stored"]
    listed = json.loads(cli("prices", "list", "--json").stdout)
    assert len(listed) == first["stored"]
    mini = [p for p in listed if p["model"] == "gpt-4.1-mini" and p["tier"] == "standard"]
    assert [Decimal(mini[0][k]) for k in ("input_usd_per_mtok", "output_usd_per_mtok")] == [
        Decimal("0.40"),
        Decimal("1.60"),
    ]
    assert mini[0]["cache_write_usd_per_mtok"] is None  # writes cost the input rate
    sol = [p for p in listed if p["model"] == "gpt-5.6-sol" and p["tier"] == "standard"]
    assert Decimal(sol[0]["cache_write_usd_per_mtok"]) == Decimal("5.00")
    table = cli("prices", "list", "--model", "gpt-4.1-mini")
    assert "gpt-4.1-mini" in table.stdout and "gpt-4.1-nano" not in table.stdout


def test_prices_load_refuses_to_rewrite_history(cli: Invoke, tmp_path: Path) -> None:
    """A stored price cannot be changed; a new effective date adds a row and keeps the old."""
    cli("prices", "load")
    changed = tmp_path / "pricing.toml"
    changed.write_text(
        '[[prices]]\nmodel = "gpt-4.1-mini"\neffective_date = 2025-11-30\n'
        'standard = { input = "0.45", cached_input = "0.10", output = "1.60" }\n',
        encoding="utf-8",
    )
    result = cli("prices", "load", "--file", str(changed))
    assert result.exit_code == 2
    assert "differs from the stored one" in result.stderr
    before = json.loads(cli("prices", "list", "--model", "gpt-4.1-mini", "--json").stdout)
    assert {Decimal(p["input_usd_per_mtok"]) for p in before} == {Decimal("0.40"), Decimal("0.20")}

    changed.write_text(
        changed.read_text(encoding="utf-8").replace("2025-11-30", "2026-12-01"), encoding="utf-8"
    )
    added = json.loads(cli("prices", "load", "--file", str(changed), "--json").stdout)
    assert added["added"] == 1
    after = json.loads(cli("prices", "list", "--model", "gpt-4.1-mini", "--json").stdout)
    standard = [
        (p["effective_date"], p["input_usd_per_mtok"]) for p in after if p["tier"] == "standard"
    ]
    assert [(d, Decimal(v)) for d, v in standard] == [
        ("2025-11-30", Decimal("0.40")),
        ("2026-12-01", Decimal("0.45")),
    ]


def test_prices_list_on_an_empty_table_says_what_to_do(cli: Invoke) -> None:
    """No prices stored yet: the list says how to load them."""
    result = cli("prices", "list")
    assert result.exit_code == 0
    assert "contentgen prices load" in result.stdout
