"""`contentgen jobs regenerate`: succeeded jobs go back to the queue on purpose, history kept,
and the next run asks the API again instead of the response cache."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session
from typer.testing import Result

from pipeline.db.engine import session_factory
from pipeline.db.models import Generation, Job, utcnow
from pipeline.db.regeneration import RegenerateFilter, regenerate
from pipeline.prompts.requests import REGENERATION_METADATA, response_cache_key
from pipeline.run.runner import run_batch
from tests.engine_support import (
    engine_settings,
    generations,
    ledger_requests,
    requeue_succeeded,
    seed,
    simulator,
)

Invoke = Callable[..., Result]


def _jobs(engine: Engine) -> dict[int, Job]:
    with Session(engine) as session:
        return {job.id: job for job in session.scalars(select(Job))}


def _set(engine: Engine, job_id: int, **values: object) -> None:
    with session_factory(engine)() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
        session.commit()


def _generation_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Generation)) or 0)


def test_regenerated_job_calls_the_api_again_and_keeps_history(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A plain re-queue is answered by the response cache; a regenerated job by the API."""
    seed(engine, ["summary", "headline"], n=2)
    # One simulator (the cache's scope is its address) and one response cache (tmp_path).
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        run_batch(settings)
        assert sum(ledger_requests(sim).values()) == 4
        before = {g.id: g.output_text for g in generations(engine)}
        summaries = [j.id for j in _jobs(engine).values() if j.task == "summary"]

        assert requeue_succeeded(engine) == 4
        run_batch(settings)
        assert sum(ledger_requests(sim).values()) == 4  # every answer came from the cache
        cached = generations(engine)[len(before) :]
        assert len(cached) == 4 and all(g.from_cache for g in cached)

        with session_factory(engine)() as session:
            result = regenerate(session, RegenerateFilter(tasks=("summary",)))
        assert (result.queued, result.waiting) == (2, 0)
        jobs = _jobs(engine)
        for job_id in summaries:
            assert jobs[job_id].state == "queued" and jobs[job_id].attempts == 0
            assert jobs[job_id].regenerations == 1
        run_batch(settings)
        assert sum(ledger_requests(sim).values()) == 6  # the API answered both summaries

    rows = generations(engine)
    new = [g for g in rows if g.id not in before and not g.from_cache]
    assert sorted(g.job_id for g in new) == sorted(summaries)
    assert all(g.status == "completed" and g.output_text for g in new)
    assert {g.id: g.output_text for g in rows if g.id in before} == before  # history kept
    assert all(j.state == "succeeded" for j in _jobs(engine).values())


def test_only_succeeded_jobs_are_regenerated(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Running (leased), queued, failed and waiting jobs are left exactly as they were."""
    ids = seed(engine, ["summary", "headline"], n=3)
    now = utcnow()
    states = ["succeeded", "running", "queued", "failed", "waiting", "succeeded"]
    for job_id, state in zip(ids, states, strict=True):
        lease = {"lease_owner": "host:1:x", "lease_expires_at": now} if state == "running" else {}
        _set(engine, job_id, state=state, attempts=2, last_error="old", **lease)
    with session_factory(engine)() as session:
        dry = regenerate(session, RegenerateFilter(tasks=("summary", "headline")), dry_run=True)
    assert (dry.jobs, dry.dry_run) == (2, True)
    assert all(j.regenerations == 0 and j.attempts == 2 for j in _jobs(engine).values())

    with session_factory(engine)() as session:
        done = regenerate(session, RegenerateFilter(tasks=("summary", "headline")))
    assert done.jobs == 2
    jobs = _jobs(engine)
    for job_id, state in zip(ids, states, strict=True):
        job = jobs[job_id]
        if state == "succeeded":
            assert (job.state, job.attempts, job.last_error, job.regenerations) == (
                "queued",
                0,
                None,
                1,
            )
        else:
            assert (job.state, job.attempts, job.last_error, job.regenerations) == (
                state,
                2,
                "old",
                0,
            )
    assert jobs[ids[1]].lease_owner == "host:1:x"


def test_filters_select_by_article_task_batch_and_run(engine: Engine) -> None:
    """--article, --tasks, --batch and --run narrow the jobs; together they all must match."""
    ids = seed(engine, ["summary", "headline"], n=3)
    with session_factory(engine)() as session:
        session.execute(update(Job).values(state="succeeded"))
        session.execute(update(Job).where(Job.id.in_(ids[:2])).values(batch_label="evening"))
        session.add(
            Generation(job_id=ids[3], task="headline", status="completed", request_model="m")
        )
        session.commit()
        first = session.get(Job, ids[0])
        assert first is not None
        source_id = first.article_id
        run_gen = session.scalars(select(Generation)).one()

    def count(flt: RegenerateFilter) -> int:
        with session_factory(engine)() as session:
            return regenerate(session, flt, dry_run=True).jobs

    with Session(engine) as session:
        from pipeline.db.models import Article

        external = session.scalar(select(Article.source_id).where(Article.id == source_id))
    assert external is not None
    assert count(RegenerateFilter(articles=(external,))) == 2
    assert count(RegenerateFilter(articles=(external,), tasks=("headline",))) == 1
    assert count(RegenerateFilter(tasks=("summary",))) == 3
    assert count(RegenerateFilter(batch_label="evening")) == 2
    assert count(RegenerateFilter(batch_label="evening", tasks=("nothing",))) == 0
    assert run_gen.run_id is None  # a generation without a run: --run never matches it
    assert count(RegenerateFilter(run_id=12345)) == 0
    with pytest.raises(ValueError, match="at least one filter"):
        count(RegenerateFilter())


def test_a_follower_regenerated_with_its_parent_waits(engine: Engine) -> None:
    """A chained task regenerated together with its parent waits for the parent's new text."""
    ids = seed(engine, ["summary", "headline"], n=1)
    with session_factory(engine)() as session:
        session.execute(update(Job).values(state="succeeded"))
        session.commit()
        result = regenerate(
            session,
            RegenerateFilter(tasks=("summary", "headline")),
            follows={"headline": "summary"},
        )
    assert (result.queued, result.waiting) == (1, 1)
    jobs = _jobs(engine)
    assert {jobs[i].task: jobs[i].state for i in ids} == {
        "summary": "queued",
        "headline": "waiting",
    }
    with session_factory(engine)() as session:
        session.execute(update(Job).values(state="succeeded"))
        session.commit()
        alone = regenerate(
            session, RegenerateFilter(tasks=("headline",)), follows={"headline": "summary"}
        )
    assert (alone.queued, alone.waiting) == (1, 0)  # its parent's text stays: go now


def test_regeneration_is_part_of_the_response_cache_key() -> None:
    """Only the regeneration count among metadata changes the key; without it, keys are as
    they always were."""
    body = {"model": "m", "input": "hi", "metadata": {"job_id": "1", "task": "summary"}}
    plain = response_cache_key(body)
    assert response_cache_key({**body, "metadata": {"job_id": "2"}}) == plain
    first = {**body, "metadata": {**body["metadata"], REGENERATION_METADATA: "1"}}
    second = {**body, "metadata": {**body["metadata"], REGENERATION_METADATA: "2"}}
    assert len({plain, response_cache_key(first), response_cache_key(second)}) == 3
    assert response_cache_key({"model": "m", "input": "hi"}) == plain


def test_cli_requires_a_filter_and_counts(cli: Invoke, engine: Engine) -> None:
    """No filter is exit 2 saying why; --dry-run counts; the real thing re-queues and says so."""
    seed(engine, ["summary", "headline"], n=2)
    with session_factory(engine)() as session:
        session.execute(update(Job).values(state="succeeded"))
        session.commit()
    bare = cli("jobs", "regenerate")
    assert bare.exit_code == 2 and "say what to regenerate" in bare.stderr
    unknown = cli("jobs", "regenerate", "--task", "sumary")
    assert unknown.exit_code == 2 and "unknown task(s) sumary" in unknown.stderr
    dry = cli("jobs", "regenerate", "--tasks", "summary", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would regenerate 2 succeeded job(s)")
    assert all(j.state == "succeeded" for j in _jobs(engine).values())
    done = cli("jobs", "regenerate", "-t", "summary,headline", "--json")
    assert json.loads(done.stdout) == {
        "regenerated": 4,
        "queued": 4,
        "waiting": 0,
        "dry_run": False,
    }
    again = cli("jobs", "regenerate", "--task", "summary")
    assert "re-queued 0 succeeded job(s)" in again.stdout
    assert _generation_count(engine) == 0
