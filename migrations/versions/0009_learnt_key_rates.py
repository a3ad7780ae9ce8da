"""learnt cache-key rates and each run's plan against its bill

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-07 19:40:00.000000

``cache_key_rates`` keeps, per account and model, the requests a minute one prompt-cache key
was learnt to carry without spilling, so the next run starts from it. ``run_forecasts`` keeps
a run's planned and billed tokens per (model, layout), from which the next forecast learns how
the server counts and caches (``pipeline.db.learning``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cache_key_rates",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("rpm", sa.Float(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("spills", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", "model", name=op.f("pk_cache_key_rates")),
    )
    op.create_table(
        "run_forecasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("layout", sa.String(length=32), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("planned_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("planned_cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("planned_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("billed_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("billed_cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("billed_write_tokens", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_run_forecasts_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_forecasts")),
    )
    op.create_index("ix_run_forecasts_model_layout", "run_forecasts", ["model", "layout"])


def downgrade() -> None:
    op.drop_index("ix_run_forecasts_model_layout", table_name="run_forecasts")
    op.drop_table("run_forecasts")
    op.drop_table("cache_key_rates")
