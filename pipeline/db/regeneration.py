"""Regenerating succeeded jobs on purpose (``contentgen jobs regenerate``).

An editor who wants another headline re-queues the job: it goes back to ``queued`` with its
attempts reset and its error, wait reason and lease cleared, exactly as a fresh job, and its
``regenerations`` count goes up by one. Its earlier generations stay as history (nothing is
deleted); ``contentgen results`` shows the newest successful one once the new one exists.

Only ``succeeded`` jobs are touched: a queued, waiting or running (leased) job is already on
its way, and a failed one is re-queued by ``contentgen jobs requeue --failed``. The state is
checked again in the UPDATE itself, so a job that changed in between is left alone.

The response cache: a job's request is normally answered from the local response cache when
the same request was paid for before, which would hand a regenerated job its old text for
free. The ``regenerations`` count is sent in the request metadata and is part of the cache
key (``pipeline.prompts.requests.job_metadata``), so the regenerated request is a new entry: the API
is called again, and a crash after paying for it still finds the new answer in the cache.

Chains: when a task and the task it follows are both regenerated for an article, the
follower waits (``waiting``) for its parent's new answer, as on enqueue, instead of being
generated from the old one and then again. A parent regenerated alone re-queues its
followers when it succeeds (``jobs.complete``), since their input changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, or_, select, update
from sqlalchemy.orm import Session

from pipeline.db.articles import one_of
from pipeline.db.jobs import JOBS
from pipeline.db.models import Article, Generation, Job, utcnow
from pipeline.db.views import CURRENT_OUTPUTS

_CHUNK = 2_000  # ids per UPDATE; keeps SQLite's IN (...) under its limits


@dataclass(frozen=True)
class RegenerateFilter:
    """Which succeeded jobs to regenerate: every given filter must match (AND).

    ``articles`` are the articles' external ids (``source_id``); ``run_id`` selects the jobs
    that have a generation recorded in that run. ``stale`` maps each task to its profile's
    current version: the jobs whose current output was made under another version of their
    profile (outputs stored before versions were recorded have none and are never stale).
    """

    articles: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    batch_label: str | None = None
    run_id: int | None = None
    stale: tuple[tuple[str, str], ...] | None = None

    @property
    def empty(self) -> bool:
        """No filter given (regenerating everything is never implied)."""
        return not (self.articles or self.tasks or self.batch_label is not None) and (
            self.run_id is None and self.stale is None
        )


def stale_condition(
    task: ColumnElement[str],
    version: ColumnElement[str | None],
    current: tuple[tuple[str, str], ...],
) -> ColumnElement[bool]:
    """Rows of ``task`` whose ``version`` is not their task's current one (and not unknown)."""
    if not current:
        return false()
    return and_(
        version.is_not(None),
        or_(*(and_(task == name, version != now) for name, now in current)),
    )


@dataclass(frozen=True)
class RegenerateResult:
    """What ``regenerate`` did (or, with ``dry_run``, would do), counted in jobs."""

    queued: int
    waiting: int
    dry_run: bool

    @property
    def jobs(self) -> int:
        """Jobs regenerated: queued now, or waiting for their regenerated parent."""
        return self.queued + self.waiting

    def as_dict(self) -> dict[str, Any]:
        """The counts as JSON-ready data."""
        return {
            "regenerated": self.jobs,
            "queued": self.queued,
            "waiting": self.waiting,
            "dry_run": self.dry_run,
        }


def _selected(flt: RegenerateFilter) -> Select[int, int, str]:
    query = select(Job.id, Job.article_id, Job.task).where(Job.state == "succeeded")
    if flt.articles:
        query = query.where(
            Job.article_id.in_(select(Article.id).where(Article.source_id.in_(flt.articles)))
        )
    if flt.tasks:
        query = query.where(Job.task.in_(flt.tasks))
    if flt.batch_label is not None:
        query = query.where(Job.batch_label == flt.batch_label)
    if flt.run_id is not None:
        query = query.where(
            select(Generation.id)
            .where(Generation.job_id == Job.id, Generation.run_id == flt.run_id)
            .exists()
        )
    if flt.stale is not None:
        c = CURRENT_OUTPUTS.c
        query = query.where(
            Job.id.in_(
                select(c.job_id).where(
                    c.status == "completed", stale_condition(c.task, c.profile_version, flt.stale)
                )
            )
        )
    return query.order_by(Job.id)


def _update(session: Session, ids: Sequence[int], state: str, reason: str | None, now: Any) -> int:
    done = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        result = session.execute(
            update(Job)
            # Checked again here: a job re-queued or changed since it was selected is left alone.
            .where(one_of(session, JOBS.c.id, chunk), Job.state == "succeeded")
            .values(
                state=state,
                attempts=0,
                last_error=None,
                wait_reason=reason,
                lease_owner=None,
                lease_expires_at=None,
                regenerations=Job.regenerations + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        done += int(result.rowcount)  # type: ignore[attr-defined]
    return done


def regenerate(
    session: Session,
    flt: RegenerateFilter,
    *,
    follows: Mapping[str, str | None] | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    commit: bool = True,
) -> RegenerateResult:
    """Re-queue the succeeded jobs ``flt`` selects, keeping their generations; commits.

    ``follows`` maps a task to the task it follows (profiles' ``follows``): a follower whose
    parent for the same article is regenerated too waits for the parent's new answer.
    ``dry_run`` counts without changing anything. ``commit=False`` leaves the transaction
    open, for a caller that commits the regeneration with its own rows (a rejection). Raises
    ``ValueError`` on an empty filter.
    """
    if flt.empty:
        raise ValueError("regenerate needs at least one filter")
    rows = list(session.execute(_selected(flt)))
    chosen = {(article_id, task) for _, article_id, task in rows}
    parents = dict(follows or {})
    queued: list[int] = []
    waiting: list[int] = []
    for job_id, article_id, task in rows:
        parent = parents.get(task)
        (waiting if parent is not None and (article_id, parent) in chosen else queued).append(
            job_id
        )
    if dry_run:
        session.rollback()
        return RegenerateResult(queued=len(queued), waiting=len(waiting), dry_run=True)
    now = now or utcnow()
    try:
        n_queued = _update(session, queued, "queued", None, now)
        n_waiting = _update(
            session, waiting, "waiting", "regenerated: waits for its parent's new answer", now
        )
        if commit:
            session.commit()
    except BaseException:
        session.rollback()
        raise
    return RegenerateResult(queued=n_queued, waiting=n_waiting, dry_run=False)
