"""A full disk mid-run stops the run cleanly, and an answer paid for is always recorded at its
cost, also when it comes back through the response cache.

Issue 23: a journal folder that filled up mid-run ended in a 69-line traceback, and 32 answers
paid before the crash were later served by the response cache and recorded at $0 (5.4% of
the bill missing). The journal here is a 24 kB tmpfs in a mount namespace of its own.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete
from sqlalchemy.orm import Session

from pipeline.db.models import Generation
from tests.edge_support import cli_env, lines, on_tmpfs
from tests.engine_support import (
    billed_usd,
    completed_per_job,
    engine_settings,
    generations,
    job_rows,
    recorded_cost,
    requeue_succeeded,
    run_engine,
    seed,
    simulator,
    states,
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the journal is the point
def test_journal_filling_up_mid_run_stops_cleanly_and_records_what_was_paid(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The journal's file system fills after a few answers: the run stops with one line
    (exit 3), every answer paid for is recorded at its cost, the rest stay queued; with
    space again, the next run finishes them."""
    ids = seed(engine, ["summary", "headline"], n=20)
    with simulator(latency_scale=0.2) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        mount = tmp_path / "journal-fs"
        env = cli_env(settings, tmp_path, CONTENTGEN_JOURNAL_DIR=str(mount))
        result = on_tmpfs(mount, "size=24k", ["run", "-q", "--concurrency", "4"], env, tmp_path)
        billed_then = billed_usd(sim)
        recorded_then = recorded_cost(engine)
        after = states(engine)
        rerun = run_engine(settings)
        billed = billed_usd(sim)

    assert result.returncode == 3, result.stdout + result.stderr
    assert len(lines(result.stderr)) == 1, result.stderr
    [line] = lines(result.stderr)
    assert "journal of paid results cannot be written" in line, line
    assert "No space left on device" in line and "Traceback" not in result.stderr
    assert after["queued"] > 0 and after.get("running", 0) == 0, after
    assert recorded_then == billed_then  # nothing paid went unrecorded
    assert rerun.state == "finished"
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert recorded_cost(engine) == billed


def test_a_cached_answer_this_ledger_paid_and_never_recorded_is_recorded_at_its_cost(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Answers paid for and cached by a run of this database whose records were lost: served
    by the response cache, they are recorded at their cost (once), so recorded == billed."""
    ids = seed(engine, ["summary", "headline"], n=4)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        run_engine(settings)
        with Session(engine) as session:  # the records are lost, the answers stay cached
            session.execute(delete(Generation))
            session.commit()
        requeue_succeeded(engine)
        again = run_engine(settings)
        billed = billed_usd(sim)
        sent = sum(sim.ledger()["totals"]["requests"].values())

    assert sent == len(ids)  # the second run sent nothing: the response cache served it
    assert again.totals.succeeded == len(ids)
    assert recorded_cost(engine) == billed
    assert all(g.cost_usd > 0 and not g.from_cache for g in generations(engine))
    assert {j.state for j in job_rows(engine)} == {"succeeded"}


def test_a_cached_answer_another_database_paid_for_stays_free_here(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The same answers served to a run of another database (sharing the response cache):
    recorded at $0 from the cache there, as before; the bill was recorded where it was paid."""
    from pipeline.db import make_engine
    from pipeline.db.migrate import upgrade

    other_url = f"sqlite:///{tmp_path / 'other.db'}"
    upgrade(other_url)
    first, second = make_engine(sqlite_url), make_engine(other_url)
    try:
        seed(first, ["summary"], n=3)
        seed(second, ["summary"], n=3)
        with simulator() as sim:
            run_engine(engine_settings(sqlite_url, sim, tmp_path))
            run_engine(engine_settings(other_url, sim, tmp_path))
            billed = billed_usd(sim)
        assert recorded_cost(first) == billed
        assert recorded_cost(second) == Decimal(0)
        assert all(g.from_cache for g in generations(second))
    finally:
        first.dispose()
        second.dispose()
