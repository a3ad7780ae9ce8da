"""Run rows: opened when a run starts, closed with totals computed from its generations.

A run whose worker died is closed by someone else as ``abandoned`` (see
``leases.reclaim_dead``), with the same totals a clean close would have stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from pipeline.db.models import Generation, Run, utcnow

STOP_REASON_CHARS = 64  # the column's length


@dataclass(frozen=True)
class RunTotals:
    """What a run's generations add up to (read from the database, the source of truth)."""

    requests: int
    succeeded: int
    failed: int
    incomplete: int
    from_cache: int
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int  # written to the prompt cache (GPT-5.6+), a part of input_tokens
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    list_cost_usd: Decimal

    @property
    def cached_ratio(self) -> float:
        """Cached share of input tokens."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0


def open_run(
    session: Session,
    *,
    kind: str,
    trigger: str,
    mode: str = "realtime",
    worker: str | None = None,
    flow_run_id: str | None = None,
    batch_label: str | None = None,
    parameters: dict[str, Any] | None = None,
    budget_usd: Decimal | None = None,
    host_id: str | None = None,
) -> int:
    """Insert a run in state ``running`` and return its id.

    ``host_id`` (``procs.host_id()``) says where its worker's pid can be checked; the run's
    first heartbeat is now (``beat``)."""
    now = utcnow()
    run = Run(
        kind=kind,
        trigger=trigger,
        mode=mode,
        worker=worker,
        flow_run_id=flow_run_id,
        batch_label=batch_label,
        parameters=parameters,
        budget_usd=budget_usd,
        state="running",
        started_at=now,
        host_id=host_id,
        heartbeat_at=now,
    )
    session.add(run)
    session.commit()
    return run.id


def run_totals(session: Session, run_id: int) -> RunTotals:
    """Sum the run's generations."""
    g = Generation
    row = session.execute(
        select(
            func.count(),
            func.sum(case((g.status == "completed", 1), else_=0)),
            func.sum(case((g.status == "failed", 1), else_=0)),
            func.sum(case((g.status == "incomplete", 1), else_=0)),
            func.sum(case((g.from_cache, 1), else_=0)),
            func.sum(g.input_tokens),
            func.sum(g.cached_tokens),
            func.sum(g.cache_write_tokens),
            func.sum(g.output_tokens),
            func.sum(g.reasoning_tokens),
            func.sum(g.cost_usd),
            func.sum(g.list_cost_usd),
        ).where(g.run_id == run_id)
    ).one()
    n = [int(v or 0) for v in row[:10]]
    return RunTotals(
        requests=n[0],
        succeeded=n[1],
        failed=n[2],
        incomplete=n[3],
        from_cache=n[4],
        input_tokens=n[5],
        cached_tokens=n[6],
        cache_write_tokens=n[7],
        output_tokens=n[8],
        reasoning_tokens=n[9],
        cost_usd=row[10] or Decimal(0),
        list_cost_usd=row[11] or Decimal(0),
    )


def _closing_values(
    session: Session, run_id: int, state: str, stop_reason: str | None, finished_at: dt.datetime
) -> tuple[RunTotals, dict[str, Any]]:
    totals = run_totals(session, run_id)
    values: dict[str, Any] = {
        "state": state,
        "stop_reason": stop_reason[:STOP_REASON_CHARS] if stop_reason else stop_reason,
        "finished_at": finished_at,
        "requests": totals.requests,
        "succeeded": totals.succeeded,
        "failed": totals.failed + totals.incomplete,
        "input_tokens": totals.input_tokens,
        "cached_tokens": totals.cached_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "output_tokens": totals.output_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "cost_usd": totals.cost_usd,
    }
    return totals, values


def close_run(
    session: Session,
    run_id: int,
    *,
    state: str,
    stop_reason: str | None = None,
    forecast_cost_usd: Decimal | None = None,
    forecast_cached_ratio: float | None = None,
    finished_at: dt.datetime | None = None,
) -> RunTotals:
    """Store the run's totals and final state; returns the totals."""
    totals, values = _closing_values(session, run_id, state, stop_reason, finished_at or utcnow())
    if forecast_cost_usd is not None:
        values["forecast_cost_usd"] = forecast_cost_usd
    if forecast_cached_ratio is not None:
        values["forecast_cached_ratio"] = forecast_cached_ratio
    session.execute(update(Run).where(Run.id == run_id).values(**values))
    session.commit()
    return totals


def beat(session: Session, run_id: int, now: dt.datetime | None = None) -> bool:
    """The run is alive: store its heartbeat (False once someone closed it as dead)."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.state == "running")
        .values(heartbeat_at=now or utcnow())
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LiveRun:
    """A run still ``running``: its worker's name, where its pid means something, its beat."""

    id: int
    worker: str | None
    host_id: str | None
    heartbeat_at: dt.datetime | None


def running_runs(session: Session) -> list[LiveRun]:
    """Every run still in state ``running``, oldest first."""
    rows = session.execute(
        select(Run.id, Run.worker, Run.host_id, Run.heartbeat_at)
        .where(Run.state == "running")
        .order_by(Run.id)
    )
    return [LiveRun(*row) for row in rows]


def abandon_run(
    session: Session, run_id: int, *, stop_reason: str, finished_at: dt.datetime | None = None
) -> bool:
    """Close a run whose worker died as ``abandoned``, with its totals; commits.

    Only a run still ``running`` is changed (False otherwise): a run that closed itself in
    the meantime keeps its own state and reason.
    """
    _, values = _closing_values(session, run_id, "abandoned", stop_reason, finished_at or utcnow())
    result = session.execute(
        update(Run).where(Run.id == run_id, Run.state == "running").values(**values)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]
