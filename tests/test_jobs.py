"""The job repository: enqueue (idempotent, re-queues changed content), claims with leases,
completion, failure, release and expiry. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import jobs, leases, queue
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Article, Generation, Job, utcnow
from pipeline.intake.reader import ArticleIn, content_hash

TASKS = ["summary", "headline"]
T0 = dt.datetime(2025, 11, 20, 12, 0, 0)


def article(n: int, body: str | None = None, **fields: Any) -> ArticleIn:
    """A valid article with source id ``a<n>``."""
    return ArticleIn(
        source_id=f"a{n}",
        title=f"Title {n}",
        body=body or f"Body of article {n}.",
        section=fields.pop("section", "politics"),
        **fields,
    )


def generation(job_id: int, task: str = "summary", text_: str = "ok") -> Generation:
    """A completed generation row for ``job_id``."""
    return Generation(
        job_id=job_id,
        task=task,
        status="completed",
        request_model="gpt-4.1-mini",
        output_text=text_,
    )


def job_rows(session: Session) -> list[Job]:
    """Every job, freshly read, ordered by id."""
    session.expire_all()
    return list(session.scalars(select(Job).order_by(Job.id)))


def states(session: Session) -> dict[tuple[str, str], str]:
    """(source_id, task) -> state."""
    rows = session.execute(
        select(Article.source_id, Job.task, Job.state).join(Article, Article.id == Job.article_id)
    )
    return {(sid, task): state for sid, task, state in rows}


# --- enqueue -------------------------------------------------------------------------------


def test_enqueue_creates_articles_and_queued_jobs(sessions: sessionmaker[Session]) -> None:
    """Each (article, task) becomes one queued job carrying the article's content hash."""
    with sessions() as s:
        result = queue.enqueue(s, [article(i) for i in range(5)], TASKS, batch_label="b1")
        assert result == queue.EnqueueResult(accepted=10, articles_new=5)
        rows = job_rows(s)
        assert len(rows) == 10
        assert {r.state for r in rows} == {"queued"}
        assert {r.attempts for r in rows} == {0}
        assert {r.batch_label for r in rows} == {"b1"}
        stored = {a.source_id: a for a in s.scalars(select(Article))}
        assert stored["a3"].content_hash == article(3).content_hash
        assert all(r.content_hash == article(0).content_hash for r in rows[:2])


def test_jobs_are_created_in_input_order(sessions: sessionmaker[Session]) -> None:
    """Claims take the oldest job first, so job ids follow the order of the input."""
    items = [article(i, metadata={"n": i} if i % 2 else None) for i in range(6)]
    with sessions() as s:
        queue.enqueue(s, items, ["summary"])
        claimed = jobs.claim(s, "w", 6, lease_s=60)
    assert [c.source_id for c in claimed] == [f"a{i}" for i in range(6)]


def test_enqueue_twice_is_a_no_op(sessions: sessionmaker[Session]) -> None:
    """Enqueueing the same articles and tasks again changes nothing."""
    items = [article(i) for i in range(4)]
    with sessions() as s:
        queue.enqueue(s, items, TASKS)
        before = [(r.id, r.state, r.updated_at, r.content_hash) for r in job_rows(s)]
        again = queue.enqueue(s, items, TASKS, batch_label="other")
        after = [(r.id, r.state, r.updated_at, r.content_hash) for r in job_rows(s)]
    assert again == queue.EnqueueResult(unchanged=8)
    assert after == before


def test_changed_body_requeues_that_articles_jobs(sessions: sessionmaker[Session]) -> None:
    """A new body puts the article's finished jobs back in the queue with fresh attempts."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2)], TASKS)
        for claimed in jobs.claim(s, "w", 10, lease_s=60):
            assert jobs.complete(s, claimed.id, "w", generation(claimed.id, claimed.task))
        result = queue.enqueue(s, [article(1, body="A corrected body."), article(2)], TASKS)
        assert result == queue.EnqueueResult(requeued=2, unchanged=2, articles_updated=1)
        assert states(s) == {
            ("a1", "summary"): "queued",
            ("a1", "headline"): "queued",
            ("a2", "summary"): "succeeded",
            ("a2", "headline"): "succeeded",
        }
        requeued = [r for r in job_rows(s) if r.state == "queued"]
        assert {r.attempts for r in requeued} == {0}
        assert {r.content_hash for r in requeued} == {
            article(1, body="A corrected body.").content_hash
        }
        stored = s.scalars(select(Article).where(Article.source_id == "a1")).one()
        assert stored.body == "A corrected body."


def test_changed_title_or_section_also_requeues(sessions: sessionmaker[Session]) -> None:
    """Title and section are part of the content hash, like the body."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2)], ["summary"])
        result = queue.enqueue(
            s,
            [
                ArticleIn(
                    source_id="a1", title="New title", body="Body of article 1.", section="politics"
                ),
                article(2, section="world"),
            ],
            ["summary"],
        )
    assert result.requeued == 2


def test_changed_url_updates_the_article_without_requeue(sessions: sessionmaker[Session]) -> None:
    """url, published_at and metadata are kept current but do not cost a new generation."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        changed = article(1, url="https://x.example/1", metadata={"k": 1}, published_at=T0)
        result = queue.enqueue(s, [changed], ["summary"])
        assert result == queue.EnqueueResult(unchanged=1, articles_updated=1)
        s.expire_all()
        stored = s.scalars(select(Article)).one()
        assert (stored.url, stored.meta, stored.published_at) == (
            "https://x.example/1",
            {"k": 1},
            T0,
        )
        result = queue.enqueue(s, [article(1)], ["summary"])  # and back to no metadata
        assert result.articles_updated == 1
        assert s.execute(text("SELECT metadata IS NULL FROM articles")).scalar_one()


def test_missing_metadata_is_sql_null(sessions: sessionmaker[Session]) -> None:
    """An article without metadata stores SQL NULL, not the JSON text 'null'."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2, metadata={"tags": ["a"]})], ["summary"])
        rows = s.execute(
            text("SELECT source_id, metadata IS NULL FROM articles ORDER BY source_id")
        )
        assert [(sid, bool(null)) for sid, null in rows] == [("a1", True), ("a2", False)]


def test_new_task_for_a_known_article_is_accepted(sessions: sessionmaker[Session]) -> None:
    """Adding a task later creates only the missing jobs."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        result = queue.enqueue(s, [article(1)], ["summary", "key_points"])
    assert result == queue.EnqueueResult(accepted=1, unchanged=1)


def test_requeue_of_a_running_job_takes_the_lease_away(sessions: sessionmaker[Session]) -> None:
    """A worker still generating old content finds its lease gone; its tokens are still kept."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        (claimed,) = jobs.claim(s, "old-worker", 1, lease_s=600)
        queue.enqueue(s, [article(1, body="New content.")], ["summary"])
        assert not jobs.complete(s, claimed.id, "old-worker", generation(claimed.id))
        (row,) = job_rows(s)
        assert (row.state, row.lease_owner, row.attempts) == ("queued", None, 0)
        assert s.scalar(select(Generation.id).where(Generation.job_id == claimed.id)) is not None


def test_chunked_enqueue_counts_add_up(sessions: sessionmaker[Session]) -> None:
    """Chunking only changes the transaction size, not the outcome."""
    with sessions() as s:
        result = queue.enqueue(s, (article(i) for i in range(23)), TASKS, chunk_size=4)
        assert result == queue.EnqueueResult(accepted=46, articles_new=23)
        assert len(job_rows(s)) == 46


def test_repeated_id_in_one_call_keeps_the_last(sessions: sessionmaker[Session]) -> None:
    """Two versions of an article in one call: the later one wins, one job per task."""
    with sessions() as s:
        queue.enqueue(s, [article(1, body="first"), article(1, body="second")], ["summary"])
        assert s.scalars(select(Article.body)).all() == ["second"]
        assert len(job_rows(s)) == 1


def test_start_states_let_chained_tasks_wait(sessions: sessionmaker[Session]) -> None:
    """A task mapped to 'waiting' starts there (and returns there when content changes)."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], TASKS, start_states={"headline": "waiting"})
        assert states(s) == {("a1", "summary"): "queued", ("a1", "headline"): "waiting"}
        assert [c.task for c in jobs.claim(s, "w", 5, lease_s=60)] == ["summary"]


def test_enqueue_refuses_bad_arguments(sessions: sessionmaker[Session]) -> None:
    """No task, an overlong batch label or an odd start state is an error, not a silent no-op."""
    with sessions() as s:
        with pytest.raises(ValueError, match="at least one task"):
            queue.enqueue(s, [article(1)], [])
        with pytest.raises(ValueError, match="batch label"):
            queue.enqueue(s, [article(1)], ["summary"], batch_label="x" * 129)
        with pytest.raises(ValueError, match="start 'queued' or 'waiting'"):
            queue.enqueue(s, [article(1)], ["summary"], start_states={"summary": "succeeded"})
        assert s.scalar(select(func.count()).select_from(Article)) == 0


# --- claims and leases ---------------------------------------------------------------------


def test_claim_takes_highest_priority_then_oldest(sessions: sessionmaker[Session]) -> None:
    """Priority first, then job id; a claimed job is leased, never re-claimed, and its attempt
    is not counted yet (that happens when its outcome is recorded)."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2)], ["summary"])
        queue.enqueue(s, [article(3)], ["summary"], priority=5)
        first = jobs.claim(s, "w1", 2, lease_s=60, now=T0)
        second = jobs.claim(s, "w2", 5, lease_s=60, now=T0)
        assert {c.source_id for c in first} == {"a3", "a1"}
        assert [c.source_id for c in second] == ["a2"]
        assert jobs.claim(s, "w3", 5, lease_s=60) == []
        rows = {r.id: r for r in job_rows(s)}
        lease = rows[first[0].id]
        assert (lease.state, lease.lease_owner, lease.attempts) == ("running", "w1", 0)
        assert lease.lease_expires_at == T0 + dt.timedelta(seconds=60)
        by_source = {c.source_id: c for c in first}
        assert (by_source["a3"].body, by_source["a3"].attempts) == ("Body of article 3.", 0)


def test_claim_filters_by_task_and_batch(sessions: sessionmaker[Session]) -> None:
    """Workers can claim only some tasks or one batch label."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], TASKS, batch_label="x")
        queue.enqueue(s, [article(2)], TASKS, batch_label="y")
        assert [
            (c.source_id, c.task)
            for c in jobs.claim(s, "w", 9, lease_s=60, tasks=["headline"], batch_label="y")
        ] == [("a2", "headline")]
        assert jobs.claim(s, "w", 0, lease_s=60) == []


def test_claim_returns_fresh_values_to_a_session_that_saw_the_job(
    sessions: sessionmaker[Session],
) -> None:
    """A Job already loaded in the session does not leak its old attempts into the claim."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        (row,) = job_rows(s)  # now in the identity map with attempts=0
        assert row.attempts == 0
        (claimed,) = jobs.claim(s, "w", 1, lease_s=60, count_attempt=True)
        assert claimed.attempts == 1


def test_complete_records_the_generation(sessions: sessionmaker[Session]) -> None:
    """Completion marks the job succeeded and stores its generation in one go."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        (claimed,) = jobs.claim(s, "w", 1, lease_s=60)
        assert jobs.complete(s, claimed.id, "w", generation(claimed.id, text_="done"))
        (row,) = job_rows(s)
        assert (row.state, row.lease_owner, row.lease_expires_at) == ("succeeded", None, None)
        assert s.scalars(select(Generation.output_text)).all() == ["done"]


def test_completion_after_the_lease_was_lost(sessions: sessionmaker[Session]) -> None:
    """A late result after the job was re-claimed elsewhere is kept; the job's state is not,
    and only the holder's result counts an attempt."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        (claimed,) = jobs.claim(s, "slow", 1, lease_s=30, now=T0)
        assert leases.requeue_expired(s, max_attempts=5, now=T0 + dt.timedelta(seconds=31)) == 1
        (again,) = jobs.claim(s, "fast", 1, lease_s=30)
        assert not jobs.complete(s, claimed.id, "slow", generation(claimed.id, text_="late"))
        (row,) = job_rows(s)
        assert (row.state, row.lease_owner, row.attempts) == ("running", "fast", 0)
        assert jobs.complete(s, again.id, "fast", generation(again.id, text_="on time"))
        assert job_rows(s)[0].attempts == 1
        assert sorted(s.scalars(select(Generation.output_text))) == ["late", "on time"]


def test_fail_requeues_until_attempts_run_out(sessions: sessionmaker[Session]) -> None:
    """A retryable failure counts an attempt and re-queues with the error kept; the last
    attempt fails for good."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        outcomes = []
        for _ in range(3):
            (claimed,) = jobs.claim(s, "w", 1, lease_s=60)
            outcomes.append(
                jobs.fail(
                    s, claimed.id, "w", "HTTP 500", generation=None, max_attempts=3, permanent=False
                )
            )
        assert outcomes == ["queued", "queued", "failed"]
        (row,) = job_rows(s)
        assert (row.state, row.attempts, row.last_error) == ("failed", 3, "HTTP 500")


def test_permanent_failure_and_lost_lease(sessions: sessionmaker[Session]) -> None:
    """A permanent error fails at once; failing a job you do not hold changes nothing."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2)], ["summary"])
        one, two = jobs.claim(s, "w", 2, lease_s=60)
        failed = Generation(
            job_id=one.id, task="summary", status="failed", request_model="m", error="400"
        )
        assert (
            jobs.fail(
                s, one.id, "w", "bad request", generation=failed, max_attempts=5, permanent=True
            )
            == "failed"
        )
        assert (
            jobs.fail(s, two.id, "intruder", "x", generation=None, max_attempts=5, permanent=False)
            == "lost"
        )
        assert states(s) == {("a1", "summary"): "failed", ("a2", "summary"): "running"}
        assert s.scalars(select(Generation.status)).all() == ["failed"]


def test_release_gives_jobs_back_without_using_an_attempt(sessions: sessionmaker[Session]) -> None:
    """Released jobs are queued again and their unsent attempt is not counted."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2)], ["summary"])
        claimed = jobs.claim(s, "w", 2, lease_s=60)
        assert jobs.release(s, [c.id for c in claimed], "other") == 0
        assert jobs.release(s, [c.id for c in claimed], "w") == 2
        assert jobs.release(s, [], "w") == 0
        assert {(r.state, r.attempts, r.lease_owner) for r in job_rows(s)} == {("queued", 0, None)}


def test_requeue_expired_leaves_live_leases_alone(sessions: sessionmaker[Session]) -> None:
    """Only expired leases return; one on its last attempt fails with a reason."""
    with sessions() as s:
        queue.enqueue(s, [article(i) for i in range(3)], ["summary"])
        short = jobs.claim(s, "w", 2, lease_s=10, now=T0)
        jobs.claim(s, "w", 1, lease_s=3600, now=T0)
        s.execute(text("UPDATE jobs SET attempts = 5 WHERE id = :id"), {"id": short[1].id})
        s.commit()
        assert leases.requeue_expired(s, max_attempts=5, now=T0 + dt.timedelta(seconds=11)) == 2
        assert states(s) == {
            ("a0", "summary"): "queued",
            ("a1", "summary"): "failed",
            ("a2", "summary"): "running",
        }
        failed = next(r for r in job_rows(s) if r.state == "failed")
        assert "lease expired" in (failed.last_error or "")


def test_extend_leases_pushes_the_expiry(sessions: sessionmaker[Session]) -> None:
    """A heartbeat keeps a long job from being re-queued."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], ["summary"])
        (claimed,) = jobs.claim(s, "w", 1, lease_s=10, now=T0)
        assert jobs.extend_leases(s, [claimed.id], "w", lease_s=3600) == 1
        assert jobs.extend_leases(s, [claimed.id], "someone-else", lease_s=3600) == 0
        assert (
            leases.requeue_expired(s, max_attempts=5, now=utcnow() + dt.timedelta(seconds=60)) == 0
        )


def test_requeue_failed_filters_and_resets(sessions: sessionmaker[Session]) -> None:
    """`jobs requeue --failed` narrows by task and batch and resets attempts and error."""
    with sessions() as s:
        queue.enqueue(s, [article(1)], TASKS, batch_label="x")
        queue.enqueue(s, [article(2)], TASKS, batch_label="y")
        for c in jobs.claim(s, "w", 10, lease_s=60):
            jobs.fail(s, c.id, "w", "boom", generation=None, max_attempts=1, permanent=False)
        assert queue.requeue_failed(s, tasks=["summary"], batch_label="y") == 1
        assert queue.requeue_failed(s, tasks=["headline"]) == 2
        assert queue.requeue_failed(s) == 1
        assert {(r.state, r.attempts, r.last_error) for r in job_rows(s)} == {("queued", 0, None)}


def test_job_counts_and_queued_count(sessions: sessionmaker[Session]) -> None:
    """Counts group by state, task and batch label."""
    with sessions() as s:
        queue.enqueue(s, [article(1), article(2)], TASKS, batch_label="x")
        jobs.claim(s, "w", 1, lease_s=60)
        counts = {(c.state, c.task, c.batch_label): c.count for c in queue.job_counts(s)}
        assert counts == {
            ("running", "summary", "x"): 1,
            ("queued", "summary", "x"): 1,
            ("queued", "headline", "x"): 2,
        }
        assert queue.queued_count(s) == 3
        assert queue.queued_count(s, tasks=["headline"], batch_label="x") == 2
        assert queue.queued_count(s, batch_label="nope") == 0


# --- a property: any sequence of enqueues ends in a consistent queue -----------------------

_bodies = st.sampled_from(["one", "two", "three"])
_rounds = st.lists(
    st.lists(st.tuples(st.integers(0, 5), _bodies), max_size=8), min_size=1, max_size=4
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rounds=_rounds)
def test_any_enqueue_sequence_leaves_one_current_job_per_pair(
    sqlite_url: str, rounds: list[list[tuple[int, str]]]
) -> None:
    """Whatever is re-sent, each (article, task) has one job, hashed like the newest content."""
    engine = make_engine(sqlite_url)
    try:
        with session_factory(engine)() as s:
            s.execute(text("DELETE FROM jobs"))
            s.execute(text("DELETE FROM articles"))
            s.commit()
            latest: dict[int, str] = {}
            for batch in rounds:
                items = [article(n, body=body) for n, body in batch]
                result = queue.enqueue(s, items, TASKS, chunk_size=3)
                per_chunk = [len({n for n, _ in batch[i : i + 3]}) for i in range(0, len(batch), 3)]
                assert result.jobs == len(TASKS) * sum(per_chunk)
                latest.update(dict(batch))
            rows = job_rows(s)
            assert len(rows) == len(TASKS) * len(latest)
            by_article = {a.id: a.source_id for a in s.scalars(select(Article))}
            for row in rows:
                n = int(by_article[row.article_id][1:])
                expected = content_hash(f"Title {n}", latest[n], "politics")
                assert row.content_hash == expected
    finally:
        engine.dispose()
