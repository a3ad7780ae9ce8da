"""The job repository: the only code that changes a job's state.

States: ``waiting`` (a chained task whose parent has not succeeded) -> ``queued`` ->
``running`` (claimed with a lease) -> ``succeeded`` | ``failed`` | ``cancelled``.

A claim is one atomic statement: PostgreSQL ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
SKIP LOCKED) RETURNING``; SQLite the same ``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE``
(see ``db.engine``). A claim carries a lease; a lease that expires returns the job to the
queue, so a killed worker loses only its in-flight calls. Completion writes the job's new
state and its generation in one transaction, and only if the caller still holds the lease.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, select, update
from sqlalchemy.orm import Session

from pipeline.db.models import Article, Generation, Job, utcnow


@dataclass(frozen=True)
class ClaimedJob:
    """A job leased to one worker, with the article it is about."""

    id: int
    task: str
    attempts: int
    batch_label: str | None
    article_id: int
    source_id: str
    title: str
    body: str
    section: str | None
    url: str | None
    published_at: dt.datetime | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class JobCount:
    """How many jobs are in a state, per task and batch label."""

    state: str
    task: str
    batch_label: str | None
    count: int


def _claim_candidates(
    n: int, tasks: Sequence[str] | None, batch_label: str | None, for_update: bool
) -> Select[Any]:
    query = select(Job.id).where(Job.state == "queued")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    query = query.order_by(Job.priority.desc(), Job.id).limit(n)
    if for_update:
        query = query.with_for_update(skip_locked=True)
    return query


def claim(
    session: Session,
    owner: str,
    n: int,
    *,
    lease_s: float,
    tasks: Sequence[str] | None = None,
    batch_label: str | None = None,
    now: dt.datetime | None = None,
) -> list[ClaimedJob]:
    """Lease up to ``n`` queued jobs to ``owner`` (highest priority, oldest first) and commit.

    Each job is handed to exactly one caller, however many processes claim at once.
    """
    if n <= 0:
        return []
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    candidates = _claim_candidates(n, tasks, batch_label, for_update=postgres)
    claimed = session.execute(
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(
            state="running",
            lease_owner=owner,
            lease_expires_at=now + dt.timedelta(seconds=lease_s),
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(row[0] for row in claimed)
    rows = []
    if ids:
        rows = list(
            session.execute(
                select(Job, Article)
                .join(Article, Article.id == Job.article_id)
                .where(Job.id.in_(ids))
                .order_by(Job.id)
            )
        )
    session.commit()
    return [
        ClaimedJob(
            id=job.id,
            task=job.task,
            attempts=job.attempts,
            batch_label=job.batch_label,
            article_id=article.id,
            source_id=article.source_id,
            title=article.title,
            body=article.body,
            section=article.section,
            url=article.url,
            published_at=article.published_at,
            metadata=article.meta,
        )
        for job, article in rows
    ]


def _owned(job_id: int, owner: str) -> Any:
    return and_(Job.id == job_id, Job.lease_owner == owner, Job.state == "running")


def complete(session: Session, job_id: int, owner: str, generation: Generation) -> bool:
    """Mark the job succeeded and store its generation, in one transaction.

    Returns False when ``owner`` no longer holds the lease (it expired and the job went back
    to the queue): the generation is still stored, because its tokens were paid for, but the
    job's state is left to whoever holds it now.
    """
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            state="succeeded",
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.add(generation)
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail(
    session: Session,
    job_id: int,
    owner: str,
    error: str,
    *,
    generation: Generation | None,
    max_attempts: int,
    permanent: bool,
) -> str:
    """Record a failed attempt; the job is re-queued unless it is permanent or out of attempts.

    Returns the job's new state (``queued`` or ``failed``), or ``lost`` without a lease.
    """
    now = utcnow()
    job = session.execute(
        select(Job.attempts).where(_owned(job_id, owner)).with_for_update()
    ).scalar_one_or_none()
    if generation is not None:
        session.add(generation)
    if job is None:
        session.commit()
        return "lost"
    new_state = "failed" if permanent or job >= max_attempts else "queued"
    session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            state=new_state,
            lease_owner=None,
            lease_expires_at=None,
            last_error=error[:4000],
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return new_state


def release(session: Session, job_ids: Sequence[int], owner: str) -> int:
    """Give unsent claimed jobs back to the queue (their attempt did not happen)."""
    if not job_ids:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.lease_owner == owner, Job.state == "running")
        .values(
            state="queued",
            lease_owner=None,
            lease_expires_at=None,
            attempts=func.max(Job.attempts - 1, 0)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(Job.attempts - 1, 0),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def extend_leases(session: Session, job_ids: Sequence[int], owner: str, lease_s: float) -> int:
    """Push the lease expiry of jobs still held by ``owner`` (long runs heartbeat with this)."""
    if not job_ids:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.lease_owner == owner, Job.state == "running")
        .values(lease_expires_at=utcnow() + dt.timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def requeue_expired(session: Session, *, max_attempts: int, now: dt.datetime | None = None) -> int:
    """Return jobs whose lease expired to the queue (or fail them when out of attempts)."""
    now = now or utcnow()
    expired = and_(Job.state == "running", Job.lease_expires_at < now)
    failed = session.execute(
        update(Job)
        .where(expired, Job.attempts >= max_attempts)
        .values(
            state="failed",
            lease_owner=None,
            lease_expires_at=None,
            last_error="lease expired on the last attempt (worker died or hung)",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    requeued = session.execute(
        update(Job)
        .where(expired)
        .values(state="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(requeued.rowcount) + int(failed.rowcount)  # type: ignore[attr-defined]


def requeue_failed(
    session: Session, *, tasks: Sequence[str] | None = None, batch_label: str | None = None
) -> int:
    """Put failed jobs back in the queue with fresh attempts (``contentgen jobs requeue``)."""
    query = update(Job).where(Job.state == "failed")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    result = session.execute(
        query.values(
            state="queued", attempts=0, last_error=None, updated_at=utcnow()
        ).execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def job_counts(session: Session) -> list[JobCount]:
    """Counts of jobs by state, task and batch label."""
    rows = session.execute(
        select(Job.state, Job.task, Job.batch_label, func.count())
        .group_by(Job.state, Job.task, Job.batch_label)
        .order_by(Job.task, Job.batch_label, Job.state)
    )
    return [JobCount(state, task, label, int(n)) for state, task, label, n in rows]


def queued_count(
    session: Session, *, tasks: Sequence[str] | None = None, batch_label: str | None = None
) -> int:
    """How many jobs wait in the queue (for progress displays)."""
    query = select(func.count()).select_from(Job).where(Job.state == "queued")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    return int(session.execute(query).scalar_one())
