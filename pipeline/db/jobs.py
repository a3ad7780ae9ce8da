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

Enqueueing is bulk: a chunk of articles costs a handful of statements (select the known ones,
insert the new ones, update the changed ones, insert jobs with ON CONFLICT DO NOTHING, re-queue
the jobs whose article changed), so 100,000 articles go in within seconds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar, cast

from sqlalchemy import (
    DateTime,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    func,
    literal,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.orm import Session

from pipeline.db.articles import dialect_insert, one_of, store_articles
from pipeline.db.models import Article, Generation, Job, utcnow
from pipeline.db.procs import Worker, parse_owner, parse_worker
from pipeline.db.runs import abandon_run, running_runs
from pipeline.intake.reader import ArticleIn
from pipeline.prompts.articlejob import ArticleJob

ENQUEUE_CHUNK = 2_000  # articles per transaction; keeps every IN (...) under SQLite's limits
MAX_BATCH_LABEL = 128  # the column's length
_OWNERS_PER_STATEMENT = 500  # owners per IN (...)
_JOBS = cast(Table, Job.__table__)
T = TypeVar("T")


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


# A claimed job is a plain value: rendering and planning never see database rows.
ClaimedJob = ArticleJob


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
    count_attempt: bool = False,
) -> list[ClaimedJob]:
    """Lease up to ``n`` queued jobs to ``owner`` (highest priority, oldest first) and commit.

    Each job is handed to exactly one caller, however many processes claim at once. The
    attempt is counted when its outcome is recorded, unless ``count_attempt``: batch mode
    sends at claim time, counts here, and numbers its requests with the new count.
    """
    if n <= 0:
        return []
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    candidates = _claim_candidates(n, tasks, batch_label, for_update=postgres)
    values: dict[str, Any] = {
        "state": "running",
        "lease_owner": owner,
        "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        "updated_at": now,
    }
    if count_attempt:
        values["attempts"] = Job.attempts + 1
    claimed = session.execute(
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(values)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(row[0] for row in claimed)
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
                )
                .join(Article, Article.id == Job.article_id)
                .where(Job.id.in_(ids))
                .order_by(Job.id)
            )
        )
    session.commit()
    return [ClaimedJob(*row) for row in rows]


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
) -> str:
    """Record a failed attempt and count it; the job is re-queued unless the error is
    permanent or this was its ``max_attempts``-th attempt.

    Returns the job's new state (``queued`` or ``failed``), or ``lost`` without a lease.
    ``count_attempt=False`` for a job whose attempt its claim counted (batch mode).
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


def requeue_expired(session: Session, *, max_attempts: int, now: dt.datetime | None = None) -> int:
    """Return jobs whose lease expired to the queue, their attempts as they were.

    A job is failed instead only when its attempts, counted at each send (or at a batch
    claim), already reached ``max_attempts``: an expiry never uses an attempt up, so jobs
    claimed by a worker that died before sending them are never failed here.
    """
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


def release_stale(
    session: Session, *, older_than_s: float | None = None, now: dt.datetime | None = None
) -> int:
    """Return jobs whose lease expired (more than ``older_than_s`` ago) to the queue; how many.

    For workers this machine cannot check (other hosts): their attempts stay as they were and
    no job is failed, whatever its count (unlike ``requeue_expired``).
    """
    if older_than_s is not None and older_than_s < 0:
        raise ValueError("older_than_s cannot be negative")
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=older_than_s or 0)
    result = session.execute(
        update(Job)
        .where(Job.state == "running", Job.lease_expires_at < cutoff)
        .values(state="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ReclaimResult:
    """What ``reclaim_dead`` did: jobs back in the queue, runs closed, owners found dead."""

    jobs_released: int = 0
    runs_abandoned: tuple[int, ...] = ()
    dead_owners: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for ``--json``)."""
        return {
            "jobs_released": self.jobs_released,
            "runs_abandoned": list(self.runs_abandoned),
            "dead_owners": list(self.dead_owners),
        }


def reclaim_dead(
    session: Session,
    *,
    host: str,
    is_alive: Callable[[int], bool],
    now: dt.datetime | None = None,
) -> ReclaimResult:
    """Take back at once what workers on ``host`` that no longer run left behind.

    Jobs leased to ``"{host}:{pid}:run{id}"`` with ``is_alive(pid)`` False go back to the
    queue, attempts as they were; runs still ``running`` whose worker is such a dead
    ``"{host}:{pid}"``, or whose id such an owner names, are closed ``abandoned`` with their
    totals. Owners on other hosts and names that do not parse (batches, older rows) are left
    alone. ``is_alive`` is ``procs.pid_alive`` in production.
    """
    now = now or utcnow()
    alive: dict[int, bool] = {}

    def dead(worker: Worker | None) -> bool:
        if worker is None or worker.host != host:
            return False
        if worker.pid not in alive:
            alive[worker.pid] = is_alive(worker.pid)
        return not alive[worker.pid]

    owners = session.scalars(
        select(Job.lease_owner)
        .where(Job.state == "running", Job.lease_owner.startswith(f"{host}:", autoescape=True))
        .distinct()
    ).all()
    dead_owners = sorted(o for o in owners if o is not None and dead(parse_owner(o)))
    released = 0
    for chunk in _batched(dead_owners, _OWNERS_PER_STATEMENT):
        result = session.execute(
            update(Job)
            .where(Job.state == "running", Job.lease_owner.in_(chunk))
            .values(state="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        released += int(result.rowcount)  # type: ignore[attr-defined]
    session.commit()
    # Whose death closes which run: the run's own worker first, else the owner naming it.
    died: dict[int, Worker] = {}
    for owner in dead_owners:
        worker = parse_owner(owner)
        assert worker is not None and worker.run_id is not None
        died.setdefault(worker.run_id, worker)
    abandoned = []
    for run_id, worker_name in running_runs(session):
        worker = parse_worker(worker_name)
        culprit = worker if dead(worker) else died.get(run_id)
        if culprit is None:
            continue
        reason = f"worker {culprit.name} died"
        if abandon_run(session, run_id, stop_reason=reason, finished_at=now):
            abandoned.append(run_id)
    return ReclaimResult(released, tuple(abandoned), tuple(dead_owners))


@dataclass(frozen=True)
class LeaseOwner:
    """A lease owner with the jobs it holds and when their leases expire (soonest, latest)."""

    owner: str
    jobs: int
    first_expiry: dt.datetime | None
    last_expiry: dt.datetime | None


def lease_owners(
    session: Session, *, tasks: Sequence[str] | None = None, batch_label: str | None = None
) -> list[LeaseOwner]:
    """Who holds ``running`` jobs, soonest expiry first (``contentgen jobs``)."""
    query = select(
        Job.lease_owner,
        func.count(),
        func.min(Job.lease_expires_at),
        func.max(Job.lease_expires_at),
    ).where(Job.state == "running")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    rows = session.execute(query.group_by(Job.lease_owner))
    found = [LeaseOwner(owner or "-", int(n), first, last) for owner, n, first, last in rows]
    return sorted(found, key=lambda o: (o.first_expiry or dt.datetime.max, o.owner))


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
    requeued = 0
    if stored.known:
        requeued = _requeue_changed(
            session,
            stored.known,
            tasks,
            start_states,
            batch_label=batch_label,
            priority=priority,
            now=now,
        )
    return EnqueueResult(
        accepted=accepted,
        unchanged=len(ids) * len(tasks) - accepted - requeued,
        requeued=requeued,
        articles_new=stored.new,
        articles_updated=stored.updated,
    )


def _requeue_changed(
    session: Session,
    article_ids: list[int],
    tasks: Sequence[str],
    start_states: Mapping[str, str],
    *,
    batch_label: str | None,
    priority: int,
    now: dt.datetime,
) -> int:
    """Re-queue the jobs whose content hash no longer matches their article's; how many."""
    articles = cast(Table, Article.__table__)
    current = (
        select(articles.c.content_hash).where(articles.c.id == _JOBS.c.article_id).scalar_subquery()
    )
    state: Any = literal("queued", String)
    waiting = {task: s for task, s in start_states.items() if task in tasks and s != "queued"}
    if waiting:
        state = case(waiting, value=_JOBS.c.task, else_=literal("queued", String))
    # Whatever state the job was in (even running: that worker's completion will find its
    # lease gone), the new content needs a new generation with fresh attempts.
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
            _JOBS.c.task.in_(list(tasks)),
            _JOBS.c.content_hash != current,
        )
        .values(values)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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
    article comes back with a different title, body or section, the article is updated and its
    jobs for ``tasks`` go back to the queue with fresh attempts (and take ``batch_label`` and
    ``priority``). Other fields that changed (url, published_at, metadata) are updated without
    re-queueing. ``start_states`` maps a task to the state its new or re-queued jobs start in
    (default ``queued``; a chained task's jobs start ``waiting``).
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
    for chunk in _batched(articles, chunk_size):
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
    job when the job is not done yet, whoever holds it (it may have gone back to the queue),
    with its followers released as ``complete`` does. Returns 1 when something was recorded.
    """
    response_id = generation.response_id
    if response_id is not None:
        seen = session.execute(
            select(GENERATIONS.c.id).where(GENERATIONS.c.response_id == response_id).limit(1)
        ).first()
        if seen is not None:
            session.commit()
            return 0
    insert_generation(session, generation)
    if succeeded:
        c = JOBS.c
        done = session.execute(
            JOBS.update()
            .where(c.id == generation.job_id, c.state.in_(("queued", "running")))
            .values(
                state="succeeded",
                lease_owner=None,
                lease_expires_at=None,
                last_error=None,
                attempts=c.attempts + 1,
                updated_at=utcnow(),
            )
        )
        if done.rowcount and followers and article_id is not None:  # type: ignore[attr-defined]
            queue_followers(session, article_id, followers, utcnow())
    session.commit()
    return 1
