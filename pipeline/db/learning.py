"""What runs learn for the next one: cache-key rates per account and model, and each run's
plan against its bill per (model, layout), which corrects the next forecast."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, fields

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.db.models import Generation, LearntKeyRate, RunForecast, utcnow

# A forecast learns from this many of the latest runs per (model, layout).
LEARN_FROM_RUNS = 5


@dataclass
class BillFigures:
    """Planned and billed tokens of some requests of one (model, layout)."""

    requests: int = 0
    planned_input_tokens: int = 0
    planned_cached_tokens: int = 0
    planned_write_tokens: int = 0
    billed_input_tokens: int = 0
    billed_cached_tokens: int = 0
    billed_write_tokens: int = 0

    def add(self, other: BillFigures) -> None:
        """Add ``other``'s figures to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def load_key_rates(session: Session, account: str) -> dict[str, float]:
    """The learnt per-key rate (requests/min) of each model on ``account``."""
    rows = session.execute(
        select(LearntKeyRate.model, LearntKeyRate.rpm).where(LearntKeyRate.account == account)
    )
    return {model: float(rpm) for model, rpm in rows}


def save_key_rates(
    session: Session, account: str, rates: Mapping[str, tuple[float, int, int]]
) -> None:
    """Keep ``{model: (rpm, requests, spills)}`` learnt on ``account`` for the next run."""
    for model, (rpm, requests, spills) in rates.items():
        row = session.get(LearntKeyRate, (account, model))
        if row is None:
            session.add(
                LearntKeyRate(
                    account=account,
                    model=model,
                    rpm=rpm,
                    requests=requests,
                    spills=spills,
                    updated_at=utcnow(),
                )
            )
        else:
            row.rpm, row.requests, row.spills, row.updated_at = rpm, requests, spills, utcnow()
    session.commit()


def recent_key_sends(session: Session, *, within_s: float = 60.0) -> dict[str, list[float]]:
    """How many seconds ago each prompt-cache key was used, over the last ``within_s``: what
    earlier runs still put on a key in the minute a new run starts in."""
    now = utcnow()
    since = now - dt.timedelta(seconds=within_s)
    rows = session.execute(
        select(Generation.prompt_cache_key, Generation.created_at).where(
            Generation.created_at >= since, Generation.prompt_cache_key.is_not(None)
        )
    )
    recent: dict[str, list[float]] = {}
    for key, at in rows:
        if key is not None:
            recent.setdefault(key, []).append(max(0.0, (now - at).total_seconds()))
    return recent


def record_bill_figures(
    session: Session, run_id: int, figures: Mapping[tuple[str, str], BillFigures]
) -> None:
    """Store a run's planned and billed tokens per (model, layout)."""
    for (model, layout), fig in figures.items():
        if fig.requests:
            values = {f.name: getattr(fig, f.name) for f in fields(fig)}
            session.add(RunForecast(run_id=run_id, model=model, layout=layout, **values))
    session.commit()


def bill_history(
    session: Session, *, runs: int = LEARN_FROM_RUNS
) -> dict[tuple[str, str], BillFigures]:
    """Planned and billed tokens per (model, layout) over its latest ``runs`` runs."""
    ranked = select(
        RunForecast,
        func.row_number()
        .over(partition_by=(RunForecast.model, RunForecast.layout), order_by=RunForecast.id.desc())
        .label("rank"),
    ).subquery()
    names = [f.name for f in fields(BillFigures)]
    rows = session.execute(
        select(ranked.c.model, ranked.c.layout, *(func.sum(ranked.c[n]) for n in names))
        .where(ranked.c.rank <= runs)
        .group_by(ranked.c.model, ranked.c.layout)
    ).all()
    found: dict[tuple[str, str], BillFigures] = {}
    for model, layout, *sums in rows:
        found[model, layout] = BillFigures(*(int(v or 0) for v in sums))
    return found
