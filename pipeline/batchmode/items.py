"""A batch's items (``batch_items``): one per request, and how each one's result is recorded.

Results are recorded through ``db.jobs`` (``complete``/``fail``) in the same transaction as
the item's new state, so a line is never recorded twice, even when a run that was recording
it died half-way and the next run reads the same output file again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.batchmode.store import BatchRow, set_item
from pipeline.db import Article, BatchItem, ClaimedJob, Job, claimed_job, jobs
from pipeline.run import Verdict

_CHUNK = 1000  # ids per IN (...): under SQLite's variable limit


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


@dataclass(frozen=True)
class Item:
    """A ``batch_items`` row as plain values."""

    custom_id: str
    job_id: int
    attempt: int
    task: str
    layout: str
    cache_key: str | None
    state: str
    profile_version: str | None = None


def items(session: Session, row_id: int, *, state: str | None = "pending") -> list[Item]:
    """A batch's items in file order (only those in ``state``; None: all)."""
    query = select(BatchItem).where(BatchItem.batch_row_id == row_id).order_by(BatchItem.id)
    if state is not None:
        query = query.where(BatchItem.state == state)
    return [
        Item(
            i.custom_id,
            i.job_id,
            i.attempt,
            i.task,
            i.layout,
            i.prompt_cache_key,
            i.state,
            i.profile_version,
        )
        for i in session.execute(query).scalars()
    ]


def job_rows(session: Session, job_ids: Sequence[int]) -> dict[int, ClaimedJob]:
    """The jobs with their articles, to render their requests again (read only)."""
    out: dict[int, ClaimedJob] = {}
    for ids in _chunks(job_ids):
        rows = session.execute(
            select(Job, Article).join(Article, Article.id == Job.article_id).where(Job.id.in_(ids))
        )
        for job, article in rows:
            out[job.id] = claimed_job(job, article)
    return out


def record(
    session: Session,
    row: BatchRow,
    item: Item,
    verdict: Verdict,
    *,
    max_attempts: int,
    followers: Sequence[str] = (),
) -> str:
    """Record one line's verdict and the item's new state in one transaction; the job's state.

    Through ``jobs.complete``/``jobs.fail``: a job the batch no longer holds keeps its state,
    but the generation (paid for) is stored all the same. ``followers`` (the tasks chained
    after this one) are queued when it succeeds, told why they wait when it does not.
    """
    g = verdict.generation
    if verdict.succeeded:
        set_item(session, row.id, item.custom_id, "succeeded")
        held = jobs.complete(
            session,
            item.job_id,
            row.owner,
            g,
            article_id=verdict.article_id,
            followers=followers,
            count_attempt=False,
        )
        return "succeeded" if held else "lost"
    set_item(session, row.id, item.custom_id, "failed")
    if followers and verdict.article_id is not None:
        reason = f"{g.task} {g.status}: {verdict.error or 'failed'}"
        jobs.hold_followers(session, verdict.article_id, followers, reason)
    return jobs.fail(
        session,
        item.job_id,
        row.owner,
        verdict.error or "failed",
        generation=g,
        max_attempts=max_attempts,
        permanent=verdict.permanent,
        count_attempt=False,
    )


def requeue(
    session: Session,
    row: BatchRow,
    item: Item,
    error: str,
    *,
    max_attempts: int,
    reason: str | None = None,
) -> str:
    """Return a job whose line never ran (expired, cancelled, missing) to the queue; on its
    last attempt it fails for good with ``reason`` (``expired`` for an ended batch)."""
    set_item(session, row.id, item.custom_id, "requeued")
    return jobs.fail(
        session,
        item.job_id,
        row.owner,
        error,
        generation=None,
        max_attempts=max_attempts,
        permanent=False,
        count_attempt=False,
        reason=reason,
    )
