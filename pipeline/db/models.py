"""The schema: articles, jobs, runs, generations, prices, batches, profile versions and reviews
(SQLAlchemy 2.0 typed models).

Alembic migrations under ``migrations/`` are the only way this schema reaches a database;
``tests/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pipeline.db.types import ExactDecimal

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Money and prices: exact decimals on both databases (see ExactDecimal).
Money = ExactDecimal()
Rate = ExactDecimal()

JOB_STATES = ("waiting", "queued", "running", "succeeded", "failed", "cancelled")
# `retried`: a paid answer that failed its checks and was followed up (`pipeline.run.checking`);
# kept and counted in every cost, never an output. `lost`: a paid answer that came back after
# its job's lease had passed to another claim (kept for the bill, never the job's output).
GENERATION_STATUSES = ("completed", "incomplete", "failed", "retried", "lost")
# An editor's decisions on an output (`reviews.decision`); history is append-only.
DECISIONS = ("approved", "edited", "rejected")
# Review states of an output (`v_outputs.review_state`): a decision, else flagged (a check or
# the grader failed), else pending (its task needs review) or auto (`review = "none"`);
# `superseded` once its article changed; `retried` for an answer a check retry replaced.
REVIEW_STATES = ("pending", "flagged", *DECISIONS, "auto", "superseded", "retried")


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations get stable constraint names."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON}


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC (stored as naive UTC, which both databases handle alike)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Article(Base):
    """A piece of source content, keyed by the source's own id."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[str] = mapped_column(String(255), unique=True)
    title: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    section: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Job(Base):
    """One (article, task) to generate. Only ``pipeline.db.jobs`` changes its state."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("article_id", "task"),
        # Matches the claim's ORDER BY priority DESC, id, so a claim reads the index in order.
        Index("ix_jobs_claim", "state", text("priority DESC"), "id"),
        Index("ix_jobs_lease", "state", "lease_expires_at"),
        Index("ix_jobs_batch_label", "batch_label"),
        Index("ix_jobs_failure_reason", "state", "failure_reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    batch_label: Mapped[str | None] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    wait_reason: Mapped[str | None] = mapped_column(Text)
    # Added by 0005: times `jobs regenerate` re-queued it; part of its response-cache key.
    regenerations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Added by 0010: why it failed for good (``db.failures.FAILURE_REASONS``), deaths of
    # workers it alone was being sent on, whether it was among several at a death, the
    # claim's fencing token.
    failure_reason: Mapped[str | None] = mapped_column(String(32))
    worker_deaths: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    death_suspect: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    lease_token: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Added by 0014: a queued job is not claimed before this time (``jobs requeue --stagger``).
    not_before: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class Run(Base):
    """One execution of the pipeline over a set of jobs."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # nightly | adhoc | batch | cli
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | ui | cli | api
    mode: Mapped[str] = mapped_column(String(16), default="realtime")  # realtime | flex | batch
    worker: Mapped[str | None] = mapped_column(String(128))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    batch_label: Mapped[str | None] = mapped_column(String(128))
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="running")
    stop_reason: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Added by 0004: the server default gives runs stored before it 0.
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    forecast_cost_usd: Mapped[Decimal | None] = mapped_column(Money)
    forecast_cached_ratio: Mapped[float | None] = mapped_column(Float)
    budget_usd: Mapped[Decimal | None] = mapped_column(Money)
    # Added by 0008: the machine and pid namespace of its process, and its last beat.
    host_id: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class Generation(Base):
    """The recorded outcome of one job in one run: text, status, usage (facts) and cost."""

    __tablename__ = "generations"
    __table_args__ = (
        Index("ix_generations_job", "job_id"),
        Index("ix_generations_run", "run_id"),
        Index("ix_generations_created", "created_at"),
        Index("ix_generations_graded", "graded_generation_id"),
        Index("ix_generations_response_id", "response_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    task: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # completed | incomplete | failed | lost
    incomplete_reason: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    response_id: Mapped[str | None] = mapped_column(String(128))
    request_model: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(64))  # the model the API says it used
    output_text: Mapped[str | None] = mapped_column(Text)
    output_json: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reasoning_summary: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # Tokens written to the prompt cache (GPT-5.6+), a part of input_tokens like cached_tokens.
    # Added by 0004: the server default gives generations stored before it 0.
    cache_write_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    list_cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    price_tier: Mapped[str] = mapped_column(String(16), default="standard")
    service_tier: Mapped[str | None] = mapped_column(String(16))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    ttft_ms: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    from_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_cache_key: Mapped[str | None] = mapped_column(String(128))
    batch_id: Mapped[str | None] = mapped_column(String(128))
    previous_response_id: Mapped[str | None] = mapped_column(String(128))
    trimmed: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # Added by 0007 (provenance, checks, review). The profile version that made it
    # (``profile_versions.version``) and the article content it was made from: an output whose
    # article changed since is superseded. NULL for rows stored before 0007.
    profile_version: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # Its task's check results, ``[{"check", "passed", "reason"}]`` (a grader: its criteria);
    # ``flagged``: one failed (a grader: the output it graded is below its threshold).
    checks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # False for tasks with ``review = "none"``: the output is `auto`, not `pending`.
    needs_review: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # A grader's generation: the output it graded. (No foreign key: SQLite would have to
    # rebuild the table, which the report views reading it forbid.)
    graded_generation_id: Mapped[int | None] = mapped_column(Integer)


class ProfileVersion(Base):
    """One version of a task's profile: everything that shapes its requests, kept so that any
    output can be traced to its exact prompt. Written when a run or enqueue first meets it."""

    __tablename__ = "profile_versions"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Review(Base):
    """An editor's decision on one output: who, what, when, and why. Append-only: the current
    decision is the newest row; a trigger refuses UPDATE and DELETE (migration 0007)."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_generation", "generation_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    editor: Mapped[str] = mapped_column(String(128))
    decision: Mapped[str] = mapped_column(String(16))  # approved | edited | rejected
    note: Mapped[str | None] = mapped_column(Text)
    edited_text: Mapped[str | None] = mapped_column(Text)
    # A rejection that re-queued its job: the note is sent after the cached prefix.
    regenerate: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Price(Base):
    """USD per 1M tokens of a model in a tier from a date on; history is kept, never rewritten."""

    __tablename__ = "prices"
    __table_args__ = (UniqueConstraint("model", "tier", "effective_date"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16))  # standard | batch | flex
    effective_date: Mapped[dt.date] = mapped_column(Date)
    input_usd_per_mtok: Mapped[Decimal] = mapped_column(Rate)
    cached_input_usd_per_mtok: Mapped[Decimal | None] = mapped_column(Rate)
    output_usd_per_mtok: Mapped[Decimal] = mapped_column(Rate)
    # NULL: cache writes cost the input rate (models before GPT-5.6, and rows stored before 0004).
    cache_write_usd_per_mtok: Mapped[Decimal | None] = mapped_column(Rate)


BATCH_STATUSES = (
    "preparing",  # row, items and job leases stored; nothing uploaded yet
    "held",  # waiting for the model's other batches to end (a split after token_limit_exceeded)
    "uploaded",  # input file uploaded, batch not created yet
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "failed",
    "expired",
    "cancelled",
)


class Batch(Base):
    """One Batch API batch: one model's requests in one input file (batch mode).

    Stored before anything is uploaded and updated as soon as each id exists, so a restarted
    run re-attaches to it instead of uploading its jobs again. ``ref`` names it at the
    provider (file name and metadata) so a crash between upload and storing the id is found.
    ``worker`` holds the row during a local step so two processes never both upload or
    ingest it. ``ingested_at`` is set once its results are recorded and its jobs released.
    """

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_open", "ingested_at", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="preparing")
    batch_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    input_file_id: Mapped[str | None] = mapped_column(String(128))
    output_file_id: Mapped[str | None] = mapped_column(String(128))
    error_file_id: Mapped[str | None] = mapped_column(String(128))
    requests: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    list_cost_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Which process is doing a local step (upload, create, ingest) right now, and until when.
    worker: Mapped[str | None] = mapped_column(String(128))
    worker_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    ingested_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class BatchItem(Base):
    """One request of a batch: its ``custom_id`` and the job (and attempt) it answers.

    ``layout`` and ``prompt_cache_key`` let the request be rendered again exactly (to judge
    its result after a restart, or to re-submit it in a split). ``state`` is ``pending`` until
    its line is recorded (``succeeded``/``failed``/``requeued``) or it moves to a split.
    """

    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("batch_row_id", "custom_id"),
        Index("ix_batch_items_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_row_id: Mapped[int] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    custom_id: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    task: Mapped[str] = mapped_column(String(64))
    layout: Mapped[str] = mapped_column(String(32))
    prompt_cache_key: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # Added by 0007: the profile version the request was rendered with when submitted.
    profile_version: Mapped[str | None] = mapped_column(String(64))


class LimiterMember(Base):
    """A runner taking part in an account's rate limit for one model (``pipeline.limits.share``).

    ``account`` is an opaque hash of the endpoint and credentials, ``demand`` the runner's
    weight (0 is never stored: an idle runner has no row) and ``heartbeat_at`` its last beat;
    rows older than the share's TTL are ignored and pruned.
    """

    __tablename__ = "limiter_members"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker: Mapped[str] = mapped_column(String(128), primary_key=True)
    demand: Mapped[float] = mapped_column(Float)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime)


class LearntKeyRate(Base):
    """What one account's cache keys were learnt to take on one model (``planning.keys``).

    ``rpm`` is the requests a minute one ``prompt_cache_key`` carried without spilling, as
    the last run on this account and model left it; ``requests`` and ``spills`` are what that
    run observed. The next run on the same account and model starts from it.
    """

    __tablename__ = "cache_key_rates"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    rpm: Mapped[float] = mapped_column(Float)
    requests: Mapped[int] = mapped_column(Integer, default=0)
    spills: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RunForecast(Base):
    """A run's plan against its bill, per (model, layout): what the forecast learns from.

    ``planned_*`` are the plan's counts (our tokenizer, the cache the plan expected);
    ``billed_*`` what the server reported for the same requests. Their ratios correct the
    next forecast for a server that counts or caches differently.
    """

    __tablename__ = "run_forecasts"
    __table_args__ = (Index("ix_run_forecasts_model_layout", "model", "layout"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    layout: Mapped[str] = mapped_column(String(32))
    requests: Mapped[int] = mapped_column(Integer, default=0)
    planned_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    planned_cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    planned_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    billed_input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    billed_cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    billed_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)


class Editor(Base):
    """A person who may sign outputs off on the review desk. The login token is shown once
    (``contentgen desk editors add``); only its SHA-256 is stored."""

    __tablename__ = "editors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class DeskSession(Base):
    """A logged-in browser: the cookie's SHA-256, its editor, the form token (CSRF) and when it
    ends. Removing an editor ends their sessions with them."""

    __tablename__ = "desk_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class BudgetGrant(Base):
    """What one running run may spend from one recurring budget in one period (0013).

    A runner reserves each request's worst case against its grant and asks for more in a
    transaction that locks the budget's period (``pipeline.db.budgets``): spend recorded by
    other runs plus the grants of runs still running never pass the limit. The row goes when
    the run ends; a dead run's grant stops counting once its row is closed.
    """

    __tablename__ = "budget_grants"

    budget: Mapped[str] = mapped_column(String(128), primary_key=True)
    period_start: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    granted_usd: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class BudgetLock(Base):
    """One row per (budget, period) that grant transactions update first: on PostgreSQL its
    row lock, on SQLite the write lock, makes them take turns (0013)."""

    __tablename__ = "budget_locks"

    budget: Mapped[str] = mapped_column(String(128), primary_key=True)
    period_start: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    grants: Mapped[int] = mapped_column(Integer, default=0)


class AlertSent(Base):
    """An alert sent (or tried): one row per event key, so an event evaluated twice is sent
    once (0013). ``key`` is ``run:<id>:<event>``, ``budget:<name>:<period>`` or
    ``deadline:<day>``; ``outcome`` says, per channel, sent or why not."""

    __tablename__ = "alerts_sent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
