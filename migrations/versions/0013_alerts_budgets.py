"""alerts and recurring budgets

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:00:00.000000

- ``budget_grants`` (budget, period_start, run_id; granted_usd): what a running run may spend
  from a recurring budget (``config/budgets.toml``) in one period; deleted when the run ends.
- ``budget_locks`` (budget, period_start; grants): the row a grant transaction updates first,
  so runners on PostgreSQL (row lock) and SQLite (write lock) take turns.
- ``alerts_sent`` (key unique): every alert sent or tried, one per event, so an event
  evaluated twice is sent once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pipeline.db.types import ExactDecimal

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "budget_grants",
        sa.Column("budget", sa.String(length=128), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("granted_usd", ExactDecimal(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_budget_grants_run_id_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("budget", "period_start", "run_id", name=op.f("pk_budget_grants")),
    )
    op.create_table(
        "budget_locks",
        sa.Column("budget", sa.String(length=128), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("grants", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("budget", "period_start", name=op.f("pk_budget_locks")),
    )
    op.create_table(
        "alerts_sent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_alerts_sent_run_id_runs"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts_sent")),
        sa.UniqueConstraint("key", name=op.f("uq_alerts_sent_key")),
    )


def downgrade() -> None:
    op.drop_table("alerts_sent")
    op.drop_table("budget_locks")
    op.drop_table("budget_grants")
