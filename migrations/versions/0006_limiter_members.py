"""shared rate limit: limiter_members

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 12:00:00.000000

``limiter_members`` holds one row per (account, model, worker) that is sending requests right
now: its demand and its last heartbeat. Runners on one account divide its RPM and TPM by
demand through it (see ``pipeline.limitshare``). The rows are short-lived state, not history:
a downgrade simply drops the table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limiter_members",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=False),
        sa.Column("demand", sa.Float(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account", "model", "worker", name=op.f("pk_limiter_members")),
    )


def downgrade() -> None:
    op.drop_table("limiter_members")
