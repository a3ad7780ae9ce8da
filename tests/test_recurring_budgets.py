"""Recurring budgets (config/budgets.toml): periods, a run stopped by a daily limit through the
whole engine, earlier spend counted, two concurrent runners under one limit on PostgreSQL,
the soft share alerted once, and the figures in the progress panel and the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from pipeline.alerts import notify_runs
from pipeline.cli.main import app
from pipeline.client import build_client_stack
from pipeline.db import Generation
from pipeline.db.models import BudgetGrant
from pipeline.money import period_bounds
from pipeline.run import RunOptions, run_batch_async
from pipeline.settings import get_settings
from tests.alerts_support import webhook_receiver, write_config
from tests.engine_support import (
    billed_usd,
    engine_settings,
    fast_retry,
    finish,
    job_rows,
    recorded_cost,
    run_engine,
    run_row,
    seed,
    simulator,
    worker,
)

DAILY = '[[budgets]]\nscope = "{scope}"\n{match}period = "daily"\nlimit_usd = "{limit}"\n{extra}'


def budgets_toml(limit: str, scope: str = "all", match: str | None = None, extra: str = "") -> str:
    return DAILY.format(
        scope=scope,
        match="" if match is None else f'match = "{match}"\n',
        limit=limit,
        extra=extra,
    )


def test_periods_start_at_local_midnight_in_utc() -> None:
    """A day and a month in UTC and in Berlin, as naive UTC bounds."""
    now = dt.datetime(2026, 12, 7, 23, 30, tzinfo=dt.UTC)
    assert period_bounds("daily", now, "UTC") == (
        dt.datetime(2026, 12, 7),
        dt.datetime(2026, 12, 8),
    )
    # 00:30 on the 8th in Berlin: the Berlin day began at 23:00 UTC on the 7th.
    assert period_bounds("daily", now, "Europe/Berlin") == (
        dt.datetime(2026, 12, 7, 23),
        dt.datetime(2026, 12, 8, 23),
    )
    assert period_bounds("monthly", now, "UTC") == (
        dt.datetime(2026, 12, 1),
        dt.datetime(2027, 1, 1),
    )
    summer = dt.datetime(2026, 3, 29, 12, tzinfo=dt.UTC)  # the day Berlin moves to summer time
    start, end = period_bounds("daily", summer, "Europe/Berlin")
    assert (start, end) == (dt.datetime(2026, 3, 28, 23), dt.datetime(2026, 3, 29, 22))


def test_a_daily_budget_stops_the_run_and_leaves_the_rest_queued(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Concurrency 32 under a $0.004 daily budget on one task: the bill stays within it, the
    run row says `budget` and which budget, the other jobs stay queued untouched, and the
    run's grant is gone once it ends."""
    ids = seed(engine, ["summary", "headline"], n=12)
    config = write_config(
        tmp_path, budgets=budgets_toml("0.004", "task", "summary", 'name = "summaries"\n')
    )
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        summary = run_engine(settings, RunOptions(concurrency=32))
        billed = billed_usd(sim)

    assert (summary.state, summary.stop_reason, summary.budget_stop) == (
        "budget",
        "budget",
        "summaries",
    )
    run = run_row(engine, summary.run_id)
    assert (run.state, run.stop_reason) == ("budget", "budget")
    assert recorded_cost(engine) == billed
    with Session(engine) as session:
        assert session.scalars(select(BudgetGrant)).all() == []  # given back at the end
        spent = sum(
            (g.cost_usd for g in session.scalars(select(Generation)) if g.task == "summary"),
            Decimal(0),
        )
    assert 0 < spent <= Decimal("0.004")
    rows = job_rows(engine)
    done = [j for j in rows if j.state == "succeeded"]
    queued = [j for j in rows if j.state == "queued"]
    assert done and queued and len(done) + len(queued) == len(ids)
    assert all(j.attempts == 0 and j.lease_owner is None for j in queued)
    assert any(j.task == "summary" for j in queued)


def test_spend_of_earlier_runs_in_the_period_counts(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A second run the same day starts from what the first spent: together within the limit."""
    seed(engine, ["summary"], n=16)
    config = write_config(tmp_path, budgets=budgets_toml("0.003"))
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        first = run_engine(settings, RunOptions(concurrency=4, limit=3))
        second = run_engine(settings, RunOptions(concurrency=4))
        billed = billed_usd(sim)
    assert first.state == "finished"
    assert (second.state, second.stop_reason) == ("budget", "budget")
    assert billed <= Decimal("0.003")
    assert recorded_cost(engine) == billed


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_concurrent_runners_share_one_daily_budget(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Two worker processes on one PostgreSQL database under a $0.015 daily budget: together
    they never pass it (the simulator's bill is the witness), the budget stops them, and the
    jobs neither sent are queued; each got a share (equal shares among running runs)."""
    seed(engine, ["summary", "headline"], n=30)
    config = write_config(tmp_path, budgets=budgets_toml("0.015"))
    # Slow answers and two requests in flight each: the first runner cannot spend the budget
    # before the second has started (a process start takes a second or two here).
    with simulator(latency_scale=0.3) as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        # Small claims, so neither runner holds most of the queue in its hands.
        with (
            worker(settings, concurrency=2, chunk_size=4) as a,
            worker(settings, concurrency=2, chunk_size=4) as b,
        ):
            first, second = finish(a), finish(b)
        billed = billed_usd(sim)
    assert billed <= Decimal("0.015"), billed
    assert recorded_cost(engine) == billed
    # One may run out of jobs first (the other holds the rest); the limit stops the other.
    assert "budget" in {first["stop_reason"], second["stop_reason"]}
    # The limit was used, not given up early (a request's worst case is ~$0.002 here).
    assert billed > Decimal("0.015") - 3 * Decimal("0.002"), billed
    # Each runner gets an equal share of what is left once both hold a grant, but one that
    # starts first (a process start takes seconds on a loaded machine) may spend a small
    # budget alone: that both did work is not promised, only that together they kept the limit.
    assert first["succeeded"] + second["succeeded"] > 0, (first, second)
    assert {first["state"], second["state"]} <= {"finished", "budget"}, (first, second)
    rows = job_rows(engine)
    assert any(j.state == "queued" for j in rows)
    assert all(j.state in ("queued", "succeeded") for j in rows)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_soft_share_is_alerted_once_and_the_report_and_panel_show_budgets(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Spend past 20% of a budget: one budget_soft alert however often it is evaluated; the
    progress panel and `contentgen report` show spent against the limit."""
    seed(engine, ["summary"], n=4)
    config = write_config(
        tmp_path,
        alerts='[alerts]\n[alerts.webhook]\nformat = "slack"\n',
        budgets=budgets_toml("0.01", extra="soft_share = 0.2\n")
        + '\n[[budgets]]\nscope = "section"\nmatch = "nowhere"\nperiod = "monthly"\n'
        'limit_usd = "100"\n',
    )
    panels: list[str] = []
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        stack = build_client_stack(settings, retry=fast_retry())
        summary = asyncio.run(
            run_batch_async(
                settings,
                RunOptions(concurrency=2),
                stack=stack,
                progress=lambda p: panels.append(p.view().line()),
            )
        )
    assert summary.totals.cost_usd >= Decimal("0.002"), summary
    assert any("budget all/daily $" in line and "of $0.0100" in line for line in panels), panels[-1]
    with webhook_receiver() as receiver:
        env = {"CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url}
        first = notify_runs(settings, [summary.run_id], environ=env)
        again = notify_runs(settings, [summary.run_id], environ=env)
    soft = [s for s in first if s.event.message.event == "budget_soft"]
    assert len(soft) == 1 and not [s for s in again if s.event.message.event == "budget_soft"]
    assert "Budget all/daily:" in soft[0].event.message.text

    env = {
        "CONTENTGEN_DATABASE_URL": database_url,
        "CONTENTGEN_CONFIG_DIR": str(config),
        "COLUMNS": "200",
    }
    get_settings.cache_clear()
    try:
        table = CliRunner().invoke(app, ["report"], env=env)
        as_json = CliRunner().invoke(app, ["report", "--json"], env=env)
    finally:
        get_settings.cache_clear()
    assert table.exit_code == 0, table.output
    assert "Budgets (config/budgets.toml; periods in UTC)" in table.output
    assert "all/daily" in table.output and "section=nowhere/monthly" in table.output
    assert "$100.00" in table.output and "this month" in table.output
    daily, monthly = json.loads(as_json.output)["budgets"]
    assert (daily["budget"], daily["limit_usd"]) == ("all/daily", "0.01")
    assert Decimal(daily["spent_usd"]) == summary.totals.cost_usd
    assert (monthly["spent_usd"], monthly["period"]) == ("0", "monthly")


def test_the_live_panel_shows_each_recurring_budget() -> None:
    """The panel of `contentgen run` has a row per recurring budget: spent of the limit."""
    import io

    from rich.console import Console

    from pipeline.cli.display import panel
    from pipeline.run import Progress

    progress = Progress()
    progress.budgets = [("sport daily", Decimal("12.4"), Decimal("25"))]
    out = io.StringIO()
    Console(file=out, width=120).print(panel(progress.view()))
    assert "budget sport daily" in out.getvalue()
    assert "$12.4000 of $25.0000" in out.getvalue()
    assert "budget sport daily $12.4000 of $25.0000" in progress.view().line()
