"""Read-only queries that change nothing (dry runs, displays)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from pipeline.db.jobs import ClaimedJob
from pipeline.db.models import Article, Generation, Job
from pipeline.prompts import ParentOutput

Cursor = tuple[int, int]  # (priority, id) of the last job seen


def peek_queued(
    session: Session,
    n: int,
    *,
    tasks: Sequence[str] | None = None,
    batch_label: str | None = None,
    after: Cursor | None = None,
) -> tuple[list[ClaimedJob], Cursor | None]:
    """The next ``n`` queued jobs in claim order (priority desc, id), without claiming them.

    Returns the jobs and the cursor to pass as ``after`` for the next page (dry runs).
    """
    query = (
        select(Job, Article)
        .join(Article, Article.id == Job.article_id)
        .where(Job.state == "queued")
    )
    if after is not None:
        priority, last_id = after
        query = query.where(
            or_(Job.priority < priority, and_(Job.priority == priority, Job.id > last_id))
        )
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    rows = list(session.execute(query.order_by(Job.priority.desc(), Job.id).limit(n)))
    cursor = (rows[-1][0].priority, rows[-1][0].id) if rows else None
    return [claimed_job(job, article) for job, article in rows], cursor


def claimed_job(job: Job, article: Article) -> ClaimedJob:
    """A job and its article as the value the renderer takes."""
    return ClaimedJob(
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
        regenerations=job.regenerations,
        content_hash=article.content_hash,
    )


def parent_outputs(
    session: Session, article_ids: Sequence[int], parent_tasks: Sequence[str]
) -> dict[tuple[int, str], ParentOutput]:
    """The newest completed output of each parent task for these articles (task chains)."""
    if not article_ids or not parent_tasks:
        return {}
    rows = session.execute(
        select(
            Job.article_id,
            Job.task,
            Job.id,
            Generation.output_text,
            Generation.response_id,
            Generation.prompt_cache_key,
            Generation.id,
        )
        .join(Generation, Generation.job_id == Job.id)
        .where(
            Job.article_id.in_(list(article_ids)),
            Job.task.in_(list(parent_tasks)),
            Job.state == "succeeded",
            Generation.status == "completed",
        )
        .order_by(Generation.id)
    )
    found: dict[tuple[int, str], ParentOutput] = {}
    for article_id, task, job_id, text, response_id, cache_key, generation_id in rows:
        found[(article_id, task)] = ParentOutput(
            job_id, task, text or "", response_id, cache_key, generation_id
        )
    return found


def queued_by_task_section(session: Session) -> dict[tuple[str, str | None], int]:
    """Queued jobs per (task, article section): the request counts ``profiles check`` uses."""
    rows = session.execute(
        select(Job.task, Article.section, func.count())
        .join(Article, Article.id == Job.article_id)
        .where(Job.state == "queued")
        .group_by(Job.task, Article.section)
    ).all()
    return {(task, section): int(count) for task, section, count in rows}


def output_history(session: Session, *, per_task: int = 200) -> dict[tuple[str, str], float]:
    """Mean output tokens (reasoning included) of the latest completed or incomplete
    generations per (task, requested model): what a forecast expects them to write."""
    ranked = (
        select(
            Generation.task,
            Generation.request_model,
            Generation.output_tokens,
            func.row_number()
            .over(
                partition_by=(Generation.task, Generation.request_model),
                order_by=Generation.id.desc(),
            )
            .label("rank"),
        )
        .where(Generation.status.in_(("completed", "incomplete")), ~Generation.from_cache)
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.task, ranked.c.request_model, func.avg(ranked.c.output_tokens))
        .where(ranked.c.rank <= per_task)
        .group_by(ranked.c.task, ranked.c.request_model)
    ).all()
    return {(task, model): float(mean) for task, model, mean in rows if mean is not None}
