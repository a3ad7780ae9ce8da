"""latest generations: view v_latest_generations for a CMS; jobs.regenerations

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:00:00.000000

``v_latest_generations`` has one row per (article, task) that has a generation: the text a CMS
can read, with its article (``source_id`` is the external id), model, status, tokens, cost,
run and batch label. "Latest" is the latest *successful* generation (status ``completed``)
when the job has one, because that is the text an editor can publish; a job that never
succeeded shows its latest attempt (``incomplete`` or ``failed``) so it is not invisible.
Prewarm rows (status ``prewarm``: cache warming, no text) are never shown. Ties on
``created_at`` go to the higher generation id.

Money follows 0002/0004: on PostgreSQL ``cost_usd`` is NUMERIC; on SQLite it is stored as an
INTEGER count of 1e-10 USD, ``cost_usd`` divides it (a REAL, fine for reading), and both
databases have the exact ``cost_usd_e10`` integer column. ``output_json`` is JSON on
PostgreSQL and JSON text on SQLite, as the table stores it.

``jobs.regenerations`` (INTEGER NOT NULL, server default 0) counts how many times
``contentgen jobs regenerate`` re-queued a job on purpose. A non-zero count is sent in the
request's metadata and is part of the response-cache key (``pipeline.requests``), so a
regenerated job is answered by the API again, not by the response cache.

The view SQL is frozen here: a later change is a new revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

E10 = "10000000000"
VIEW = "v_latest_generations"


def _latest_generations(dialect: str) -> str:
    """One row per job: its latest completed generation, else its latest one."""
    if dialect == "sqlite":
        money = """
    g.cost_usd / 1e10 AS cost_usd,
    g.cost_usd AS cost_usd_e10"""
    else:
        money = f"""
    g.cost_usd AS cost_usd,
    CAST(g.cost_usd * {E10} AS BIGINT) AS cost_usd_e10"""
    return f"""
CREATE VIEW {VIEW} AS
SELECT
    g.id AS generation_id,
    g.job_id AS job_id,
    a.id AS article_id,
    a.source_id AS source_id,
    a.title AS title,
    a.url AS url,
    g.task AS task,
    COALESCE(g.model, g.request_model) AS model,
    g.status AS status,
    j.state AS job_state,
    g.output_text AS output_text,
    g.output_json AS output_json,
    g.error AS error,
    g.input_tokens AS input_tokens,
    g.cached_tokens AS cached_tokens,
    g.cache_write_tokens AS cache_write_tokens,
    g.output_tokens AS output_tokens,
    g.reasoning_tokens AS reasoning_tokens,{money},
    g.from_cache AS from_cache,
    g.created_at AS created_at,
    g.run_id AS run_id,
    j.batch_label AS batch_label
FROM (
    SELECT
        x.*,
        ROW_NUMBER() OVER (
            PARTITION BY x.job_id
            ORDER BY CASE WHEN x.status = 'completed' THEN 0 ELSE 1 END,
                x.created_at DESC, x.id DESC
        ) AS rank_in_job
    FROM generations x
    WHERE x.status <> 'prewarm'
) g
JOIN jobs j ON j.id = g.job_id
JOIN articles a ON a.id = j.article_id
WHERE g.rank_in_job = 1
"""


def upgrade() -> None:
    # A plain ADD COLUMN on both databases: SQLite's batch mode would rebuild ``jobs`` by
    # renaming it, which the report views that read it would block.
    op.add_column(
        "jobs", sa.Column("regenerations", sa.Integer(), server_default="0", nullable=False)
    )
    op.execute(_latest_generations(op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute(f"DROP VIEW IF EXISTS {VIEW}")
    # SQLite (3.35+) drops a column in place when no view or index reads it.
    op.drop_column("jobs", "regenerations")
