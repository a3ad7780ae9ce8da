"""Recurring budgets in the database: what a period has spent, and grants to running runs.

The spend of a budget's period is the recorded cost of the generations it covers (by their
job's batch label or task, or their article's section) created in the period. A running run
spends against a *grant* (``budget_grants``): ``grant`` raises it in one transaction that
first updates the budget's row in ``budget_locks`` (a row lock on PostgreSQL, the write lock on
SQLite), so concurrent runners take turns and the limit holds for all of them:

    spend of runs without a live grant + grants of running runs <= limit

A run's own spend stays inside its grant (it reserves each request's worst case against it),
so it is counted once, through the grant, until the run ends and ``release_grants`` deletes
its rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from sqlalchemy import ColumnElement, Table, and_, delete, func, select, update
from sqlalchemy.orm import Session

from pipeline.db.articles import dialect_insert
from pipeline.db.models import Article, BudgetGrant, BudgetLock, Generation, Job, Run
from pipeline.money import BudgetFile, BudgetSpec, period_bounds

_LOCKS = cast(Table, BudgetLock.__table__)


@dataclass(frozen=True)
class Grant:
    """A run's grant after ``grant``: the grant, what the others use (recorded spend plus
    running runs' grants) and the part of other runs' grants they have not spent yet."""

    granted_usd: Decimal
    others_usd: Decimal
    others_unspent_usd: Decimal


@dataclass(frozen=True)
class BudgetUse:
    """A budget in one period: recorded spend, what running runs hold, the limit."""

    spec: BudgetSpec
    period_start: dt.datetime
    period_end: dt.datetime
    spent_usd: Decimal
    held_usd: Decimal

    @property
    def used_usd(self) -> Decimal:
        """Spent plus held by running runs beyond what they spent."""
        return self.spent_usd + self.held_usd

    @property
    def share(self) -> float:
        """Spent as a share of the limit."""
        return float(self.spent_usd / self.spec.limit_usd)


def _covered(spec: BudgetSpec) -> ColumnElement[bool] | None:
    if spec.scope == "batch_label":
        return Job.batch_label == spec.match
    if spec.scope == "task":
        return Generation.task == spec.match
    if spec.scope == "section":
        return Article.section == spec.match
    return None


def period_spend(
    session: Session,
    spec: BudgetSpec,
    start: dt.datetime,
    end: dt.datetime,
    *,
    excluding_runs: list[int] | None = None,
    only_runs: list[int] | None = None,
) -> Decimal:
    """Recorded cost of the generations ``spec`` covers created in ``[start, end)`` (of
    ``only_runs``, or of all runs but ``excluding_runs``)."""
    query = (
        select(func.coalesce(func.sum(Generation.cost_usd), 0))
        .select_from(Generation)
        .join(Job, Job.id == Generation.job_id)
        .where(Generation.created_at >= start, Generation.created_at < end)
    )
    if spec.scope == "section":
        query = query.join(Article, Article.id == Job.article_id)
    covered = _covered(spec)
    if covered is not None:
        query = query.where(covered)
    if excluding_runs:
        query = query.where(
            (Generation.run_id.is_(None)) | (Generation.run_id.not_in(excluding_runs))
        )
    if only_runs is not None:
        query = query.where(Generation.run_id.in_(only_runs))
    return Decimal(session.scalar(query) or 0)


def _live_grants(session: Session, budget: str, start: dt.datetime) -> dict[int, Decimal]:
    rows = session.execute(
        select(BudgetGrant.run_id, BudgetGrant.granted_usd)
        .join(Run, Run.id == BudgetGrant.run_id)
        .where(
            BudgetGrant.budget == budget,
            BudgetGrant.period_start == start,
            Run.state == "running",
        )
    )
    return {int(r.run_id): Decimal(r.granted_usd) for r in rows}


def budget_use(
    session: Session, spec: BudgetSpec, start: dt.datetime, end: dt.datetime
) -> BudgetUse:
    """What ``spec`` has spent in the period and what running runs hold beyond it."""
    grants = _live_grants(session, spec.key, start)
    spent = period_spend(session, spec, start, end)
    others = period_spend(session, spec, start, end, excluding_runs=list(grants))
    # A running run's grant covers its own spend: only the part not yet spent is held.
    held = max(sum(grants.values(), Decimal(0)) - (spent - others), Decimal(0))
    return BudgetUse(spec, start, end, spent, held)


def grant(
    session: Session,
    spec: BudgetSpec,
    start: dt.datetime,
    end: dt.datetime,
    *,
    run_id: int,
    wanted_usd: Decimal,
    floor_usd: Decimal = Decimal(0),
) -> Grant:
    """Set ``run_id``'s grant of ``spec`` in the period to ``wanted_usd`` (its whole grant,
    not an increment) as far as the limit and an equal share of it among the running runs
    allow, never below ``floor_usd`` (what the run has spent and reserved: it may be in
    flight), and commit. Headroom a run took earlier and did not use goes back to the others
    this way.
    """
    values = {"budget": spec.key, "period_start": start, "grants": 0}
    session.execute(dialect_insert(session, _LOCKS).values(values).on_conflict_do_nothing())
    session.execute(
        update(BudgetLock)
        .where(and_(BudgetLock.budget == spec.key, BudgetLock.period_start == start))
        .values(grants=BudgetLock.grants + 1)
    )
    grants = _live_grants(session, spec.key, start)
    mine = grants.pop(run_id, Decimal(0))
    others = sum(grants.values(), Decimal(0))
    recorded = period_spend(session, spec, start, end, excluding_runs=[run_id, *grants])
    others_spent = (
        period_spend(session, spec, start, end, only_runs=list(grants)) if grants else Decimal(0)
    )
    room = spec.limit_usd - recorded - others
    # Equal shares among the running runs that asked (a run refused everything keeps a row at
    # 0): a runner spending fast cannot keep taking the room a waiting one would get.
    fair = (spec.limit_usd - recorded) / (len(grants) + 1)
    new = max(floor_usd, min(wanted_usd, room, fair))
    row = session.get(BudgetGrant, (spec.key, start, run_id))
    if row is None:
        session.add(
            BudgetGrant(budget=spec.key, period_start=start, run_id=run_id, granted_usd=new)
        )
    elif new != mine:
        row.granted_usd = new
        row.updated_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    session.commit()
    return Grant(new, recorded + others, max(others - others_spent, Decimal(0)))


def release_grants(session: Session, run_id: int) -> int:
    """Delete ``run_id``'s grants (the run ended: its spend is recorded) and commit."""
    deleted = session.execute(delete(BudgetGrant).where(BudgetGrant.run_id == run_id)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(deleted)


def budget_uses(session: Session, budgets: BudgetFile, now: dt.datetime) -> list[BudgetUse]:
    """Every configured budget in the period containing ``now``."""
    found = []
    for spec in budgets.budgets:
        start, end = period_bounds(spec.period, now, budgets.timezone)
        found.append(budget_use(session, spec, start, end))
    return found
