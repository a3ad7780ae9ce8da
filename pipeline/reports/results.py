"""Generated texts for people: list, show and export generations with their article, cost,
provenance (profile version, model, tier), check results and review state.

``contentgen results`` reads this module; a CMS reads the same rows from the SQL views
``v_current_outputs`` and ``v_latest_generations`` (migration 0007).

"Current" is, per (article, task), the newest *successful* generation (status ``completed``)
when there is one, since that is the text an editor can publish, else the newest generation
of any status, so a job that never succeeded is not invisible; generations made from an
earlier version of the article (superseded by a correction) and answers a check's retry
replaced never count. Prewarm rows (cache warming, no text) are never shown. With
``history`` every generation is listed, superseded and retried ones included.

Filters: ``batch_label``, ``tasks`` and ``articles`` (external ids) select jobs; ``run_id``,
``since`` and ``until`` select which generations count *before* the current one is picked
(``--run 7`` shows what run 7 produced); ``statuses`` (generation status) and
``review_states`` keep the picked rows in those states; ``stale`` (each task's current profile
version) keeps those made under another version. Times are naive UTC, as stored.

Money is ``Decimal``; exports write it as exact decimal text (``pipeline.reports.costs.usd_text``).
Nothing here prints: the writers (``resultfiles``) take a text stream or return a string.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from pipeline.db import (
    GENERATION_STATUSES,
    OUTPUTS,
    REVIEW_STATES,
    Article,
    Generation,
    Job,
    stale_condition,
)
from pipeline.errors import InputError
from pipeline.reports.costs import parse_day, usd_text

RETRIED_STATUS = "retried"  # an answer a check's retry replaced (pipeline.run.checking)
PUBLISHABLE = ("approved", "edited")


@dataclass(frozen=True)
class ResultFilter:
    """Which generations to list; every filter given must match (see the module docstring)."""

    batch_label: str | None = None
    tasks: tuple[str, ...] = ()
    articles: tuple[str, ...] = ()
    job_id: int | None = None
    run_id: int | None = None
    statuses: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None  # exclusive
    limit: int | None = None
    history: bool = False
    review_states: tuple[str, ...] = ()
    stale: tuple[tuple[str, str], ...] | None = None
    failure_reason: str | None = None  # failed jobs only (``db.failures``)

    def describe(self) -> str:
        """The filters given, as ``batch=x, task=a,b`` (for messages)."""
        parts = []
        if self.batch_label is not None:
            parts.append(f"batch={self.batch_label}")
        if self.tasks:
            parts.append(f"task={','.join(self.tasks)}")
        if self.articles:
            parts.append(f"article={','.join(self.articles)}")
        if self.job_id is not None:
            parts.append(f"job={self.job_id}")
        if self.run_id is not None:
            parts.append(f"run={self.run_id}")
        if self.statuses:
            parts.append(f"state={','.join(self.statuses)}")
        if self.since is not None:
            parts.append(f"since={self.since.isoformat()}")
        if self.until is not None:
            parts.append(f"until<{self.until.isoformat()}")
        if self.review_states:
            parts.append(f"review={','.join(self.review_states)}")
        if self.stale is not None:
            parts.append("stale")
        if self.failure_reason is not None:
            parts.append(f"reason={self.failure_reason}")
        if self.history:
            parts.append("all")
        return ", ".join(parts) or "no filter"


@dataclass(frozen=True)
class ResultRow:
    """One generation with its article, job and numbers (``source_id``: the external id)."""

    source_id: str
    title: str
    url: str | None
    task: str
    status: str
    model: str
    text: str | None
    output_json: dict[str, Any] | None
    error: str | None
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    from_cache: bool
    created_at: dt.datetime
    run_id: int | None
    batch_label: str | None
    job_state: str
    job_id: int
    generation_id: int
    article_pk: int
    # Provenance, checks and review (v_outputs).
    version: str
    profile_version: str | None
    request_model: str
    service_tier: str | None
    response_id: str | None
    checks: list[dict[str, Any]] | None
    review_state: str | None
    decision: str | None
    editor: str | None
    decided_at: dt.datetime | None
    note: str | None
    final_text: str | None
    digital_source_type: str
    superseded: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: money as exact decimal text, times as ISO 8601 (UTC)."""
        data = asdict(self)
        del data["article_pk"]
        data["cost_usd"] = usd_text(self.cost_usd)
        data["created_at"] = self.created_at.isoformat()
        data["decided_at"] = self.decided_at.isoformat() if self.decided_at else None
        data["superseded"] = bool(self.superseded)
        return data


@dataclass(frozen=True)
class FailedJob:
    """A job in state ``failed``: its article, task, attempts and last error."""

    source_id: str
    title: str
    url: str | None
    task: str
    attempts: int
    last_error: str | None
    batch_label: str | None
    updated_at: dt.datetime
    job_id: int
    reason: str | None = None  # ``jobs.failure_reason`` (``db.failures``)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601, UTC)."""
        data = asdict(self)
        data["updated_at"] = self.updated_at.isoformat()
        return data


CSV_COLUMNS = [f.name for f in fields(ResultRow) if f.name not in ("article_pk", "output_json")]
# What `--approved` exports: the publishable text and where it came from.
APPROVED_COLUMNS = [
    "source_id",
    "title",
    "url",
    "task",
    "final_text",
    "review_state",
    "editor",
    "decided_at",
    "note",
    "digital_source_type",
    "version",
    "profile_version",
    "model",
    "request_model",
    "service_tier",
    "generation_id",
    "response_id",
    "text",
    "checks",
    "created_at",
]
FAILED_COLUMNS = [f.name for f in fields(FailedJob)]


def check_review_states(states: Sequence[str]) -> None:
    """Raise ``InputError`` naming an unknown review state and listing the known ones."""
    unknown = [s for s in states if s not in REVIEW_STATES]
    if unknown:
        raise InputError(
            f"unknown review state(s) {', '.join(unknown)}: an output is {', '.join(REVIEW_STATES)}"
        )


def check_statuses(statuses: Sequence[str]) -> None:
    """Raise ``InputError`` naming an unknown generation status and listing the known ones."""
    unknown = [s for s in statuses if s not in GENERATION_STATUSES]
    if unknown:
        raise InputError(
            f"unknown state(s) {', '.join(unknown)}: a generation is "
            f"{', '.join(GENERATION_STATUSES)} (failed jobs: --failed)"
        )


def parse_when(text: str, *, end: bool, today: dt.date) -> dt.datetime:
    """A ``--since``/``--until`` value as a naive UTC datetime.

    A day (``YYYY-MM-DD``, ``today``, ``yesterday``, ``7d``) starts at midnight; as an end
    (``end=True``) it means up to the end of that day. A datetime (``2026-12-01T18:00``, an
    offset converts to UTC) is taken as it is.
    """
    try:
        day = parse_day(text, today)
    except InputError:
        try:
            when = dt.datetime.fromisoformat(text.strip())
        except ValueError:
            raise InputError(
                f"not a date or time: {text!r} (use YYYY-MM-DD, YYYY-MM-DDTHH:MM, today, "
                "yesterday or Nd such as 7d)"
            ) from None
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        return when
    start = dt.datetime.combine(day, dt.time())
    return start + dt.timedelta(days=1) if end else start


Query = Select[*tuple[Any, ...]]


def _job_filters(query: Query, flt: ResultFilter) -> Query:
    if flt.batch_label is not None:
        query = query.where(Job.batch_label == flt.batch_label)
    if flt.tasks:
        query = query.where(Job.task.in_(flt.tasks))
    if flt.articles:
        query = query.where(Article.source_id.in_(flt.articles))
    if flt.job_id is not None:
        query = query.where(Job.id == flt.job_id)
    return query


def _query(flt: ResultFilter) -> Query:
    o = OUTPUTS.c
    rank = func.row_number().over(
        partition_by=Generation.job_id,
        order_by=(
            case((Generation.status == "completed", 0), else_=1),
            Generation.created_at.desc(),
            Generation.id.desc(),
        ),
    )
    inner = (
        select(
            Article.source_id,
            Article.title,
            Article.url,
            Job.task,
            Generation.status,
            func.coalesce(Generation.model, Generation.request_model).label("model"),
            Generation.output_text.label("text"),
            Generation.output_json,
            Generation.error,
            Generation.input_tokens,
            Generation.cached_tokens,
            Generation.cache_write_tokens,
            Generation.output_tokens,
            Generation.reasoning_tokens,
            Generation.cost_usd,
            Generation.from_cache,
            Generation.created_at,
            Generation.run_id,
            Job.batch_label,
            Job.state.label("job_state"),
            Job.id.label("job_id"),
            Generation.id.label("generation_id"),
            Article.id.label("article_pk"),
            o.version,
            o.profile_version,
            Generation.request_model,
            Generation.service_tier,
            Generation.response_id,
            Generation.checks,
            o.review_state,
            o.decision,
            o.editor,
            o.decided_at,
            o.note,
            o.final_text,
            o.digital_source_type,
            o.superseded,
            rank.label("rank_in_job"),
        )
        .join(Job, Job.id == Generation.job_id)
        .join(Article, Article.id == Job.article_id)
        # v_outputs leaves prewarms out, and says what the generation's review state is.
        .join(OUTPUTS, o.generation_id == Generation.id)
    )
    if not flt.history:
        # Only current candidates: neither superseded by a correction nor replaced by a retry.
        inner = inner.where(
            Generation.status != RETRIED_STATUS,
            or_(Generation.content_hash.is_(None), Generation.content_hash == Article.content_hash),
        )
    inner = _job_filters(inner, flt)
    if flt.run_id is not None:
        inner = inner.where(Generation.run_id == flt.run_id)
    if flt.since is not None:
        inner = inner.where(Generation.created_at >= flt.since)
    if flt.until is not None:
        inner = inner.where(Generation.created_at < flt.until)
    sub = inner.subquery()
    names = [f.name for f in fields(ResultRow)]
    query = select(*(sub.c[name] for name in names))
    if not flt.history:
        query = query.where(sub.c.rank_in_job == 1)
    if flt.statuses:
        query = query.where(sub.c.status.in_(flt.statuses))
    if flt.review_states:
        query = query.where(sub.c.review_state.in_(flt.review_states))
    if flt.stale is not None:
        query = query.where(
            sub.c.status == "completed",
            stale_condition(sub.c.task, sub.c.profile_version, flt.stale),
        )
    query = query.order_by(
        sub.c.article_pk, sub.c.task, sub.c.created_at, sub.c.generation_id
    ).limit(flt.limit)
    return query


def generations(session: Session, flt: ResultFilter) -> list[ResultRow]:
    """The generations ``flt`` selects, by article (in enqueue order), task, then time."""
    return [ResultRow(*row) for row in session.execute(_query(flt))]


def failed_jobs(session: Session, flt: ResultFilter) -> list[FailedJob]:
    """Jobs in state ``failed`` (batch, task, article and job filters apply), by article."""
    query = (
        select(
            Article.source_id,
            Article.title,
            Article.url,
            Job.task,
            Job.attempts,
            Job.last_error,
            Job.batch_label,
            Job.updated_at,
            Job.id,
            Job.failure_reason,
        )
        .join(Article, Article.id == Job.article_id)
        .where(Job.state == "failed")
    )
    if flt.failure_reason is not None:
        query = query.where(Job.failure_reason == flt.failure_reason)
    query = _job_filters(query, flt).order_by(Article.id, Job.task).limit(flt.limit)
    return [FailedJob(*row) for row in session.execute(query)]


def article_exists(session: Session, source_id: str) -> bool:
    """Whether an article with this external id is stored."""
    return session.scalar(select(Article.id).where(Article.source_id == source_id)) is not None


def total_cost(rows: Iterable[ResultRow]) -> Decimal:
    """What the rows cost together, exactly."""
    return sum((r.cost_usd for r in rows), Decimal(0))
