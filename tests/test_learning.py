"""What a run learns for the next one, end to end through the simulator over HTTP.

The server is one a run has never seen: it bills with another tokenizer, or its cache keys
take fewer requests a minute than published. A run learns both from its answers and keeps
them in the database; the next dry run and the next run start from what it learnt. Whether a
run paces itself is decided on the forecast.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pipeline.client import current_cache_scope
from pipeline.db import (
    BillFigures,
    bill_history,
    load_key_rates,
    make_engine,
    open_run,
    record_bill_figures,
    save_key_rates,
)
from pipeline.limits import account_key
from pipeline.run import RunOptions, choose_pace, dry_run
from tests.engine_support import (
    engine_settings,
    recorded_cost,
    requeue_succeeded,
    run_engine,
    seed,
    simulator,
)

TASKS = ["summary", "headline"]
MODEL = "gpt-4.1-mini"


# The runs below go through SQLite only: what they keep in the database is read and written by
# the functions the last test checks on both databases.
@pytest.fixture
def lite(sqlite_url: str) -> Iterator[Engine]:
    """An engine on a fresh migrated SQLite file."""
    engine = make_engine(sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_a_dry_run_after_one_run_forecasts_a_server_billing_another_tokenizer(
    sqlite_url: str, lite: Engine, tmp_path: Path
) -> None:
    """A server that bills half our token count: the first forecast is far off; after one
    similar run the dry run is within 5% of the next run's cost and cached share."""
    with simulator(usage_token_factor=0.5) as sim:
        settings = engine_settings(sqlite_url, sim, tmp_path)
        seed(lite, TASKS, n=18)
        blind = dry_run(settings, RunOptions())
        first = run_engine(settings)
        seed(lite, TASKS, n=18, start=18)
        taught = dry_run(settings, RunOptions())
        second = run_engine(settings)
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])
    assert blind.cost_usd / first.totals.cost_usd > Decimal("1.2")
    assert abs(taught.cost_usd / second.totals.cost_usd - 1) <= Decimal("0.05")
    assert abs(taught.cached_ratio - second.totals.cached_ratio) <= 0.05
    assert abs(taught.input_tokens / second.totals.input_tokens - 1) <= 0.05
    assert recorded_cost(lite) == billed  # every job once, cost == bill


def test_keys_that_spill_teach_a_lower_rate_kept_for_the_next_run(
    sqlite_url: str, lite: Engine, tmp_path: Path
) -> None:
    """A server whose keys take 3 requests a minute: the run sees spills, learns a lower
    per-key rate, shows it in its summary and keeps it for the account and model; the next
    run starts from it and spills less."""
    with simulator(overflow_rpm=3) as sim:
        settings = engine_settings(sqlite_url, sim, tmp_path)
        seed(lite, TASKS, n=18)
        first = run_engine(settings)
        spilled_first = sim.ledger()["cache"]["overflow_routes"]
        requeue_succeeded(lite)
        second = run_engine(settings)
        spilled_second = sim.ledger()["cache"]["overflow_routes"] - spilled_first
    learnt = (first.key_rates or {})[MODEL]
    assert learnt["spills"] > 0
    assert learnt["rpm"] < 12
    assert "key_rates" in first.as_dict()
    with Session(lite) as session:
        kept = load_key_rates(session, account_key(current_cache_scope(settings)))
    assert kept[MODEL] <= (second.key_rates or {})[MODEL]["rpm"] + 1
    assert spilled_second < spilled_first


def test_a_nightly_run_paces_itself_when_the_saving_is_worth_it(
    sqlite_url: str, lite: Engine, tmp_path: Path
) -> None:
    """Ad-hoc runs go at full speed and the dry run says what pacing would save; a nightly
    run whose deadline allows it is paced; --no-pace and --pace override both."""
    seed(lite, TASKS, n=36)
    with simulator() as sim:
        settings = engine_settings(sqlite_url, sim, tmp_path, tpm_limit=2_000_000, deadline_h=1.0)
        adhoc = choose_pace(settings, RunOptions())
        nightly = choose_pace(settings, RunOptions(kind="nightly"))
        never = choose_pace(settings, RunOptions(kind="nightly", pace=False))
        forced = choose_pace(settings, RunOptions(pace=True))
        report = dry_run(settings, RunOptions())
        paced_run = run_engine(settings, RunOptions(limit=1, paced_rpm=600.0))
    assert not adhoc.paced and adhoc.reason == "ad-hoc run"
    assert nightly.paced and nightly.paced_rpm == 12.0
    assert nightly.saving_usd is not None and nightly.saving_usd > 0
    assert nightly.paced_s is not None and nightly.full_s is not None
    assert nightly.paced_s > nightly.full_s
    assert nightly.line().startswith("paced: 6 min instead of")
    assert not never.paced and never.reason == "--no-pace"
    assert forced.paced
    assert report.pacing.startswith("full speed:") and "save $" in report.pacing
    assert paced_run.paced_rpm == 600.0


def test_learnt_rates_and_bill_figures_are_kept_per_account_and_model(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    """Key rates are kept per (account, model), the latest wins; bill figures sum over the
    latest runs per (model, layout)."""
    with sessions() as session:
        save_key_rates(session, "acct", {MODEL: (9.5, 100, 3)})
        save_key_rates(session, "acct", {MODEL: (11.0, 200, 0), "gpt-5-mini": (12.0, 5, 0)})
        save_key_rates(session, "other", {MODEL: (4.0, 10, 2)})
        assert load_key_rates(session, "acct") == {MODEL: 11.0, "gpt-5-mini": 12.0}
        runs = [open_run(session, kind="cli", trigger="cli") for _ in range(2)]
        for run_id in runs:
            figures = BillFigures(1, 1000, 600, 0, 500, 350, 0)
            record_bill_figures(session, run_id, {(MODEL, "article_first"): figures})
        history = bill_history(session)
    assert history[MODEL, "article_first"] == BillFigures(2, 2000, 1200, 0, 1000, 700, 0)
