"""Cost reports: what generations cost, grouped by day, model, task, run, section, batch, tier
or profile version (with the outputs' mean length: comparing prompt versions).

The queries read the ``v_generation_costs`` view (migration 0002, remade by 0004), so the CLI
and any SQL client group the same rows the same way. Money comes back exact: the view's
``*_usd_e10`` columns are integer counts of 1e-10 USD on both databases, summed in SQL and
turned into ``Decimal`` here (never through the views' float columns on SQLite). Days are UTC
days. Nothing here prints; the CLI and flows render the typed rows.

``cache_write_tokens`` are input tokens written to the prompt cache (GPT-5.6+), billed at
their own rate; savings stay list minus cost, so writes that were never read show as negative
savings.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    String,
    case,
    column,
    func,
    select,
    table,
)
from sqlalchemy.orm import Session

from pipeline.db import SCALE, Run, run_totals
from pipeline.errors import InputError
from pipeline.prompts import version_label

Dimension = Literal["day", "model", "task", "run", "section", "batch", "tier", "version"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
Key = dt.date | int | str | None

# The column of v_generation_costs (and of the grouped views) each dimension groups by.
KEY_COLUMNS: dict[Dimension, str] = {
    "day": "day",
    "model": "model",
    "task": "task",
    "run": "run_id",
    "section": "section",
    "batch": "batch_label",
    "tier": "price_tier",  # standard | flex | batch: what each mode saved against list price
    "version": "version",  # task@3f2a9c1: from generations.profile_version (v_cost_by_version)
}

# Each report view, by dimension: what a SQL user reads (see docs/reports.md). "tier" has no
# view of its own: group v_generation_costs by price_tier (docs/modes.md).
VIEWS: dict[Dimension, str] = {
    "day": "v_cost_by_day",
    "model": "v_cost_by_model",
    "task": "v_cost_by_task",
    "run": "v_cost_by_run",
    "section": "v_cost_by_section",
    "batch": "v_cost_by_batch",
}

_COSTS = table(
    "v_generation_costs",
    column("generation_id", Integer),
    column("run_id", Integer),
    column("day", Date),
    column("created_at", DateTime),
    column("task", String),
    column("model", String),
    column("section", String),
    column("batch_label", String),
    column("price_tier", String),
    column("status", String),
    column("from_cache", Boolean),
    column("input_tokens", Integer),
    column("cached_tokens", Integer),
    column("cache_write_tokens", Integer),
    column("output_tokens", Integer),
    column("reasoning_tokens", Integer),
    column("cost_usd_e10", BigInteger),
    column("list_cost_usd_e10", BigInteger),
)
_GENERATIONS = table(
    "generations",
    column("id", Integer),
    column("task", String),
    column("profile_version", String),
    column("status", String),
    column("output_text", String),
)
_RELATIVE_DAYS = re.compile(r"^(\d{1,4})d$")


def usd_from_e10(units: int | Decimal | None) -> Decimal:
    """An integer count of 1e-10 USD (as SQL returns it: int or integral Decimal) in USD."""
    return Decimal(int(units or 0)).scaleb(-SCALE)


def usd_places(values: Iterable[Decimal], minimum: int = 2) -> int:
    """The decimal places that show every value exactly (at least ``minimum``)."""
    places = [-int(v.normalize().as_tuple().exponent) for v in values if v]
    return max([minimum, *places])


def usd_text(value: Decimal, places: int | None = None) -> str:
    """Exact USD text with ``places`` decimals (default: as many as needed, at least two).

    ``places`` aligns a column; a value that needs more places keeps them (nothing is rounded).
    """
    return f"{value:.{max(places or 0, usd_places([value]))}f}"


def shown_places(values: Iterable[Decimal]) -> int:
    """Decimal places to show money to people (a column aligned on them): as many as the
    values need, at most four, or six when one is under a cent (``format_usd``'s precision),
    at least two."""
    nonzero = [abs(v) for v in values if v]
    if not nonzero:
        return 2
    cap = 6 if min(nonzero) < Decimal("0.01") else 4
    return max(2, min(usd_places(nonzero), cap))


def usd_shown(value: Decimal, places: int | None = None) -> str:
    """USD for tables and summaries, rounded to ``places`` (default ``shown_places``); the
    exact figure is in the CSV and JSON exports (``usd_text``)."""
    p = shown_places([value]) if places is None else places
    return f"{value.quantize(Decimal(1).scaleb(-p), rounding=ROUND_HALF_EVEN):.{p}f}"


@dataclass(frozen=True)
class CostFigures:
    """Counts, tokens and money of a set of generations."""

    requests: int = 0
    completed: int = 0
    incomplete: int = 0
    failed: int = 0
    from_cache: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    list_cost_usd: Decimal = Decimal(0)

    @property
    def savings_usd(self) -> Decimal:
        """What the same tokens would have cost uncached at the standard price, minus the cost.

        Negative when cache writes (GPT-5.6+) cost more than their reads saved.
        """
        return self.list_cost_usd - self.cost_usd

    @property
    def cached_ratio(self) -> float | None:
        """Cached share of input tokens (None when there were no input tokens)."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else None

    @property
    def savings_ratio(self) -> float | None:
        """Savings as a share of the list cost (None when the list cost is zero)."""
        return float(self.savings_usd / self.list_cost_usd) if self.list_cost_usd else None

    def __add__(self, other: CostFigures) -> CostFigures:
        return CostFigures(
            requests=self.requests + other.requests,
            completed=self.completed + other.completed,
            incomplete=self.incomplete + other.incomplete,
            failed=self.failed + other.failed,
            from_cache=self.from_cache + other.from_cache,
            input_tokens=self.input_tokens + other.input_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            list_cost_usd=self.list_cost_usd + other.list_cost_usd,
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON/CSV (money stays ``Decimal``)."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "incomplete": self.incomplete,
            "failed": self.failed,
            "from_cache": self.from_cache,
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_ratio": self.cached_ratio,
            "cost_usd": self.cost_usd,
            "list_cost_usd": self.list_cost_usd,
            "savings_usd": self.savings_usd,
        }


@dataclass(frozen=True)
class OutputLength:
    """How long a group's completed outputs are, on average (``--by version``)."""

    completed: int
    mean_output_tokens: float | None
    mean_output_chars: float | None


@dataclass(frozen=True)
class CostRow:
    """One group of a report: its key (a date, model, task, run id, section, batch label or
    version label; None for generations without one), its figures, and (by version) how long
    its outputs are."""

    key: Key
    figures: CostFigures
    lengths: OutputLength | None = None


@dataclass(frozen=True)
class DayTaskCost:
    """One (UTC day, task) cell: the input of the daily cost chart."""

    day: dt.date
    task: str
    figures: CostFigures


@dataclass(frozen=True)
class RunForecast:
    """A run's forecast (made before sending) next to what its generations actually cost."""

    run_id: int
    kind: str
    mode: str
    state: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    forecast_cost_usd: Decimal | None
    forecast_cached_ratio: float | None
    budget_usd: Decimal | None
    actual: CostFigures

    @property
    def cost_error_usd(self) -> Decimal | None:
        """Actual minus forecast cost (positive: the run cost more than forecast)."""
        if self.forecast_cost_usd is None:
            return None
        return self.actual.cost_usd - self.forecast_cost_usd


@dataclass(frozen=True)
class ReportFilter:
    """Which generations a report covers: UTC days ``since``..``until`` (inclusive), one run,
    one batch label, some tasks."""

    since: dt.date | None = None
    until: dt.date | None = None
    run_id: int | None = None
    batch_label: str | None = None
    tasks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise InputError(f"--since {self.since} is after --until {self.until}")

    def as_dict(self) -> dict[str, Any]:
        """The filter as plain values."""
        return {
            "since": self.since,
            "until": self.until,
            "run_id": self.run_id,
            "batch_label": self.batch_label,
            "tasks": list(self.tasks),
        }


@dataclass(frozen=True)
class CostReport:
    """A report: its rows (ordered by key), their exact total and the runs' forecasts."""

    by: Dimension
    filter: ReportFilter
    rows: list[CostRow]
    total: CostFigures
    runs: list[RunForecast] = field(default_factory=list)

    @property
    def key_column(self) -> str:
        """The name of the key column (as in the SQL views)."""
        return KEY_COLUMNS[self.by]


def parse_day(text: str, today: dt.date) -> dt.date:
    """``2025-11-30``, ``today``, ``yesterday`` or ``7d`` (the day 7 days before today)."""
    value = text.strip().lower()
    if value == "today":
        return today
    if value == "yesterday":
        return today - dt.timedelta(days=1)
    relative = _RELATIVE_DAYS.match(value)
    if relative:
        return today - dt.timedelta(days=int(relative.group(1)))
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"not a day: {text!r} (use YYYY-MM-DD, today, yesterday or Nd such as 7d)"
        ) from None


def latest_run_id(session: Session) -> int:
    """The id of the run started last; ``InputError`` when there is none."""
    run_id = session.scalar(select(Run.id).order_by(Run.started_at.desc(), Run.id.desc()).limit(1))
    if run_id is None:
        raise InputError("there are no runs yet")
    return run_id


def _measures() -> list[ColumnElement[Any]]:
    v = _COSTS.c
    return [
        func.count().label("requests"),
        func.sum(case((v.status == "completed", 1), else_=0)).label("completed"),
        func.sum(case((v.status == "incomplete", 1), else_=0)).label("incomplete"),
        func.sum(case((v.status == "failed", 1), else_=0)).label("failed"),
        func.sum(case((v.from_cache, 1), else_=0)).label("from_cache"),
        func.sum(v.input_tokens).label("input_tokens"),
        func.sum(v.cached_tokens).label("cached_tokens"),
        func.sum(v.cache_write_tokens).label("cache_write_tokens"),
        func.sum(v.output_tokens).label("output_tokens"),
        func.sum(v.reasoning_tokens).label("reasoning_tokens"),
        func.sum(v.cost_usd_e10).label("cost_usd_e10"),
        func.sum(v.list_cost_usd_e10).label("list_cost_usd_e10"),
    ]


def _figures(values: Sequence[Any]) -> CostFigures:
    """The 12 measures of ``_measures`` (PostgreSQL sums bigints as numeric: int() them)."""
    n = [int(v or 0) for v in values[:10]]
    return CostFigures(
        requests=n[0],
        completed=n[1],
        incomplete=n[2],
        failed=n[3],
        from_cache=n[4],
        input_tokens=n[5],
        cached_tokens=n[6],
        cache_write_tokens=n[7],
        output_tokens=n[8],
        reasoning_tokens=n[9],
        cost_usd=usd_from_e10(values[10]),
        list_cost_usd=usd_from_e10(values[11]),
    )


def _where(query: Any, flt: ReportFilter) -> Any:
    v = _COSTS.c
    # Bounds on created_at (not on the computed day) so the index on it can be used.
    if flt.since is not None:
        query = query.where(v.created_at >= dt.datetime.combine(flt.since, dt.time()))
    if flt.until is not None:
        end = dt.datetime.combine(flt.until + dt.timedelta(days=1), dt.time())
        query = query.where(v.created_at < end)
    if flt.run_id is not None:
        query = query.where(v.run_id == flt.run_id)
    if flt.batch_label is not None:
        query = query.where(v.batch_label == flt.batch_label)
    if flt.tasks:
        query = query.where(v.task.in_(flt.tasks))
    return query


def _sort_key(key: Key) -> tuple[int, Any]:
    return (1, "") if key is None else (0, key)


def _version_rows(session: Session, flt: ReportFilter) -> list[CostRow]:
    """Cost, tokens and output length per (task, profile version); keys ``task@3f2a9c1``."""
    g = _GENERATIONS.c
    completed = g.status == "completed"
    query = _where(
        select(
            g.task,
            g.profile_version,
            *_measures(),
            func.sum(case((completed, _COSTS.c.output_tokens), else_=0)),
            func.sum(case((completed, func.length(g.output_text)), else_=0)),
        )
        .select_from(_COSTS.join(_GENERATIONS, g.id == _COSTS.c.generation_id))
        .group_by(g.task, g.profile_version),
        flt,
    )
    rows = []
    for task, version, *values in session.execute(query):
        figures = _figures(values[:12])
        out_tokens, out_chars = (int(v or 0) for v in values[12:])
        n = figures.completed
        lengths = OutputLength(n, out_tokens / n if n else None, out_chars / n if n else None)
        rows.append(CostRow(version_label(task, version), figures, lengths))
    return sorted(rows, key=lambda r: str(r.key))


def cost_rows(session: Session, by: Dimension, flt: ReportFilter | None = None) -> list[CostRow]:
    """Cost and tokens grouped ``by`` one dimension, ordered by key (None last)."""
    if by == "version":
        return _version_rows(session, flt or ReportFilter())
    key = _COSTS.c[KEY_COLUMNS[by]]
    query = _where(select(key, *_measures()).group_by(key), flt or ReportFilter())
    rows = [CostRow(row[0], _figures(row[1:])) for row in session.execute(query)]
    return sorted(rows, key=lambda r: _sort_key(r.key))


def day_task_costs(session: Session, flt: ReportFilter | None = None) -> list[DayTaskCost]:
    """Cost and tokens per (UTC day, task), ordered by day then task: the chart's data."""
    v = _COSTS.c
    query = _where(
        select(v.day, v.task, *_measures()).group_by(v.day, v.task), flt or ReportFilter()
    )
    rows = [DayTaskCost(row[0], row[1], _figures(row[2:])) for row in session.execute(query)]
    return sorted(rows, key=lambda r: (r.day, r.task))


def run_forecasts(session: Session, run_ids: Sequence[int]) -> list[RunForecast]:
    """Forecast against actual for the given runs (actuals: all of each run's generations)."""
    runs = session.scalars(select(Run).where(Run.id.in_(list(run_ids))).order_by(Run.id))
    forecasts = []
    for run in runs:
        totals = run_totals(session, run.id)
        forecasts.append(
            RunForecast(
                run_id=run.id,
                kind=run.kind,
                mode=run.mode,
                state=run.state,
                started_at=run.started_at,
                finished_at=run.finished_at,
                forecast_cost_usd=run.forecast_cost_usd,
                forecast_cached_ratio=run.forecast_cached_ratio,
                budget_usd=run.budget_usd,
                actual=CostFigures(
                    requests=totals.requests,
                    completed=totals.succeeded,
                    incomplete=totals.incomplete,
                    failed=totals.failed,
                    from_cache=totals.from_cache,
                    input_tokens=totals.input_tokens,
                    cached_tokens=totals.cached_tokens,
                    cache_write_tokens=totals.cache_write_tokens,
                    output_tokens=totals.output_tokens,
                    reasoning_tokens=totals.reasoning_tokens,
                    cost_usd=totals.cost_usd,
                    list_cost_usd=totals.list_cost_usd,
                ),
            )
        )
    return forecasts


def cost_report(session: Session, by: Dimension, flt: ReportFilter | None = None) -> CostReport:
    """The report ``by`` a dimension, with its exact total; forecasts when it is about runs.

    Forecasts are included when grouping by run or when ``flt`` names a run.
    """
    flt = flt or ReportFilter()
    if flt.run_id is not None and session.get(Run, flt.run_id) is None:
        raise InputError(f"no run with id {flt.run_id}")
    rows = cost_rows(session, by, flt)
    total = sum((row.figures for row in rows), CostFigures())
    run_ids: list[int] = []
    if by == "run":
        run_ids = [row.key for row in rows if isinstance(row.key, int)]
    elif flt.run_id is not None:
        run_ids = [flt.run_id]
    return CostReport(by, flt, rows, total, run_forecasts(session, run_ids) if run_ids else [])
