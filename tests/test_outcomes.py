"""Recording results in groups: ``db.outcomes.record_outcomes`` (SQLite and PostgreSQL) and
the ``Recorder`` that gathers them off the send path."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

import pytest
import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import jobs, queue
from pipeline.db.models import Generation, Job
from pipeline.db.outcomes import OutcomeRow, generation_row, record_outcomes
from pipeline.errors import DatabaseError
from pipeline.run.recorder import Pending, Recorder
from tests.test_jobs import article, generation

OWNER = "run-1"


def claimed(
    sessions: sessionmaker[Session], n: int, tasks: Sequence[str] = ("summary",)
) -> list[int]:
    with sessions() as s:
        queue.enqueue(s, [article(i) for i in range(n)], list(tasks))
        return [j.id for j in jobs.claim(s, OWNER, n * len(tasks), lease_s=600)]


def job(sessions: sessionmaker[Session], job_id: int) -> Job:
    with sessions() as s:
        return s.get_one(Job, job_id)


def test_a_group_records_successes_failures_and_lost_leases(
    sessions: sessionmaker[Session],
) -> None:
    ids = claimed(sessions, 5)
    with sessions() as s:  # job 5's lease went to another worker
        s.get_one(Job, ids[4]).lease_owner = "someone-else"
        s.commit()
    failed = Generation(job_id=ids[2], task="summary", status="failed", request_model="m")
    outcomes = [
        OutcomeRow(generation(ids[0]), succeeded=True),
        OutcomeRow(generation(ids[1]), succeeded=True),
        OutcomeRow(failed, succeeded=False, error="HTTP 500"),
        OutcomeRow(
            Generation(job_id=ids[3], task="summary", status="failed", request_model="m"),
            succeeded=False,
            permanent=True,
            error="HTTP 400 bad",
        ),
        OutcomeRow(generation(ids[4]), succeeded=True),
        OutcomeRow(generation(ids[0], text_="prewarm"), succeeded=False, job_outcome=False),
    ]
    with sessions() as s:
        states = record_outcomes(s, OWNER, outcomes, max_attempts=3)
    assert states == ["succeeded", "succeeded", "queued", "failed", "lost", None]
    assert [job(sessions, i).state for i in ids] == [
        "succeeded",
        "succeeded",
        "queued",
        "failed",
        "running",
    ]
    assert job(sessions, ids[0]).attempts == 1
    assert job(sessions, ids[2]).attempts == 1
    assert job(sessions, ids[2]).last_error == "HTTP 500"
    assert job(sessions, ids[2]).lease_owner is None
    with sessions() as s:
        stored = s.scalars(select(Generation).order_by(Generation.id)).all()
    # Every generation is stored, the lost lease's too: its tokens were paid for.
    assert [g.job_id for g in stored] == [ids[0], ids[1], ids[2], ids[3], ids[4], ids[0]]
    assert stored[0].output_json is None  # SQL NULL, not the JSON text 'null'
    assert stored[0].cost_usd == Decimal(0) and stored[0].attempts == 1
    assert isinstance(stored[0].created_at, dt.datetime)


def test_the_last_attempt_fails_for_good(sessions: sessionmaker[Session]) -> None:
    [job_id] = claimed(sessions, 1)
    for expected in ("queued", "queued", "failed"):
        with sessions() as s:
            row = OutcomeRow(
                Generation(job_id=job_id, task="summary", status="failed", request_model="m"),
                succeeded=False,
                error="timeout",
            )
            assert record_outcomes(s, OWNER, [row], max_attempts=3) == [expected]
        if expected == "queued":
            with sessions() as s:
                assert [j.id for j in jobs.claim(s, OWNER, 1, lease_s=600)] == [job_id]
    assert job(sessions, job_id).attempts == 3


def test_a_success_queues_its_followers(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        queue.enqueue(
            s, [article(1)], ["summary", "headline"], start_states={"headline": "waiting"}
        )
        [summary] = jobs.claim(s, OWNER, 5, lease_s=600)
    with sessions() as s:
        record_outcomes(
            s,
            OWNER,
            [
                OutcomeRow(
                    generation(summary.id),
                    succeeded=True,
                    article_id=summary.article_id,
                    followers=("headline",),
                )
            ],
            max_attempts=3,
        )
        states = {j.task: j.state for j in s.scalars(select(Job))}
    assert states == {"summary": "succeeded", "headline": "queued"}


def test_many_results_in_one_group(sessions: sessionmaker[Session]) -> None:
    ids = claimed(sessions, 700)  # more than one IN (...) chunk
    with sessions() as s:
        states = record_outcomes(
            s, OWNER, [OutcomeRow(generation(i), succeeded=True) for i in ids], max_attempts=3
        )
    assert states == ["succeeded"] * 700
    with sessions() as s:
        assert {j.state for j in s.scalars(select(Job))} == {"succeeded"}


def test_generation_row_fills_defaults_like_the_orm() -> None:
    row = generation_row(Generation(job_id=1, task="t", status="completed", request_model="m"))
    assert row["input_tokens"] == 0 and row["from_cache"] is False
    assert row["price_tier"] == "standard"
    assert "output_json" not in row and "trimmed" not in row


# --- the recorder ------------------------------------------------------------------------


def outcome(n: int) -> OutcomeRow:
    return OutcomeRow(generation(n), succeeded=True)


async def test_results_are_grouped_and_each_reported_once() -> None:
    groups: list[int] = []
    seen: list[tuple[int, str | None]] = []

    def write(rows: Sequence[OutcomeRow]) -> list[str | None]:
        groups.append(len(rows))
        return ["succeeded"] * len(rows)

    def recorded(pending: Pending, state: str | None) -> None:
        seen.append((pending.outcome.generation.job_id, state))

    recorder = Recorder(
        write, on_recorded=recorded, on_error=lambda e: None, outage_s=1, max_delay_s=0.05
    )
    recorder.start()
    for n in range(1, 101):
        recorder.add(outcome(n), None)
    await asyncio.sleep(0.2)
    recorder.add(outcome(101), "entry")
    await recorder.close()
    assert [n for n, _ in seen] == list(range(1, 102))
    assert {state for _, state in seen} == {"succeeded"}
    assert groups == [100, 1]
    assert recorder.recorded == 101 and not recorder.busy


async def test_a_full_group_goes_without_waiting_for_the_delay() -> None:
    done = asyncio.Event()
    groups: list[int] = []

    def write(rows: Sequence[OutcomeRow]) -> list[str | None]:
        groups.append(len(rows))
        return ["succeeded"] * len(rows)

    recorder = Recorder(
        write,
        on_recorded=lambda p, s: done.set(),
        on_error=lambda e: None,
        outage_s=1,
        max_delay_s=30.0,
        max_group=10,
    )
    recorder.start()
    for n in range(10):
        recorder.add(outcome(n), None)
    await asyncio.wait_for(done.wait(), 5)  # long before the 30 s delay
    assert groups == [10]
    await recorder.close()


async def test_a_database_gone_for_good_stops_recording() -> None:
    errors: list[DatabaseError] = []

    def write(rows: Sequence[OutcomeRow]) -> list[str | None]:
        raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("gone"))

    recorder = Recorder(write, on_recorded=lambda p, s: None, on_error=errors.append, outage_s=0.3)
    recorder.start()
    recorder.add(outcome(1), "entry")
    await recorder.close()
    assert len(errors) == 1 and "did not answer" in str(errors[0])
    recorder.add(outcome(2), "entry")  # left to the journal
    assert recorder.waiting == 0


@pytest.mark.parametrize("max_group", [1, 7])
async def test_close_commits_everything_still_waiting(max_group: int) -> None:
    seen: list[int] = []

    def write(rows: Sequence[OutcomeRow]) -> list[str | None]:
        return ["succeeded"] * len(rows)

    recorder = Recorder(
        write,
        on_recorded=lambda p, s: seen.append(p.outcome.generation.job_id),
        on_error=lambda e: None,
        outage_s=1,
        max_delay_s=10.0,
        max_group=max_group,
    )
    recorder.start()
    for n in range(20):
        recorder.add(outcome(n), None)
    await recorder.close()
    assert seen == list(range(20))
