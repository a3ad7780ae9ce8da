"""cache writes: generations/runs.cache_write_tokens, prices.cache_write_usd_per_mtok, views

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000

GPT-5.6+ bills tokens written to the prompt cache at their own rate (API-NOTES §1.5); the API
reports them in ``usage.input_tokens_details.cache_write_tokens``, a part of the inclusive
``input_tokens`` like ``cached_tokens``. This revision stores them:

- ``generations.cache_write_tokens`` and ``runs.cache_write_tokens``: NOT NULL, server default
  0, so every row stored before reads 0 (no writes: what those rows were billed for).
- ``prices.cache_write_usd_per_mtok``: nullable; NULL means writes cost the input rate
  (models before GPT-5.6) or, for rows stored before this revision, not recorded yet
  (``contentgen prices load`` fills it in).
- The report views are dropped and created again with a ``cache_write_tokens`` column next to
  ``cached_tokens`` (a SUM in the grouped views and ``v_cost_by_run``). Every other column is
  unchanged; as in 0002 the SQL is frozen here, per dialect. Downgrade drops them, drops the
  columns and creates the 0002 views again (from that revision's module, as Alembic's
  "replaceable objects" recipe does).

The views are dropped before the tables change: SQLite's batch mode rebuilds a table by
renaming, which a view that reads it would block, and PostgreSQL refuses to drop a column a
view uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pipeline.db.types

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

E10 = "10000000000"

# Grouped views: (view name, grouping column selected from v_generation_costs).
GROUPED_VIEWS = (
    ("v_cost_by_day", "day"),
    ("v_cost_by_model", "model"),
    ("v_cost_by_task", "task"),
    ("v_cost_by_section", "section"),
    ("v_cost_by_batch", "batch_label"),
)
ALL_VIEWS = ("v_generation_costs", "v_cost_by_run", *(name for name, _ in GROUPED_VIEWS))


def _generation_costs(dialect: str) -> str:
    """One row per generation with its report dimensions and money in USD and USD x 1e10."""
    if dialect == "sqlite":
        day = "date(g.created_at)"
        money = """
    g.cost_usd / 1e10 AS cost_usd,
    g.list_cost_usd / 1e10 AS list_cost_usd,
    (g.list_cost_usd - g.cost_usd) / 1e10 AS savings_usd,
    g.cost_usd AS cost_usd_e10,
    g.list_cost_usd AS list_cost_usd_e10,
    g.list_cost_usd - g.cost_usd AS savings_usd_e10"""
    else:
        day = "CAST(g.created_at AS DATE)"
        money = f"""
    g.cost_usd AS cost_usd,
    g.list_cost_usd AS list_cost_usd,
    g.list_cost_usd - g.cost_usd AS savings_usd,
    CAST(g.cost_usd * {E10} AS BIGINT) AS cost_usd_e10,
    CAST(g.list_cost_usd * {E10} AS BIGINT) AS list_cost_usd_e10,
    CAST((g.list_cost_usd - g.cost_usd) * {E10} AS BIGINT) AS savings_usd_e10"""
    return f"""
CREATE VIEW v_generation_costs AS
SELECT
    g.id AS generation_id,
    g.run_id AS run_id,
    g.job_id AS job_id,
    {day} AS day,
    g.created_at AS created_at,
    g.task AS task,
    COALESCE(g.model, g.request_model) AS model,
    a.section AS section,
    j.batch_label AS batch_label,
    g.status AS status,
    g.price_tier AS price_tier,
    g.from_cache AS from_cache,
    g.input_tokens AS input_tokens,
    g.cached_tokens AS cached_tokens,
    g.cache_write_tokens AS cache_write_tokens,
    g.output_tokens AS output_tokens,
    g.reasoning_tokens AS reasoning_tokens,{money}
FROM generations g
JOIN jobs j ON j.id = g.job_id
JOIN articles a ON a.id = j.article_id
"""


def _aggregates(dialect: str, src: str = "v") -> str:
    """The measures every grouped view shares, over rows of v_generation_costs aliased ``src``."""
    if dialect == "sqlite":
        ratio = f"CAST(SUM({src}.cached_tokens) AS REAL) / NULLIF(SUM({src}.input_tokens), 0)"
        money = f"""
    SUM({src}.cost_usd_e10) / 1e10 AS cost_usd,
    SUM({src}.list_cost_usd_e10) / 1e10 AS list_cost_usd,
    SUM({src}.savings_usd_e10) / 1e10 AS savings_usd,
    SUM({src}.cost_usd_e10) AS cost_usd_e10,
    SUM({src}.list_cost_usd_e10) AS list_cost_usd_e10,
    SUM({src}.savings_usd_e10) AS savings_usd_e10"""
    else:
        ratio = (
            f"CAST(SUM({src}.cached_tokens) AS DOUBLE PRECISION)"
            f" / NULLIF(SUM({src}.input_tokens), 0)"
        )
        money = f"""
    SUM({src}.cost_usd) AS cost_usd,
    SUM({src}.list_cost_usd) AS list_cost_usd,
    SUM({src}.savings_usd) AS savings_usd,
    CAST(SUM({src}.cost_usd_e10) AS BIGINT) AS cost_usd_e10,
    CAST(SUM({src}.list_cost_usd_e10) AS BIGINT) AS list_cost_usd_e10,
    CAST(SUM({src}.savings_usd_e10) AS BIGINT) AS savings_usd_e10"""
    return f"""
    COUNT(*) AS requests,
    SUM(CASE WHEN {src}.status = 'completed' THEN 1 ELSE 0 END) AS completed,
    SUM(CASE WHEN {src}.status = 'incomplete' THEN 1 ELSE 0 END) AS incomplete,
    SUM(CASE WHEN {src}.status = 'failed' THEN 1 ELSE 0 END) AS failed,
    SUM(CASE WHEN {src}.from_cache THEN 1 ELSE 0 END) AS from_cache,
    SUM({src}.input_tokens) AS input_tokens,
    SUM({src}.cached_tokens) AS cached_tokens,
    SUM({src}.cache_write_tokens) AS cache_write_tokens,
    SUM({src}.output_tokens) AS output_tokens,
    SUM({src}.reasoning_tokens) AS reasoning_tokens,
    {ratio} AS cached_ratio,{money}"""


def _grouped(dialect: str, name: str, column: str) -> str:
    return f"""
CREATE VIEW {name} AS
SELECT
    v.{column} AS {column},{_aggregates(dialect)}
FROM v_generation_costs v
GROUP BY v.{column}
"""


def _by_run(dialect: str) -> str:
    """Per run: what its generations add up to, next to the run's forecast."""
    if dialect == "sqlite":
        forecast = """
    r.forecast_cost_usd / 1e10 AS forecast_cost_usd,
    r.forecast_cost_usd AS forecast_cost_usd_e10,"""
    else:
        forecast = f"""
    r.forecast_cost_usd AS forecast_cost_usd,
    CAST(r.forecast_cost_usd * {E10} AS BIGINT) AS forecast_cost_usd_e10,"""
    return f"""
CREATE VIEW v_cost_by_run AS
SELECT
    v.run_id AS run_id,
    r.kind AS kind,
    r.mode AS mode,
    r.state AS state,
    r.started_at AS started_at,
    r.finished_at AS finished_at,{forecast}
    r.forecast_cached_ratio AS forecast_cached_ratio,{_aggregates(dialect)}
FROM v_generation_costs v
LEFT JOIN runs r ON r.id = v.run_id
GROUP BY v.run_id, r.kind, r.mode, r.state, r.started_at, r.finished_at,
    r.forecast_cost_usd, r.forecast_cached_ratio
"""


def _drop_views() -> None:
    # Dependent views first: everything else reads v_generation_costs.
    for name in reversed(ALL_VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    _drop_views()
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cache_write_tokens", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cache_write_tokens", sa.BigInteger(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "cache_write_usd_per_mtok",
                pipeline.db.types.ExactDecimal(precision=20, scale=10),
                nullable=True,
            )
        )
    dialect = op.get_bind().dialect.name
    op.execute(_generation_costs(dialect))
    for name, column in GROUPED_VIEWS:
        op.execute(_grouped(dialect, name, column))
    op.execute(_by_run(dialect))


def downgrade() -> None:
    _drop_views()
    with op.batch_alter_table("prices", schema=None) as batch_op:
        batch_op.drop_column("cache_write_usd_per_mtok")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("cache_write_tokens")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("cache_write_tokens")
    # The 0002 views, exactly as that revision created them.
    script = op.get_context().script
    assert script is not None, "run through Alembic's environment (migrations/env.py)"
    script.get_revision("0002").module.upgrade()
