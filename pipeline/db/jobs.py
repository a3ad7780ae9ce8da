"""The job repository: the only code that changes a job's state.

States: ``waiting`` (a chained task whose parent has not succeeded) -> ``queued`` ->
``running`` (claimed with a lease) -> ``succeeded`` | ``failed`` | ``cancelled``.

A claim is one atomic statement: PostgreSQL ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE
SKIP LOCKED) RETURNING``; SQLite the same ``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE``
(see ``db.engine``). A claim carries a lease; a lease that expires returns the job to the
queue, so a killed worker loses only its in-flight calls. Completion writes the job's new
state and its generation in one transaction, and only if the caller still holds the lease.

An attempt is counted when its outcome is recorded (``complete``, ``fail``), that is when a
request was sent; a claim, a release or a lost lease do not count one, so jobs a crashed
worker claimed but never sent go back to the queue as they were. Batch mode sends at claim
time and counts there instead (``count_attempt``). Jobs of a worker that died on this machine
go back at once (``reclaim_dead``); elsewhere when their lease expires (``requeue_expired``,
``release_stale``).

Enqueueing and queue counts are ``db.queue``; leases that outlived their owner are
``db.leases``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Select, Table, and_, func, or_, select, update
from sqlalchemy.orm import Session

from pipeline.db.failures import reason_of
from pipeline.db.models import Article, Generation, Job, utcnow
from pipeline.prompts import ArticleJob

_JOBS = cast(Table, Job.__table__)
# A claimed job is a plain value: rendering and planning never see database rows.
ClaimedJob = ArticleJob


def _claim_candidates(
    n: int,
    tasks: Sequence[str] | None,
    batch_label: str | None,
    for_update: bool,
    now: dt.datetime,
) -> Select[Any]:
    query = select(Job.id).where(
        Job.state == "queued", or_(Job.not_before.is_(None), Job.not_before <= now)
    )
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    query = query.order_by(Job.priority.desc(), Job.id).limit(n)
    if for_update:
        query = query.with_for_update(skip_locked=True)
    return query


@dataclass(frozen=True)
class Claim:
    """What one claim took: the jobs, the fencing token of each (``lease_token``), and the
    jobs under suspicion of killing their workers (to be sent apart from any other)."""

    jobs: list[ClaimedJob]
    tokens: dict[int, int] = field(default_factory=dict)
    suspects: frozenset[int] = frozenset()


def claim(
    session: Session,
    owner: str,
    n: int,
    *,
    lease_s: float,
    tasks: Sequence[str] | None = None,
    batch_label: str | None = None,
    now: dt.datetime | None = None,
    count_attempt: bool = False,
) -> list[ClaimedJob]:
    """Lease up to ``n`` queued jobs to ``owner`` (highest priority, oldest first) and commit.

    Each job is handed to exactly one caller, however many processes claim at once. The
    attempt is counted when its outcome is recorded, unless ``count_attempt``: batch mode
    sends at claim time, counts here, and numbers its requests with the new count.
    """
    return claim_leases(
        session,
        owner,
        n,
        lease_s=lease_s,
        tasks=tasks,
        batch_label=batch_label,
        now=now,
        count_attempt=count_attempt,
    ).jobs


def claim_leases(
    session: Session,
    owner: str,
    n: int,
    *,
    lease_s: float,
    tasks: Sequence[str] | None = None,
    batch_label: str | None = None,
    now: dt.datetime | None = None,
    count_attempt: bool = False,
) -> Claim:
    """``claim``, with each job's fencing token and the suspects among them.

    Every claim increments the job's ``lease_token``: a result changes the job only under the
    token of the claim that sent it (``outcomes.record_outcomes``), so the late answer of a
    claim that was declared dead and handed on is stored as paid but completes nothing.
    """
    if n <= 0:
        return Claim([])
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    candidates = _claim_candidates(n, tasks, batch_label, for_update=postgres, now=now)
    values: dict[str, Any] = {
        "state": "running",
        "lease_owner": owner,
        "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        "lease_token": Job.lease_token + 1,
        "updated_at": now,
    }
    if count_attempt:
        values["attempts"] = Job.attempts + 1
    claimed = session.execute(
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(values)
        .returning(Job.id, Job.lease_token, Job.death_suspect)
        .execution_options(synchronize_session=False)
    )
    taken = sorted(claimed.all())
    ids = [row[0] for row in taken]
    rows: list[Any] = []
    if ids:
        # Columns, not entities: a Job already in this session's identity map would come back
        # with its old attributes (state, attempts) instead of the ones just written.
        rows = list(
            session.execute(
                select(
                    Job.id,
                    Job.task,
                    Job.attempts,
                    Job.batch_label,
                    Article.id,
                    Article.source_id,
                    Article.title,
                    Article.body,
                    Article.section,
                    Article.url,
                    Article.published_at,
                    Article.meta,
                    Job.regenerations,
                    Article.content_hash,
                )
                .join(Article, Article.id == Job.article_id)
                .where(Job.id.in_(ids))
                .order_by(Job.id)
            )
        )
    session.commit()
    return Claim(
        [ClaimedJob(*row) for row in rows],
        {job_id: token for job_id, token, _ in taken},
        frozenset(job_id for job_id, _, suspect in taken if suspect),
    )


JOBS = _JOBS
GENERATIONS: Table = Generation.__table__  # type: ignore[assignment]


def insert_generation(session: Session, generation: Generation) -> None:
    """Insert ``generation`` with one Core statement (the ORM's unit of work costs more per
    row than the rest of a result's recording; results are written one by one as they come).
    """
    columns = Generation.__table__.columns
    values = {
        column.key: value
        for column in columns
        if (value := generation.__dict__.get(column.key)) is not None
    }
    session.execute(GENERATIONS.insert(), [values])


def _owned(job_id: int, owner: str) -> Any:
    c = JOBS.c
    return and_(c.id == job_id, c.lease_owner == owner, c.state == "running")


def queue_followers(
    session: Session, article_id: int, followers: Sequence[str], now: dt.datetime
) -> None:
    """Queue the chained tasks of ``article_id`` after their parent's new answer."""
    c = JOBS.c
    session.execute(
        JOBS.update()
        .where(
            c.article_id == article_id,
            c.task.in_(list(followers)),
            c.state.in_(("waiting", "succeeded", "failed")),
        )
        # One above the parent's priority: claimed next, while the shared prefix is warm.
        .values(
            state="queued",
            attempts=0,
            wait_reason=None,
            last_error=None,
            priority=c.priority + 1,
            # Its next generation is made from the article as it is now.
            content_hash=select(Article.content_hash)
            .where(Article.id == article_id)
            .scalar_subquery(),
            updated_at=now,
        )
    )


def complete(
    session: Session,
    job_id: int,
    owner: str,
    generation: Generation,
    *,
    article_id: int | None = None,
    followers: Sequence[str] = (),
    count_attempt: bool = True,
) -> bool:
    """Mark the job succeeded, count its attempt and store its generation, in one transaction.

    Returns False when ``owner`` no longer holds the lease (it expired and the job went back
    to the queue): the generation is still stored, because its tokens were paid for, but the
    job's state is left to whoever holds it now. ``followers`` are the tasks chained after
    this one: their jobs for ``article_id`` go (back) to the queue, since their input is new.
    ``count_attempt=False`` for a job whose attempt its claim counted (batch mode).
    """
    now = utcnow()
    values: dict[str, Any] = {
        "state": "succeeded",
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": None,
        "updated_at": now,
    }
    if count_attempt:
        values["attempts"] = JOBS.c.attempts + 1
    # Core statements on the tables: this runs once per result, and the ORM's bulk paths
    # cost several times more CPU than the SQL itself.
    result = session.execute(JOBS.update().where(_owned(job_id, owner)).values(values))
    insert_generation(session, generation)
    held = bool(result.rowcount)  # type: ignore[attr-defined]
    if held and followers and article_id is not None:
        queue_followers(session, article_id, followers, now)
    session.commit()
    return held


def hold_followers(
    session: Session, article_id: int, followers: Sequence[str], reason: str
) -> None:
    """Tell waiting followers why they still wait (their parent failed or was cut short)."""
    c = JOBS.c
    session.execute(
        JOBS.update()
        .where(c.article_id == article_id, c.task.in_(list(followers)), c.state == "waiting")
        .values(wait_reason=reason[:4000], updated_at=utcnow())
    )


def release_ready_followers(session: Session, follows: Mapping[str, str]) -> int:
    """Queue waiting jobs whose parent task already succeeded for the same article.

    ``follows`` maps a chained task to the task it follows. Enqueue and each run call this,
    so a chain added after its parent ran, or a promotion lost in a crash, still proceeds.
    """
    moved = 0
    for child, parent in follows.items():
        p = JOBS.alias("parent")
        c = JOBS.c
        done = (
            select(p.c.id)
            .where(p.c.article_id == c.article_id, p.c.task == parent, p.c.state == "succeeded")
            .exists()
        )
        result = session.execute(
            JOBS.update()
            .where(c.task == child, c.state == "waiting", done)
            .values(state="queued", wait_reason=None, updated_at=utcnow())
        )
        moved += int(result.rowcount)  # type: ignore[attr-defined]
    session.commit()
    return moved


def fail(
    session: Session,
    job_id: int,
    owner: str,
    error: str,
    *,
    generation: Generation | None,
    max_attempts: int,
    permanent: bool,
    count_attempt: bool = True,
    reason: str | None = None,
) -> str:
    """Record a failed attempt and count it; the job is re-queued unless the error is
    permanent or this was its ``max_attempts``-th attempt.

    Returns the job's new state (``queued`` or ``failed``), or ``lost`` without a lease.
    ``count_attempt=False`` for a job whose attempt its claim counted (batch mode). A job
    failed for good gets ``reason``, else the one ``failures.reason_of`` reads in ``error``.
    """
    now = utcnow()
    attempts = session.execute(
        select(Job.attempts).where(_owned(job_id, owner)).with_for_update()
    ).scalar_one_or_none()
    if generation is not None:
        insert_generation(session, generation)
    if attempts is None:
        session.commit()
        return "lost"
    if count_attempt:
        attempts += 1
    new_state = "failed" if permanent or attempts >= max_attempts else "queued"
    session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            state=new_state,
            attempts=attempts,
            lease_owner=None,
            lease_expires_at=None,
            last_error=error[:4000],
            failure_reason=(reason or reason_of(error, permanent=permanent))
            if new_state == "failed"
            else None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return new_state


def release(
    session: Session, job_ids: Sequence[int], owner: str, *, attempt_counted: bool = False
) -> int:
    """Give unsent claimed jobs back to the queue, their attempts as they were.

    ``attempt_counted``: the claim counted an attempt that did not happen (batch mode), so
    take it back.
    """
    if not job_ids:
        return 0
    values: dict[str, Any] = {
        "state": "queued",
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": utcnow(),
    }
    if attempt_counted:
        values["attempts"] = (
            func.max(Job.attempts - 1, 0)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(Job.attempts - 1, 0)
        )
    result = session.execute(
        update(Job)
        .where(Job.id.in_(list(job_ids)), Job.lease_owner == owner, Job.state == "running")
        .values(values)
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


def recover(
    session: Session,
    generation: Generation,
    *,
    succeeded: bool,
    article_id: int | None = None,
    followers: Sequence[str] = (),
) -> int:
    """Record a result a dead run paid for but never recorded (``pipeline.run.journal``).

    The generation is stored with its real usage and cost unless a generation with the same
    response id is already there (the run did record it). A successful answer completes its
    job when the job is not done yet, whoever holds it (it may have gone back to the queue,
    or failed since), with its followers released as ``complete`` does; when the job was
    completed by another answer meanwhile, it is stored as ``lost`` (paid, not the output).
    Returns 1 when something was recorded.
    """
    response_id = generation.response_id
    if response_id is not None:
        seen = session.execute(
            select(GENERATIONS.c.id).where(GENERATIONS.c.response_id == response_id).limit(1)
        ).first()
        if seen is not None:
            session.commit()
            return 0
    if succeeded:
        c = JOBS.c
        done = session.execute(
            JOBS.update()
            .where(c.id == generation.job_id, c.state.in_(("queued", "running", "failed")))
            .values(
                state="succeeded",
                lease_owner=None,
                lease_expires_at=None,
                last_error=None,
                failure_reason=None,
                worker_deaths=0,
                death_suspect=False,
                attempts=c.attempts + 1,
                updated_at=utcnow(),
            )
        )
        if not done.rowcount and generation.status == "completed":  # type: ignore[attr-defined]
            generation.status = "lost"
        if done.rowcount and followers and article_id is not None:  # type: ignore[attr-defined]
            queue_followers(session, article_id, followers, utcnow())
    insert_generation(session, generation)
    session.commit()
    return 1


WORKER_LOST = "worker_lost"


def record_death(
    session: Session, job_ids: Sequence[int], *, alone: bool, max_deaths: int
) -> list[int]:
    """A worker died while ``job_ids`` were being sent or answered; the jobs failed for it.

    ``alone``: they were one job, so the death is counted against it, and at ``max_deaths``
    it fails for good with reason ``worker_lost`` (a poison job: every worker that sends it
    dies) whoever holds it; the queue goes on without it. Several jobs are each only marked
    ``death_suspect``: their next sends are kept apart, so a later death names one of them.
    Done jobs are left as they are.
    """
    if not job_ids:
        return []
    c = JOBS.c
    open_states = c.state.in_(("queued", "running"))
    ids = list(job_ids)
    if not alone:
        session.execute(JOBS.update().where(c.id.in_(ids), open_states).values(death_suspect=True))
        session.commit()
        return []
    session.execute(
        JOBS.update()
        .where(c.id.in_(ids), open_states)
        .values(worker_deaths=c.worker_deaths + 1, death_suspect=True)
    )
    failed = list(
        session.execute(
            JOBS.update()
            .where(c.id.in_(ids), open_states, c.worker_deaths >= max_deaths)
            .values(
                state="failed",
                lease_owner=None,
                lease_expires_at=None,
                failure_reason=WORKER_LOST,
                last_error=f"{max_deaths} workers died while this job alone was being sent or "
                "answered (an answer that exhausts the worker's memory, say); not sent again",
                updated_at=utcnow(),
            )
            .returning(c.id)
        ).scalars()
    )
    session.commit()
    return sorted(failed)
