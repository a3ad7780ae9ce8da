"""Dead letters (issue 22): every job failed for good names a reason from a fixed vocabulary;
`results --failed --reason X` lists them, `jobs requeue --failed --reason X --stagger S` puts
them back spread over S seconds; migration 0014 backfills the reasons of older failures."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, select, text
from typer.testing import Result

from pipeline.db import (
    FAILURE_REASONS,
    jobs,
    make_engine,
    queue,
    reason_of,
    session_factory,
    upgrade,
)
from pipeline.db.migrate import alembic_config
from pipeline.db.models import Job, utcnow
from pipeline.run.runner import RunOptions
from tests.engine_support import engine_settings, run_engine, seed, simulator

Invoke = Callable[..., Result]


def reasons(engine: Engine) -> dict[int, tuple[str, str | None]]:
    """Each job's state and failure reason."""
    with session_factory(engine)() as s:
        rows = s.execute(select(Job.id, Job.state, Job.failure_reason))
        return {job_id: (state, reason) for job_id, state, reason in rows}


@pytest.mark.parametrize(
    ("error", "permanent", "reason"),
    [
        ("HTTP 401 invalid_api_key: Incorrect API key provided: sk-***", True, "auth"),
        ("HTTP 429 insufficient_quota: You exceeded your current quota", True, "quota"),
        ("HTTP 400 invalid_request_error: Unsupported parameter: 'temperature'", True,
         "bad_request"),
        ("output does not match the key_points schema: 'points' is required", True,
         "bad_request"),
        ("incomplete: max_output_tokens", True, "bad_request"),
        ("incomplete: content_filter", True, "content_filter"),
        ("response.failed invalid_prompt: flagged as potentially violating", True,
         "content_filter"),
        ("request of 40,000 tokens (prompt + max_output_tokens) is larger than the account's",
         True, "too_large"),
        ("HTTP 500 server_error: boom", False, "max_attempts"),
        ("HTTP 429 rate_limit_exceeded: slow down", False, "max_attempts"),
        ("batch batch_1 expired: batch_expired: This request could not be executed", False,
         "expired"),
        ("something nobody wrote down", True, "bad_request"),
    ],
)  # fmt: skip
def test_an_error_text_names_its_reason(error: str, permanent: bool, reason: str) -> None:
    """Our own error texts map to the vocabulary; a permanent error nobody named is
    bad_request, a retryable one that used the last attempt max_attempts."""
    assert reason_of(error, permanent=permanent) == reason
    assert reason in FAILURE_REASONS


def test_fail_records_the_reason_only_when_the_job_fails_for_good(engine: Engine) -> None:
    """jobs.fail: a retryable error with attempts left re-queues (no reason); the last
    attempt fails with max_attempts; a 400 fails at once with bad_request."""
    a, b = seed(engine, ["summary"], n=2)
    sessions = session_factory(engine)
    with sessions() as s:
        jobs.claim(s, "w", 2, lease_s=60)
        assert jobs.fail(s, a, "w", "HTTP 500 x", generation=None, max_attempts=2,
                         permanent=False) == "queued"  # fmt: skip
        assert jobs.fail(s, b, "w", "HTTP 400 invalid_request_error: no", generation=None,
                         max_attempts=2, permanent=True) == "failed"  # fmt: skip
        assert s.get(Job, a).failure_reason is None  # type: ignore[union-attr]
        jobs.claim(s, "w", 1, lease_s=60)
        assert jobs.fail(s, a, "w", "HTTP 500 x", generation=None, max_attempts=2,
                         permanent=False) == "failed"  # fmt: skip
    assert reasons(engine) == {a: ("failed", "max_attempts"), b: ("failed", "bad_request")}


def test_a_failing_api_leaves_dead_letters_that_are_listed_and_requeued_staggered(
    database_url: str, engine: Engine, tmp_path: Path, cli: Invoke
) -> None:
    """Every answer a 500: the 4 jobs fail with max_attempts; `results --failed --reason
    max_attempts` lists them, `--reason bad_request` none, a reason not in the vocabulary is
    exit 2 naming the valid ones; `jobs requeue --failed --reason max_attempts --stagger 600`
    queues them 150 s apart, and a claim now takes only the first."""
    ids = seed(engine, ["summary", "headline"], n=2)
    with simulator(fail_rate=1.0) as sim:
        run_engine(engine_settings(database_url, sim, tmp_path, max_attempts=1))
    assert set(reasons(engine).values()) == {("failed", "max_attempts")}
    counted = cli("jobs")
    assert "failed by reason: max_attempts 4" in counted.output, counted.output
    assert json.loads(cli("jobs", "--json").stdout)["failed_by_reason"] == {"max_attempts": 4}

    listed = cli("results", "--failed", "--reason", "max_attempts", "--json")
    assert listed.exit_code == 0, listed.output
    found = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["job_id"] for r in found) == ids
    assert {r["reason"] for r in found} == {"max_attempts"}
    none = cli("results", "--failed", "--reason", "bad_request", "--format", "table")
    assert none.exit_code == 0
    assert "no failed jobs match (reason=bad_request)" in none.output

    wrong = cli("results", "--failed", "--reason", "timeout")
    assert wrong.exit_code == 2
    assert "unknown failure reason 'timeout'" in wrong.output
    assert all(reason in wrong.output for reason in FAILURE_REASONS)
    assert cli("jobs", "requeue", "--failed", "--reason", "nope").exit_code == 2
    assert cli("jobs", "requeue", "--reason", "auth", "--expired").exit_code == 2

    before = utcnow()
    moved = cli("jobs", "requeue", "--failed", "--reason", "max_attempts", "--stagger", "600")
    assert moved.exit_code == 0, moved.output
    assert "re-queued 4 failed job(s) (max_attempts), spread over 600 s" in moved.output
    with session_factory(engine)() as s:
        queued = s.execute(select(Job.id, Job.not_before, Job.failure_reason, Job.attempts)).all()
        waits = sorted((nb - before).total_seconds() for _, nb, _, _ in queued)
        assert {(r, a) for _, _, r, a in queued} == {(None, 0)}
        assert waits[0] < 5 and 145 < waits[1] - waits[0] < 155 and waits[3] < 455
        assert len(jobs.claim(s, "now", 10, lease_s=60)) == 1
        later = utcnow() + dt.timedelta(seconds=600)
        assert len(jobs.claim(s, "later", 10, lease_s=60, now=later)) == 3


def _at_0010_with_failures(url: str) -> None:
    """A database at the revision before 0014 with failed jobs of every kind of old error."""
    script = ScriptDirectory.from_config(alembic_config(url))
    previous = script.get_revision("0014").down_revision
    assert isinstance(previous, str)
    command.upgrade(alembic_config(url), previous)
    engine = make_engine(url)
    errors = [
        "HTTP 401 invalid_api_key: refused",
        "RetryableAPIError: HTTP 500 boom",
        "HTTP 400 invalid_request_error: bad",
        "batch batch_9 expired: batch_expired: late",
        None,
        "a cosmic ray",
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO articles (id, source_id, title, body, content_hash, "
                    "created_at, updated_at) VALUES (1, 'a1', 'T', 'B', 'h', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            for n, error in enumerate(errors, 1):
                conn.execute(
                    text(
                        "INSERT INTO jobs (id, article_id, task, state, priority, attempts, "
                        "content_hash, last_error, created_at, updated_at) VALUES (:n, 1, :t, "
                        "'failed', 0, 3, 'h', :e, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"n": n, "t": f"task{n}", "e": error},
                )
            conn.execute(
                text(
                    "INSERT INTO jobs (id, article_id, task, state, priority, attempts, "
                    "content_hash, last_error, failure_reason, created_at, updated_at) VALUES "
                    "(7, 1, 'task7', 'failed', 0, 1, 'h', 'HTTP 401', 'worker_lost', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()


def _check_backfilled(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT id, failure_reason FROM jobs")).all())
    finally:
        engine.dispose()
    assert rows == {
        1: "auth",
        2: "max_attempts",
        3: "bad_request",
        4: "expired",
        5: "unknown",
        6: "unknown",
        7: "worker_lost",  # a reason already named is kept
    }


def test_0014_backfills_reasons_on_sqlite(tmp_path: Path) -> None:
    """Failures stored before 0014 get a reason read from their last error, else unknown."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _at_0010_with_failures(url)
    _check_backfilled(url)


@pytest.mark.postgres
def test_0014_backfills_reasons_on_postgres(blank_postgres_url: str) -> None:
    """The same on PostgreSQL."""
    _at_0010_with_failures(blank_postgres_url)
    _check_backfilled(blank_postgres_url)


def test_a_run_waits_for_staggered_jobs_instead_of_ending(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Three dead letters requeued over 2 s: one run sends all three, each at its time (the
    run waits for the next instead of ending with jobs queued)."""
    ids = seed(engine, ["headline"], n=3)
    with session_factory(engine)() as s:
        s.execute(Job.__table__.update().values(state="failed", failure_reason="max_attempts"))
        s.commit()
        assert queue.requeue_failed(s, reason="max_attempts", stagger_s=2.0) == 3
    with simulator() as sim:
        started = time.monotonic()
        summary = run_engine(engine_settings(database_url, sim, tmp_path))
        wall_s = time.monotonic() - started
    assert summary.totals.succeeded == 3
    assert set(reasons(engine).values()) == {("succeeded", None)}
    assert sorted(reasons(engine)) == ids
    assert 1.2 < wall_s < 15, wall_s


def test_a_refused_prompt_and_a_cut_answer_are_content_filter_and_bad_request(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Realtime, through the simulator: a 400 invalid_prompt fails its job with
    content_filter, an answer cut at max_output_tokens with bad_request, at once (no retry)."""
    seed(engine, ["headline"], n=3)
    with simulator() as sim:
        sim.script("invalid_prompt", "incomplete", "ok")
        settings = engine_settings(database_url, sim, tmp_path, concurrency=1)
        run_engine(settings, RunOptions(limit=3))
    got = sorted(reasons(engine).values(), key=str)
    assert got == [
        ("failed", "bad_request"),
        ("failed", "content_filter"),
        ("succeeded", None),
    ], got
