"""provenance, checks and reviews: profile_versions, reviews, generation columns, review views

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 09:00:00.000000

Tables and columns:

- ``profile_versions``: one row per version of a task's profile (a SHA-256 of everything that
  shapes its requests), with the texts and settings, so any output traces to its exact prompt.
- ``reviews``: editors' decisions (approved, edited, rejected), append-only: triggers refuse
  UPDATE and DELETE on both databases, so history is never rewritten.
- ``generations``: ``profile_version``, ``content_hash`` (the article content it was made
  from), ``checks`` (JSON results), ``flagged``, ``needs_review`` and ``graded_generation_id``
  (a grader's generation names what it graded). Rows stored before get the job's content hash
  (its article's content when it was last enqueued), so only outputs of articles corrected
  since read as superseded; their version stays NULL (unknown, never "stale").
- ``batch_items.profile_version``: the version a batch request was rendered with.

Columns are added in place (no batch mode): SQLite would rebuild ``generations`` by renaming,
which the views that read it forbid.

Views (SQL frozen here, per dialect; money as in 0002/0004: NUMERIC on PostgreSQL, an INTEGER
of 1e-10 USD on SQLite, with exact ``*_e10`` columns on both):

- ``v_outputs``: every generation but prewarms, with its version, check results, review state,
  latest decision, final text (the editor's where edited) and IPTC digital source type. An
  output is flagged when one of its checks failed or the newest grade of it did; a grader's
  own row keeps its criteria in ``checks`` but its flag is the graded output's.
- ``v_current_outputs``: the current output of each job: its newest completed generation (else
  its newest attempt) among those neither superseded nor replaced by a check retry.
- ``v_latest_generations``: as in 0005 (same columns) but over current outputs only, so a CMS
  never reads a superseded text.
- ``v_check_results``: one row per (generation, check). ``v_flags_by_check``: checks run and
  failed per task, version and check. ``v_review_by_version``: review states, approval and
  edit rates and cost per approved text per task and version. ``v_cost_by_version``: the cost
  measures of 0004 per task and version, with mean output tokens and characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

E10 = "10000000000"
# IPTC NewsCodes, Digital Source Type (cv.iptc.org/newscodes/digitalsourcetype, 2024-10-23).
AI_TEXT = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AI_TEXT_EDITED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
VIEWS = (
    "v_outputs",
    "v_current_outputs",
    "v_latest_generations",
    "v_check_results",
    "v_flags_by_check",
    "v_review_by_version",
    "v_cost_by_version",
)


def _revision(rev: str) -> ModuleType:
    script = op.get_context().script
    assert script is not None, "run through Alembic's environment (migrations/env.py)"
    module: ModuleType = script.get_revision(rev).module
    return module


def _label(column: str, task: str) -> str:
    return f"{task} || '@' || COALESCE(SUBSTR({column}, 1, 7), '?')"


def _outputs(dialect: str) -> str:
    if dialect == "sqlite":
        money = """
    g.cost_usd / 1e10 AS cost_usd,
    g.cost_usd AS cost_usd_e10,"""
    else:
        money = f"""
    g.cost_usd AS cost_usd,
    CAST(g.cost_usd * {E10} AS BIGINT) AS cost_usd_e10,"""
    superseded = "(g.content_hash IS NOT NULL AND g.content_hash <> a.content_hash)"
    return f"""
CREATE VIEW v_outputs AS
SELECT
    g.id AS generation_id,
    g.job_id AS job_id,
    a.id AS article_id,
    a.source_id AS source_id,
    a.title AS title,
    a.url AS url,
    g.task AS task,
    g.profile_version AS profile_version,
    {_label("g.profile_version", "g.task")} AS version,
    COALESCE(g.model, g.request_model) AS model,
    g.request_model AS request_model,
    g.service_tier AS service_tier,
    g.price_tier AS price_tier,
    g.status AS status,
    g.error AS error,
    g.output_text AS output_text,
    g.output_json AS output_json,
    g.checks AS checks,
    g.flagged AS checks_failed,
    gr.flagged AS grade_failed,
    gr.id AS grade_generation_id,
    {superseded} AS superseded,
    CASE
        WHEN {superseded} THEN 'superseded'
        WHEN g.status = 'retried' THEN 'retried'
        WHEN g.status <> 'completed' THEN NULL
        WHEN r.decision IS NOT NULL THEN r.decision
        WHEN (g.flagged AND g.graded_generation_id IS NULL)
            OR COALESCE(gr.flagged, {"0" if dialect == "sqlite" else "false"}) THEN 'flagged'
        WHEN g.needs_review THEN 'pending'
        ELSE 'auto'
    END AS review_state,
    r.id AS review_id,
    r.decision AS decision,
    r.editor AS editor,
    r.note AS note,
    r.edited_text AS edited_text,
    r.created_at AS decided_at,
    CASE WHEN r.decision = 'edited' THEN r.edited_text ELSE g.output_text END AS final_text,
    CASE WHEN r.decision = 'edited' THEN '{AI_TEXT_EDITED}' ELSE '{AI_TEXT}' END
        AS digital_source_type,
    g.response_id AS response_id,
    g.input_tokens AS input_tokens,
    g.cached_tokens AS cached_tokens,
    g.cache_write_tokens AS cache_write_tokens,
    g.output_tokens AS output_tokens,
    g.reasoning_tokens AS reasoning_tokens,{money}
    g.from_cache AS from_cache,
    g.created_at AS created_at,
    g.run_id AS run_id,
    j.batch_label AS batch_label,
    j.state AS job_state
FROM generations g
JOIN jobs j ON j.id = g.job_id
JOIN articles a ON a.id = j.article_id
LEFT JOIN reviews r
    ON r.id = (SELECT MAX(r2.id) FROM reviews r2 WHERE r2.generation_id = g.id)
LEFT JOIN generations gr
    ON gr.id = (
        SELECT MAX(g2.id) FROM generations g2
        WHERE g2.graded_generation_id = g.id AND g2.status = 'completed'
    )
WHERE g.status <> 'prewarm'
"""


CURRENT_OUTPUTS = """
CREATE VIEW v_current_outputs AS
SELECT o.*
FROM (
    SELECT
        v.*,
        ROW_NUMBER() OVER (
            PARTITION BY v.job_id
            ORDER BY CASE WHEN v.status = 'completed' THEN 0 ELSE 1 END,
                v.created_at DESC, v.generation_id DESC
        ) AS rank_in_job
    FROM v_outputs v
    WHERE v.status <> 'retried' AND NOT v.superseded
) o
WHERE o.rank_in_job = 1
"""

LATEST_GENERATIONS = """
CREATE VIEW v_latest_generations AS
SELECT
    c.generation_id AS generation_id,
    c.job_id AS job_id,
    c.article_id AS article_id,
    c.source_id AS source_id,
    c.title AS title,
    c.url AS url,
    c.task AS task,
    c.model AS model,
    c.status AS status,
    c.job_state AS job_state,
    c.output_text AS output_text,
    c.output_json AS output_json,
    c.error AS error,
    c.input_tokens AS input_tokens,
    c.cached_tokens AS cached_tokens,
    c.cache_write_tokens AS cache_write_tokens,
    c.output_tokens AS output_tokens,
    c.reasoning_tokens AS reasoning_tokens,
    c.cost_usd AS cost_usd,
    c.cost_usd_e10 AS cost_usd_e10,
    c.from_cache AS from_cache,
    c.created_at AS created_at,
    c.run_id AS run_id,
    c.batch_label AS batch_label
FROM v_current_outputs c
"""


def _check_results(dialect: str) -> str:
    if dialect == "sqlite":
        each = "FROM v_outputs o, json_each(o.checks) c\nWHERE json_type(o.checks) = 'array'"
        check = "json_extract(c.value, '$.check')"
        passed = "json_extract(c.value, '$.passed')"
        reason = "json_extract(c.value, '$.reason')"
    else:
        each = (
            "FROM v_outputs o CROSS JOIN LATERAL json_array_elements("
            "CASE WHEN json_typeof(o.checks) = 'array' THEN o.checks ELSE '[]'::json END) c"
        )
        check = "c ->> 'check'"
        passed = "CAST(c ->> 'passed' AS BOOLEAN)"
        reason = "c ->> 'reason'"
    return f"""
CREATE VIEW v_check_results AS
SELECT
    o.generation_id AS generation_id,
    o.job_id AS job_id,
    o.source_id AS source_id,
    o.task AS task,
    o.profile_version AS profile_version,
    o.version AS version,
    o.status AS status,
    o.review_state AS review_state,
    {check} AS check_name,
    {passed} AS passed,
    {reason} AS reason,
    o.created_at AS created_at
{each}
"""


def _flags_by_check(dialect: str) -> str:
    ratio_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    failed = "SUM(CASE WHEN c.passed THEN 0 ELSE 1 END)"
    return f"""
CREATE VIEW v_flags_by_check AS
SELECT
    c.task AS task,
    c.profile_version AS profile_version,
    c.version AS version,
    c.check_name AS check_name,
    COUNT(*) AS checked,
    {failed} AS failed,
    SUM(CASE WHEN c.passed THEN 0 WHEN c.status = 'retried' THEN 1 ELSE 0 END) AS failed_then_retried,
    CAST({failed} AS {ratio_type}) / COUNT(*) AS failed_share
FROM v_check_results c
GROUP BY c.task, c.profile_version, c.version, c.check_name
"""


def _review_by_version(dialect: str) -> str:
    ratio_type = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    if dialect == "sqlite":
        money = """
    k.cost_usd_e10 / 1e10 AS cost_usd,
    k.cost_usd_e10 AS cost_usd_e10,
    k.cost_usd_e10 / 1e10 / NULLIF(s.approved + s.edited, 0) AS cost_per_approved_usd,"""
        cost = "SUM(g.cost_usd)"
    else:
        money = """
    k.cost_usd AS cost_usd,
    CAST(k.cost_usd * 10000000000 AS BIGINT) AS cost_usd_e10,
    k.cost_usd / NULLIF(s.approved + s.edited, 0) AS cost_per_approved_usd,"""
        cost = "SUM(g.cost_usd)"
    cost_column = "cost_usd_e10" if dialect == "sqlite" else "cost_usd"
    states = ",\n    ".join(
        f"SUM(CASE WHEN c.review_state = '{state}' THEN 1 ELSE 0 END) AS {state}"
        for state in ("pending", "flagged", "approved", "edited", "rejected", "auto")
    )
    return f"""
CREATE VIEW v_review_by_version AS
SELECT
    s.task AS task,
    s.profile_version AS profile_version,
    s.version AS version,
    s.outputs AS outputs,
    s.pending AS pending,
    s.flagged AS flagged,
    s.approved AS approved,
    s.edited AS edited,
    s.rejected AS rejected,
    s.auto AS auto,
    CAST(s.approved + s.edited AS {ratio_type})
        / NULLIF(s.approved + s.edited + s.rejected, 0) AS approval_rate,
    CAST(s.edited AS {ratio_type}) / NULLIF(s.approved + s.edited, 0) AS edit_rate,{money}
    k.generations AS generations
FROM (
    SELECT
        c.task AS task,
        c.profile_version AS profile_version,
        c.version AS version,
        COUNT(*) AS outputs,
        {states}
    FROM v_current_outputs c
    WHERE c.status = 'completed'
    GROUP BY c.task, c.profile_version, c.version
) s
LEFT JOIN (
    SELECT
        g.task AS task,
        COALESCE(g.profile_version, '') AS version_key,
        COUNT(*) AS generations,
        {cost} AS {cost_column}
    FROM generations g
    GROUP BY g.task, COALESCE(g.profile_version, '')
) k ON k.task = s.task AND k.version_key = COALESCE(s.profile_version, '')
"""


def _cost_by_version(dialect: str) -> str:
    aggregates = _revision("0004")._aggregates(dialect)
    number = "REAL" if dialect == "sqlite" else "DOUBLE PRECISION"
    completed = "g.status = 'completed'"
    return f"""
CREATE VIEW v_cost_by_version AS
SELECT
    g.task AS task,
    g.profile_version AS profile_version,
    {_label("g.profile_version", "g.task")} AS version,{aggregates},
    CAST(SUM(CASE WHEN {completed} THEN v.output_tokens ELSE 0 END) AS {number})
        / NULLIF(SUM(CASE WHEN {completed} THEN 1 ELSE 0 END), 0) AS mean_output_tokens,
    CAST(SUM(CASE WHEN {completed} THEN LENGTH(g.output_text) ELSE 0 END) AS {number})
        / NULLIF(SUM(CASE WHEN {completed} THEN 1 ELSE 0 END), 0) AS mean_output_chars
FROM v_generation_costs v
JOIN generations g ON g.id = v.generation_id
GROUP BY g.task, g.profile_version
"""


def _append_only(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [
            f"""
CREATE TRIGGER reviews_no_{what.lower()} BEFORE {what} ON reviews
BEGIN
    SELECT RAISE(ABORT, 'reviews are append-only: record a new decision instead');
END
"""
            for what in ("UPDATE", "DELETE")
        ]
    return [
        """
CREATE FUNCTION reviews_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reviews are append-only: record a new decision instead';
END
$$
""",
        """
CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews
FOR EACH ROW EXECUTE FUNCTION reviews_append_only()
""",
    ]


def upgrade() -> None:
    op.create_table(
        "profile_versions",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_profile_versions")),
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("editor", sa.String(length=128), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("edited_text", sa.Text(), nullable=True),
        sa.Column("regenerate", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_reviews_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_reviews_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index("ix_reviews_generation", "reviews", ["generation_id", "id"])
    columns = [
        sa.Column("profile_version", sa.String(length=64), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=True),
        sa.Column("flagged", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("graded_generation_id", sa.Integer(), nullable=True),
    ]
    for column in columns:
        op.add_column("generations", column)
    op.create_index("ix_generations_graded", "generations", ["graded_generation_id"])
    op.add_column("batch_items", sa.Column("profile_version", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE generations SET content_hash = "
        "(SELECT j.content_hash FROM jobs j WHERE j.id = generations.job_id)"
    )
    dialect = op.get_bind().dialect.name
    for statement in _append_only(dialect):
        op.execute(statement)
    op.execute("DROP VIEW IF EXISTS v_latest_generations")
    op.execute(_outputs(dialect))
    op.execute(CURRENT_OUTPUTS)
    op.execute(LATEST_GENERATIONS)
    op.execute(_check_results(dialect))
    op.execute(_flags_by_check(dialect))
    op.execute(_review_by_version(dialect))
    op.execute(_cost_by_version(dialect))


def downgrade() -> None:
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_generations_graded", table_name="generations")
    op.drop_column("batch_items", "profile_version")
    for name in (
        "graded_generation_id",
        "needs_review",
        "flagged",
        "checks",
        "content_hash",
        "profile_version",
    ):
        op.drop_column("generations", name)
    op.drop_index("ix_reviews_generation", table_name="reviews")
    op.drop_table("reviews")
    if dialect != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS reviews_append_only()")
    op.drop_table("profile_versions")
    # v_latest_generations as 0005 made it, once the columns are gone (its `x.*` would read
    # them on PostgreSQL).
    op.execute(_revision("0005")._latest_generations(dialect))
