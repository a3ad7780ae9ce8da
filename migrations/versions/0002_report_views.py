"""report views: cost and tokens by day, model, task, run, section and batch label

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00.000000

Views are plain SQL so that any SQL client can read the cost reports. They are written per
dialect because money is stored differently (see ``pipeline.db.types.ExactDecimal``):

- PostgreSQL: ``*_usd`` columns are NUMERIC (exact).
- SQLite: money is stored as an INTEGER count of 1e-10 USD; ``*_usd`` columns divide by 1e10
  (a REAL, fine for reading), and every view also has exact ``*_usd_e10`` integer columns
  (USD x 10^10) on both databases, which ``pipeline.reports`` sums for exact totals.

Views are not in ``Base.metadata`` and Alembic's compare only reflects tables, so
autogenerate never sees them. The view SQL is frozen here: a later change is a new revision.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

E10 = "10000000000"

# Grouped views: (view name, grouping columns selected from v_generation_costs).
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


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(_generation_costs(dialect))
    for name, column in GROUPED_VIEWS:
        op.execute(_grouped(dialect, name, column))
    op.execute(_by_run(dialect))


def downgrade() -> None:
    # Dependent views first: everything else reads v_generation_costs.
    for name in reversed(ALL_VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
