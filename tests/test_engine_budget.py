"""A run's budget through the whole engine: many requests in flight, the spend never passes it.

The simulator's ledger is the independent witness of what was spent; the database must agree
with it, the run must say it stopped for the budget, and the jobs it did not send stay queued
for a later run with more money.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pipeline.run.runner import RunOptions
from tests.engine_support import (
    billed_usd,
    completed_per_job,
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    recorded_cost,
    run_engine,
    run_row,
    seed,
    simulator,
)


@pytest.mark.parametrize(
    ("tasks", "articles", "budget"),
    [
        pytest.param(("summary", "headline"), 12, Decimal("0.004"), id="gpt-4.1-mini"),
        pytest.param(("fact_check",), 10, Decimal("0.03"), id="o4-mini-reasoning"),
    ],
)
def test_budget_holds_with_many_requests_in_flight(
    database_url: str,
    engine: Engine,
    tmp_path: Path,
    tasks: tuple[str, ...],
    articles: int,
    budget: Decimal,
) -> None:
    """At concurrency 64 the spend stays within the budget, the run stops, the rest stay queued."""
    ids = seed(engine, tasks, n=articles)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        summary = run_engine(settings, RunOptions(concurrency=64, budget_usd=budget))
        billed = billed_usd(sim)

    assert billed <= budget
    assert recorded_cost(engine) == billed
    assert (summary.state, summary.stop_reason) == ("budget", "budget")
    run = run_row(engine, summary.run_id)
    assert (run.state, run.stop_reason, run.budget_usd) == ("budget", "budget", budget)
    assert run.cost_usd == billed

    rows = job_rows(engine)
    done = {job.id for job in rows if job.state == "succeeded"}
    queued = [job for job in rows if job.state == "queued"]
    assert done, "the budget allowed nothing at all"
    assert queued, "the budget was never reached"
    assert len(done) + len(queued) == len(ids)
    assert all(job.attempts == 0 and job.lease_owner is None for job in queued)
    assert completed_per_job(engine) == dict.fromkeys(done, 1)
    assert len(generations(engine)) == len(done)
    assert summary.released == len(queued)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the database plays no part
def test_attempts_abandoned_to_client_timeouts_stay_inside_the_budget(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Issue 23: with client timeouts (1 s) shorter than the answers (2.5 s) the server bills
    every abandoned attempt, and the run overspent its budget by 31%. Each abandoned attempt
    now stays reserved at its worst case and a retry reserves anew, so the bill stays within
    the budget; the jobs not done stay queued with their attempts untouched."""
    ids = seed(engine, ["summary"], n=12)
    budget = Decimal("0.01")
    with simulator(slow_rate=1.0, slow_extra_s=2.5) as sim:
        settings = engine_settings(
            database_url, sim, tmp_path, request_timeout_s=1.0, outage_window_s=60.0
        )
        summary = run_engine(settings, RunOptions(concurrency=8, budget_usd=budget))
        time.sleep(2.5)  # the last abandoned attempts finish (and are billed) on the server
        billed = billed_usd(sim)
        sent = ledger_requests(sim)

    assert sent["completed"] >= 3, sent  # the server finished (and billed) what we abandoned
    assert billed <= budget, (billed, sent)
    assert (summary.state, summary.stop_reason) == ("budget", "budget")
    assert recorded_cost(engine) == 0  # no answer ever came back
    rows = job_rows(engine)
    assert {j.state for j in rows} == {"queued"} and len(rows) == len(ids)
    assert all(j.attempts == 0 and j.lease_owner is None for j in rows)
