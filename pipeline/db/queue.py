"""Putting jobs in the queue and counting them: ``enqueue``, ``requeue_failed``, counts.

Enqueueing is bulk: a chunk of articles costs a handful of statements (select the known ones,
insert the new ones, update the changed ones, insert jobs with ON CONFLICT DO NOTHING, re-queue
the jobs whose article changed), so 100,000 articles go in within seconds. Claims, leases and
completions are ``db.jobs``; together the two are the only code that changes a job's state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Table,
    bindparam,
    case,
    func,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from pipeline.db.articles import batched, dialect_insert, one_of, store_articles
from pipeline.db.models import Article, Job, utcnow
from pipeline.intake import ArticleIn

ENQUEUE_CHUNK = 2_000  # articles per transaction; keeps every IN (...) under SQLite's limits
MAX_BATCH_LABEL = 128  # the column's length
_JOBS = cast(Table, Job.__table__)


@dataclass(frozen=True)
class JobCount:
    """How many jobs are in a state, per task and batch label."""

    state: str
    task: str
    batch_label: str | None
    count: int


def requeue_failed(
    session: Session,
    *,
    tasks: Sequence[str] | None = None,
    batch_label: str | None = None,
    reason: str | None = None,
    stagger_s: float = 0.0,
    now: dt.datetime | None = None,
) -> int:
    """Put failed jobs back in the queue with fresh attempts (``contentgen jobs requeue``).

    ``reason``: only jobs that failed for it (``failures.REASON_FILTERS``). ``stagger_s``:
    spread them over that many seconds (``jobs.not_before``, in claim order), so a thousand
    dead letters do not hit a recovering API in the same second.
    """
    now = now or utcnow()
    query = select(Job.id).where(Job.state == "failed")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    if reason is not None:
        query = query.where(Job.failure_reason == reason)
    ids = list(session.execute(query.order_by(Job.priority.desc(), Job.id)).scalars())
    if not ids:
        session.commit()
        return 0
    step_s = stagger_s / len(ids) if stagger_s > 0 else 0.0
    c = _JOBS.c
    rows = [
        {
            "job_id": job_id,
            "at": now + dt.timedelta(seconds=i * step_s) if step_s else None,
        }
        for i, job_id in enumerate(ids)
    ]
    session.execute(
        _JOBS.update()
        .where(c.id == bindparam("job_id"), c.state == "failed")
        .values(
            state="queued",
            attempts=0,
            last_error=None,
            failure_reason=None,
            not_before=bindparam("at"),
            updated_at=now,
        ),
        rows,
    )
    session.commit()
    return len(ids)


def next_not_before(
    session: Session,
    *,
    tasks: Sequence[str] | None = None,
    batch_label: str | None = None,
    now: dt.datetime | None = None,
) -> dt.datetime | None:
    """When the earliest queued job held back by ``not_before`` may be claimed (None: no
    queued job waits for a time), so a run waits for a staggered requeue instead of ending."""
    query = select(func.min(Job.not_before)).where(
        Job.state == "queued", Job.not_before > (now or utcnow())
    )
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    value: dt.datetime | None = session.execute(query).scalar_one()
    return value


def failure_counts(
    session: Session, *, tasks: Sequence[str] | None = None, batch_label: str | None = None
) -> dict[str, int]:
    """Failed jobs per failure reason (``db.failures``; ``-`` for none recorded)."""
    query = select(Job.failure_reason, func.count()).where(Job.state == "failed")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    rows = session.execute(query.group_by(Job.failure_reason)).all()
    return {reason or "-": int(n) for reason, n in sorted(rows, key=lambda r: -r[1])}


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


@dataclass(frozen=True)
class EnqueueResult:
    """What an ``enqueue`` did, counted in jobs (the first three) and articles (the last two).

    ``accepted``: jobs created. ``unchanged``: (article, task) already there with the same
    content, left alone. ``requeued``: jobs put back in the queue because their article's
    content changed.
    """

    accepted: int = 0
    unchanged: int = 0
    requeued: int = 0
    articles_new: int = 0
    articles_updated: int = 0

    def __add__(self, other: EnqueueResult) -> EnqueueResult:
        return EnqueueResult(
            *(
                a + b
                for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
            )
        )

    @property
    def jobs(self) -> int:
        """Every (article, task) pair looked at."""
        return self.accepted + self.unchanged + self.requeued

    def as_dict(self) -> dict[str, int]:
        """The counts as a plain dict (for ``--json``)."""
        return dataclasses.asdict(self)


def _task_states(tasks: Sequence[str], start_states: Mapping[str, str]) -> Any:
    """The requested tasks with their start state, as a tiny table to join articles with."""
    rows = [
        select(
            literal(task, String).label("task"),
            literal(start_states.get(task, "queued"), String).label("state"),
            literal(n, Integer).label("n"),
        )
        for n, task in enumerate(tasks)
    ]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("requested")


def _enqueue_chunk(
    session: Session,
    chunk: Sequence[ArticleIn],
    tasks: Sequence[str],
    *,
    batch_label: str | None,
    priority: int,
    start_states: Mapping[str, str],
    now: dt.datetime,
) -> EnqueueResult:
    stored = store_articles(session, chunk, now=now)
    ids = list(stored.ids.values())
    articles = cast(Table, Article.__table__)
    requested = _task_states(tasks, start_states)
    # One INSERT ... SELECT makes every missing (article, task) job; existing pairs conflict
    # and are skipped, so no per-row work happens in Python.
    new_jobs = (
        select(
            articles.c.id,
            requested.c.task,
            requested.c.state,
            literal(priority, Integer),
            literal(0, Integer),
            literal(batch_label, String),
            articles.c.content_hash,
            literal(now, DateTime),
            literal(now, DateTime),
        )
        .select_from(articles.join(requested, true()))
        # (SQLite's upsert also needs this WHERE after INSERT ... SELECT to parse.)
        .where(one_of(session, articles.c.id, ids))
        .order_by(articles.c.id, requested.c.n)  # job ids follow the input and task order
    )
    columns = [
        "article_id",
        "task",
        "state",
        "priority",
        "attempts",
        "batch_label",
        "content_hash",
        "created_at",
        "updated_at",
    ]
    insert_jobs = (
        dialect_insert(session, _JOBS)
        .from_select(columns, new_jobs)
        .on_conflict_do_nothing(index_elements=["article_id", "task"])
        # SQLAlchemy keeps an INSERT's rowcount only when asked (psycopg loses it otherwise).
        .execution_options(preserve_rowcount=True)
    )
    accepted = int(session.execute(insert_jobs).rowcount)  # type: ignore[attr-defined]
    requeued: list[str] = []
    if stored.known:
        requeued = _requeue_changed(
            session,
            stored.known,
            start_states,
            batch_label=batch_label,
            priority=priority,
            now=now,
        )
    named = sum(1 for task in requeued if task in tasks)
    return EnqueueResult(
        accepted=accepted,
        unchanged=len(ids) * len(tasks) - accepted - named,
        requeued=len(requeued),
        articles_new=stored.new,
        articles_updated=stored.updated,
    )


def _requeue_changed(
    session: Session,
    article_ids: list[int],
    start_states: Mapping[str, str],
    *,
    batch_label: str | None,
    priority: int,
    now: dt.datetime,
) -> list[str]:
    """Re-queue every job of these articles whose content hash no longer matches its
    article's, whatever its task (a correction makes all of an article's outputs superseded,
    not only those of the tasks being enqueued); the tasks of the jobs re-queued."""
    articles = cast(Table, Article.__table__)
    current = (
        select(articles.c.content_hash).where(articles.c.id == _JOBS.c.article_id).scalar_subquery()
    )
    state: Any = literal("queued", String)
    waiting = {task: s for task, s in start_states.items() if s != "queued"}
    if waiting:
        state = case(waiting, value=_JOBS.c.task, else_=literal("queued", String))
    # Whatever state the job was in (even running: that worker's completion will find its
    # lease gone), the new content needs a new generation with fresh attempts. Its earlier
    # outputs stay, superseded: they were made from the old content (`generations.content_hash`).
    values: dict[str, Any] = {
        "state": state,
        "content_hash": current,
        "attempts": 0,
        "priority": priority,
        "lease_owner": None,
        "lease_expires_at": None,
        "last_error": None,
        "wait_reason": None,
        "updated_at": now,
    }
    if batch_label is not None:
        values["batch_label"] = batch_label
    result = session.execute(
        update(_JOBS)
        .where(
            one_of(session, _JOBS.c.article_id, article_ids),
            _JOBS.c.content_hash != current,
        )
        .values(values)
        .returning(_JOBS.c.task)
    )
    return [str(task) for task in result.scalars()]


def enqueue(
    session: Session,
    articles: Iterable[ArticleIn],
    tasks: Sequence[str],
    *,
    batch_label: str | None = None,
    priority: int = 0,
    start_states: Mapping[str, str] | None = None,
    chunk_size: int = ENQUEUE_CHUNK,
    now: dt.datetime | None = None,
) -> EnqueueResult:
    """Store ``articles`` and a job per (article, task); commits after every chunk.

    Idempotent: an (article, task) already there with the same content is left alone. When an
    article comes back with a different title, body or section, the article is updated and
    all its jobs (of any task) go back to the queue with fresh attempts (and take
    ``batch_label`` and ``priority``); their earlier outputs are kept, superseded. Other
    fields that changed (url, published_at, metadata) are updated without re-queueing.
    ``start_states`` maps a task to the state its new or re-queued jobs start in (default
    ``queued``; a chained task's jobs start ``waiting``: name every chained task here, enqueued
    or not, so that a correction re-queues followers to wait for their parent).
    """
    tasks = list(dict.fromkeys(tasks))
    if not tasks:
        raise ValueError("enqueue needs at least one task")
    if batch_label is not None and not 0 < len(batch_label) <= MAX_BATCH_LABEL:
        raise ValueError(f"a batch label has 1 to {MAX_BATCH_LABEL} characters")
    states = dict(start_states or {})
    if not set(states.values()) <= {"queued", "waiting"}:
        raise ValueError(f"jobs start 'queued' or 'waiting', not {sorted(set(states.values()))}")
    total = EnqueueResult()
    for chunk in batched(articles, chunk_size):
        try:
            total += _enqueue_chunk(
                session,
                chunk,
                tasks,
                batch_label=batch_label,
                priority=priority,
                start_states=states,
                now=now or utcnow(),
            )
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return total
