"""failure reasons: every failed job names why; a queued job may wait for a time

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 23:00:00.000000

- Backfill ``jobs.failure_reason`` (added by 0010) for failed jobs that have none, from their
  ``last_error`` (``pipeline.db.failures`` holds the vocabulary; the reading here is a frozen
  copy of it, so this revision does the same thing whatever the code becomes): an API key
  refused -> ``auth``, out of quota -> ``quota``, a content filter -> ``content_filter``, too
  large -> ``too_large``, a batch that ended before the line ran -> ``expired``, a 4xx, an
  answer cut short or off its schema -> ``bad_request``, a 5xx, a 429, a timeout or a lost
  connection (retried until the last attempt) -> ``max_attempts``; a failure whose error names
  none of these (or has no error) -> ``unknown``, rather than a guess.
- ``jobs.not_before`` (DATETIME, NULL): a queued job is not claimed before this time; ``jobs
  requeue --stagger S`` spreads requeued jobs over S seconds with it.
- ``ix_jobs_failure_reason`` (state, failure_reason): ``results --failed --reason`` and ``jobs
  requeue --failed --reason`` read failed jobs by reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RULES = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        ("worker_lost", r"workers? died"),
        ("quota", r"insufficient_quota|out of quota"),
        ("auth", r"HTTP 40[13]\b|invalid_api_key|api key was refused"),
        ("content_filter", r"content_filter|content_policy|invalid_prompt|bio_policy"),
        ("too_large", r"too large|context_length|context window|larger than"),
        ("expired", r"batch_expired|batch_cancelled|ended (expired|cancelled)"),
        ("max_attempts", r"last attempt|HTTP (429|5\d\d)\b|timed out|connection"),
        ("bad_request", r"HTTP 4\d\d\b|does not match the|incomplete:|schema"),
    )
)


def _reason(error: str | None) -> str:
    for reason, pattern in _RULES:
        if pattern.search(error or ""):
            return reason
    return "unknown"


def upgrade() -> None:
    # Plain ADD COLUMN (see 0010: batch mode would rebuild ``jobs``, which views read).
    op.add_column("jobs", sa.Column("not_before", sa.DateTime(), nullable=True))
    op.create_index("ix_jobs_failure_reason", "jobs", ["state", "failure_reason"])
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.Integer()),
        sa.column("state", sa.String()),
        sa.column("last_error", sa.Text()),
        sa.column("failure_reason", sa.String()),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(jobs.c.id, jobs.c.last_error).where(
            jobs.c.state == "failed", jobs.c.failure_reason.is_(None)
        )
    ).all()
    by_reason: dict[str, list[int]] = {}
    for job_id, error in rows:
        by_reason.setdefault(_reason(error), []).append(job_id)
    for reason, ids in by_reason.items():
        for start in range(0, len(ids), 500):
            bind.execute(
                jobs.update()
                .where(jobs.c.id.in_(ids[start : start + 500]))
                .values(failure_reason=reason)
            )


def downgrade() -> None:
    op.drop_index("ix_jobs_failure_reason", table_name="jobs")
    op.drop_column("jobs", "not_before")
    # The backfilled reasons stay: 0010's column holds them, and they are true.
