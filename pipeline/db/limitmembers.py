"""Rows of ``limiter_members``: who shares an account's rate limit, with what demand.

The statements behind ``pipeline.limits.share.LimitShare``: an upsert of a worker's rows (one
multi-row ``INSERT ... ON CONFLICT DO UPDATE``), a read of the account's rows for some models,
and deletes. A worker writes only its own rows and a prune skips rows another transaction
holds, so workers beating at once never deadlock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.orm import Session

from pipeline.db.articles import dialect_insert
from pipeline.db.models import LimiterMember

_MEMBERS = cast(Table, LimiterMember.__table__)


@dataclass(frozen=True)
class Member:
    """One stored row: ``worker`` wants ``demand`` of ``model`` on the account, as of
    ``heartbeat_at`` (naive UTC)."""

    model: str
    worker: str
    demand: float
    heartbeat_at: dt.datetime


def upsert_members(
    session: Session,
    *,
    account: str,
    worker: str,
    demand: Mapping[str, float],
    now: dt.datetime,
) -> None:
    """Store ``worker``'s demand per model with heartbeat ``now`` (one statement)."""
    if not demand:
        return
    rows = [
        {"account": account, "model": model, "worker": worker, "demand": d, "heartbeat_at": now}
        for model, d in demand.items()
    ]
    stmt = dialect_insert(session, _MEMBERS).values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["account", "model", "worker"],
            set_={"demand": stmt.excluded.demand, "heartbeat_at": stmt.excluded.heartbeat_at},
        )
    )


def read_members(session: Session, *, account: str, models: Collection[str]) -> list[Member]:
    """Every stored row of ``account`` for ``models``, stale ones included."""
    if not models:
        return []
    m = _MEMBERS.c
    rows = session.execute(
        select(m.model, m.worker, m.demand, m.heartbeat_at).where(
            m.account == account, m.model.in_(sorted(models))
        )
    )
    return [Member(r.model, r.worker, r.demand, r.heartbeat_at) for r in rows]


def delete_members(
    session: Session, *, account: str, worker: str, models: Collection[str] | None = None
) -> int:
    """Delete ``worker``'s rows of ``account`` (only those of ``models`` when given)."""
    m = _MEMBERS.c
    stmt = delete(_MEMBERS).where(m.account == account, m.worker == worker)
    if models is not None:
        if not models:
            return 0
        stmt = stmt.where(m.model.in_(sorted(models)))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def prune_members(session: Session, *, account: str, before: dt.datetime) -> int:
    """Delete ``account``'s rows whose heartbeat is older than ``before``.

    Rows another transaction holds are skipped, not waited for (PostgreSQL ``SKIP LOCKED``;
    SQLite has one writer at a time): such a row is being refreshed by its worker or pruned
    by another, and a pruner that waited could deadlock with a worker deleting its own rows.
    """
    m = _MEMBERS.c
    stale = (
        select(m.account, m.model, m.worker)
        .where(m.account == account, m.heartbeat_at < before)
        .with_for_update(skip_locked=True)
    )
    stmt = delete(_MEMBERS).where(tuple_(m.account, m.model, m.worker).in_(stale))
    return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
