"""Crash safety: killed and stopped workers, and several workers on one queue.

Workers are real processes (``run_batch(..., handle_signals=True)``) talking over HTTP to a
simulator that runs in the test process with enough latency that a signal lands mid-run. The
test watches the database to pick its moment, then checks that every job is generated exactly
once in the end: a killed worker loses only its in-flight calls, a stopped one loses nothing.
One test runs the ``Runner`` in-process with a session factory that stops it at the exact
moment a claim is written (the factory is a dependency the runner takes, not a patch).
"""

from __future__ import annotations

import asyncio
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from pipeline.client.wiring import build_client_stack
from pipeline.db.engine import make_engine, session_factory
from pipeline.money.pricing import load_pricing
from pipeline.prompts.profiles import load_profiles
from pipeline.run.config import Config
from pipeline.run.runner import Runner, RunOptions
from tests.engine_support import (
    completed_per_job,
    engine_settings,
    finish,
    generations,
    job_rows,
    ledger_requests,
    recorded_cost,
    run_engine,
    run_row,
    run_rows,
    seed,
    simulator,
    states,
    wait_until,
    worker,
)

# About half a second per summary request: a run of 8 jobs two at a time takes ~2.5 s.
SLOW = 0.4


def test_killed_worker_loses_only_in_flight_calls(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """After SIGKILL mid-run, a rerun right away takes the dead worker's jobs back (same
    host, pid gone), records what it paid for, and completes every job exactly once."""
    ids = seed(engine, ["summary"], n=8)
    with simulator(latency_scale=SLOW) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        with worker(settings, concurrency=2) as proc:
            wait_until(lambda: len(generations(engine)) >= 1, proc=proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        stranded = [job.id for job in job_rows(engine) if job.state == "running"]
        assert stranded, "the worker was killed with nothing in flight or queued"
        dead_run = run_rows(engine)[0]
        assert dead_run.state == "running"

        sim.configure(latency_scale=0.0)
        started = time.monotonic()
        rerun = run_engine(settings)
        assert time.monotonic() - started < 10
        counts = ledger_requests(sim)
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])

    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert {g.status for g in generations(engine)} == {"completed"}
    assert states(engine) == {"succeeded": len(ids)}
    assert all(job.attempts == 1 for job in job_rows(engine))  # nothing counted unsent
    assert run_row(engine, dead_run.id).state == "abandoned"
    by_rerun = {g.job_id for g in generations(engine, rerun.run_id)}
    by_dead = {g.job_id for g in generations(engine, dead_run.id)}
    assert by_rerun | by_dead == set(ids) and not by_rerun & by_dead
    # Paid twice at most for what was in flight when the worker died (concurrency 2).
    assert len(ids) <= counts["completed"] <= len(ids) + 2
    # The bill less what was recorded is at most the calls in flight at the kill (2).
    costs = [g.cost_usd for g in generations(engine)]
    assert recorded_cost(engine) <= billed <= recorded_cost(engine) + 2 * max(costs)


def test_sigterm_finishes_in_flight_and_releases_the_rest(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """SIGTERM mid-run: exit 0, in-flight calls recorded, unsent jobs queued; a rerun ends it."""
    ids = seed(engine, ["summary"], n=8)
    with simulator(latency_scale=SLOW) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        with worker(settings, concurrency=2) as proc:
            wait_until(lambda: len(generations(engine)) >= 1, proc=proc)
            proc.send_signal(signal.SIGTERM)
            stopped = finish(proc, timeout_s=30)

        assert (stopped["state"], stopped["stop_reason"]) == ("stopped", "signal SIGTERM")
        rows = job_rows(engine)
        assert {job.state for job in rows} <= {"succeeded", "queued"}
        done = {job.id for job in rows if job.state == "succeeded"}
        queued = [job for job in rows if job.state == "queued"]
        assert queued, "SIGTERM came too late to leave anything unsent"
        assert all(job.attempts == 0 and job.lease_owner is None for job in queued)
        assert completed_per_job(engine) == dict.fromkeys(done, 1)
        assert len(generations(engine)) == len(done)
        assert stopped["released"] == len(queued)
        assert stopped["succeeded"] == len(done)
        run = run_row(engine, stopped["run_id"])
        assert (run.state, run.stop_reason, run.succeeded) == (
            "stopped",
            "signal SIGTERM",
            len(done),
        )

        sim.configure(latency_scale=0.0)
        rerun = run_engine(settings)
        counts = ledger_requests(sim)

    assert rerun.claimed == len(queued)
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert states(engine) == {"succeeded": len(ids)}
    assert counts["completed"] == len(ids)  # nothing was sent twice


async def test_stop_while_a_claim_is_in_progress_strands_no_job(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A stop that lands while a claim is being written still hands every claimed job back."""
    seed(engine, ["summary"], n=4)
    loop = asyncio.get_running_loop()
    runner: Runner | None = None
    stopped_during_claim: list[bool] = []

    def stop_mid_claim(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # The claim is the one UPDATE ... RETURNING on jobs; stop as it starts, let the stop
        # take effect, then let the claim commit.
        sql = " ".join(statement.split()).upper()
        if sql.startswith("UPDATE JOBS") and "RETURNING" in sql and not stopped_during_claim:
            assert runner is not None
            stopped_during_claim.append(True)
            loop.call_soon_threadsafe(runner.stop, "signal SIGTERM")
            time.sleep(0.3)

    watched = make_engine(database_url)
    event.listen(watched, "before_cursor_execute", stop_mid_claim)
    try:
        with simulator() as sim:
            settings = engine_settings(database_url, sim, tmp_path)
            config = Config(
                profiles=load_profiles(settings.config_dir),
                prices=load_pricing(settings.config_dir / "pricing.toml"),
                sessions=session_factory(watched),
            )
            runner = Runner(
                settings, RunOptions(), config=config, stack=build_client_stack(settings)
            )
            summary = await runner.run()
            counts = ledger_requests(sim)
    finally:
        watched.dispose()

    assert stopped_during_claim == [True]
    assert (summary.state, summary.stop_reason) == ("stopped", "signal SIGTERM")
    assert sum(counts.values()) == 0
    assert generations(engine) == []
    assert states(engine) == {"queued": 4}


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_two_workers_on_one_postgres_queue_generate_each_job_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Two worker processes claiming from one PostgreSQL queue generate every job exactly once."""
    ids = seed(engine, ["summary", "headline"], n=8)
    with simulator(latency_scale=0.1) as sim:
        first = engine_settings(database_url, sim, tmp_path / "a")
        second = engine_settings(database_url, sim, tmp_path / "b")
        with (
            worker(first, concurrency=4, chunk_size=2) as a,
            worker(second, concurrency=4, chunk_size=2) as b,
        ):
            summaries = [finish(a), finish(b)]
        counts = ledger_requests(sim)

    assert sum(s["claimed"] for s in summaries) == len(ids)
    assert sum(s["succeeded"] for s in summaries) == len(ids)
    assert all(s["lost_leases"] == 0 for s in summaries)
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert len(generations(engine)) == len(ids)
    assert states(engine) == {"succeeded": len(ids)}
    # Separate response caches: a job done twice would have been paid twice.
    assert counts["completed"] == len(ids)
