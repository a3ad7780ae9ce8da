"""reliability: poison jobs, failure reasons, fencing tokens, run heartbeats

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10 12:00:00.000000

- ``jobs.failure_reason`` (VARCHAR(32), NULL): why a job failed for good, as a machine reads it
  (``worker_lost``: its sends killed the worker N times; ``too_large``: the request can never
  fit the account's or the model's limits). NULL for older failures and reasons not yet named.
- ``jobs.worker_deaths`` (INTEGER NOT NULL, 0): workers that died while this job, and no
  other, was the one being sent or answered (the next run on the machine reads it from the
  dead run's journal). ``jobs.death_suspect`` (BOOLEAN NOT NULL, false): the job was one of
  several such jobs when a worker died; its next send is kept apart from every other send so
  its next death, if any, names it alone.
- ``jobs.lease_token`` (INTEGER NOT NULL, 0): the fencing token, incremented by every claim.
  A result changes the job only under the token of the claim that sent it, so a late answer
  of a run declared dead is stored as paid but completes nothing.
- ``runs.host_id`` (VARCHAR(64), NULL): the machine *and* pid namespace the run's process
  lives in (boot id and pid-namespace inode), so a pid is only ever checked where it means
  something; ``runs.heartbeat_at`` (DATETIME, NULL): the run's last beat in the database, the
  liveness every other runner can see.
- ``ix_generations_response_id``: a paid answer is known by its response id (journal recovery
  and response-cache hits look it up).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ADD/DROP COLUMN on both databases: SQLite's batch mode would rebuild ``jobs`` and ``runs``
# by renaming them, which the report views that read them block (as 0005 found). SQLite 3.35+
# drops a column in place when no view or index reads it.
_JOB_COLUMNS = (
    sa.Column("failure_reason", sa.String(length=32), nullable=True),
    sa.Column("worker_deaths", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("death_suspect", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("lease_token", sa.Integer(), nullable=False, server_default="0"),
)
_RUN_COLUMNS = (
    sa.Column("host_id", sa.String(length=64), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
)


def upgrade() -> None:
    for column in _JOB_COLUMNS:
        op.add_column("jobs", column)
    for column in _RUN_COLUMNS:
        op.add_column("runs", column)
    op.create_index("ix_generations_response_id", "generations", ["response_id"])


def downgrade() -> None:
    op.drop_index("ix_generations_response_id", table_name="generations")
    for column in reversed(_RUN_COLUMNS):
        op.drop_column("runs", column.name)
    for column in reversed(_JOB_COLUMNS):
        op.drop_column("jobs", column.name)
