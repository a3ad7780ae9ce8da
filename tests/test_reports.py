"""Cost reports and the report views: exact totals, the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db.engine import make_engine, session_factory
from pipeline.db.migrate import alembic_config, upgrade
from pipeline.db.models import Article, Base, Generation, Job, Price, Run, RunForecast
from pipeline.errors import InputError
from pipeline.reports.chart import daily_cost_chart, nice_ticks
from pipeline.reports.costs import (
    DIMENSIONS,
    KEY_COLUMNS,
    VIEWS,
    CostFigures,
    DayTaskCost,
    Dimension,
    ReportFilter,
    cost_report,
    cost_rows,
    day_task_costs,
    latest_run_id,
    parse_day,
    usd_from_e10,
    usd_places,
    usd_text,
)

VIEW_NAMES = ("v_generation_costs", *VIEWS.values())
# Every view the migrations create: the report views (0002) and the CMS's latest text (0005,
# tested with `contentgen results` in tests/test_results_cli.py).
MIGRATED_VIEWS = {
    *VIEW_NAMES,
    "v_latest_generations",
    # 0007: the editorial views.
    "v_outputs",
    "v_current_outputs",
    "v_check_results",
    "v_flags_by_check",
    "v_review_by_version",
    "v_cost_by_version",
}
TASKS = ("summary", "headline", "key_points", "fact_check")
FIRST_DAY = dt.date(2026, 11, 20)
E10 = Decimal(10) ** 10


@dataclass(frozen=True)
class Spec:
    """One generation to store, with the dimensions it is reported under."""

    task: str
    created_at: dt.datetime
    section: str | None
    batch_label: str | None
    run: int | None  # index into the runs a seed creates (None: no run)
    status: str
    from_cache: bool
    request_model: str
    model: str | None
    price_tier: str
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal
    list_cost_usd: Decimal


RUNS = 2
money = st.integers(0, 10**15).map(lambda n: Decimal(n).scaleb(-10))  # <= 100k USD, 10 places


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    """A random generation row: any status, task, day (to the microsecond), section, cost."""
    input_tokens = draw(st.integers(0, 200_000))
    cached_tokens = draw(st.integers(0, input_tokens))
    output_tokens = draw(st.integers(0, 50_000))
    request_model = draw(st.sampled_from(("gpt-4.1-mini", "o4-mini", "gpt-5.6-terra")))
    return Spec(
        task=draw(st.sampled_from(TASKS)),
        created_at=dt.datetime.combine(
            FIRST_DAY + dt.timedelta(days=draw(st.integers(0, 4))), dt.time()
        )
        + dt.timedelta(microseconds=draw(st.integers(0, 86_400 * 10**6 - 1))),
        section=draw(st.sampled_from((None, "politics", "sport"))),
        batch_label=draw(st.sampled_from((None, "evening", "backfill"))),
        run=draw(st.sampled_from((None, *range(RUNS)))),
        status=draw(st.sampled_from(("completed", "completed", "incomplete", "failed"))),
        from_cache=draw(st.booleans()),
        request_model=request_model,
        model=draw(st.sampled_from((None, request_model, f"{request_model}-2025-04-14"))),
        price_tier=draw(st.sampled_from(("standard", "flex", "batch"))),
        input_tokens=input_tokens,
        cached_tokens=cached_tokens,
        cache_write_tokens=draw(st.integers(0, input_tokens - cached_tokens)),
        output_tokens=output_tokens,
        reasoning_tokens=draw(st.integers(0, output_tokens)),
        cost_usd=draw(money),
        list_cost_usd=draw(money),
    )


def clear(session: Session) -> None:
    """Empty the tables a seed fills (hypothesis reuses one database for many examples).

    Ids restart at 1 on both databases (SQLite reuses max(id) + 1; PostgreSQL is told to), so
    the same data gets the same ids everywhere.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(
                "TRUNCATE reviews, run_forecasts, batch_items, batches, generations, jobs, "
                "articles, runs, prices RESTART IDENTITY CASCADE"
            )
        )
    else:
        for model in (RunForecast, Generation, Job, Article, Run, Price):
            session.execute(delete(model))
    session.commit()


def seed(session: Session, rows: Sequence[Spec]) -> list[int]:
    """Store ``rows`` (one article and job each) under ``RUNS`` runs; returns the run ids."""
    runs = [
        Run(
            kind="nightly",
            trigger="schedule",
            state="succeeded",
            started_at=dt.datetime.combine(FIRST_DAY, dt.time(2)) + dt.timedelta(days=i),
            forecast_cost_usd=Decimal("1.25") * (i + 1),
            forecast_cached_ratio=0.5,
        )
        for i in range(RUNS)
    ]
    session.add_all(runs)
    session.flush()
    for i, spec in enumerate(rows):
        article = Article(
            source_id=f"a{i}", title="t", body="b", section=spec.section, content_hash="h"
        )
        session.add(article)
        session.flush()
        job = Job(
            article_id=article.id,
            task=spec.task,
            content_hash="h",
            batch_label=spec.batch_label,
            state="succeeded",
        )
        session.add(job)
        session.flush()
        session.add(
            Generation(
                job_id=job.id,
                run_id=None if spec.run is None else runs[spec.run].id,
                task=spec.task,
                status=spec.status,
                request_model=spec.request_model,
                model=spec.model,
                price_tier=spec.price_tier,
                input_tokens=spec.input_tokens,
                cached_tokens=spec.cached_tokens,
                cache_write_tokens=spec.cache_write_tokens,
                output_tokens=spec.output_tokens,
                reasoning_tokens=spec.reasoning_tokens,
                cost_usd=spec.cost_usd,
                list_cost_usd=spec.list_cost_usd,
                from_cache=spec.from_cache,
                created_at=spec.created_at,
            )
        )
    session.commit()
    return [run.id for run in runs]


def key_of(by: Dimension, spec: Spec, run_ids: list[int]) -> Any:
    """The group ``spec`` belongs to when reporting ``by`` (the oracle for the SQL grouping)."""
    if by == "day":
        return spec.created_at.date()
    if by == "model":
        return spec.model or spec.request_model
    if by == "task":
        return spec.task
    if by == "run":
        return None if spec.run is None else run_ids[spec.run]
    if by == "section":
        return spec.section
    if by == "tier":
        return spec.price_tier
    if by == "version":
        return f"{spec.task}@?"  # generations stored without a profile version
    return spec.batch_label


def figures_of(spec: Spec) -> CostFigures:
    """One generation's figures."""
    return CostFigures(
        requests=1,
        completed=int(spec.status == "completed"),
        incomplete=int(spec.status == "incomplete"),
        failed=int(spec.status == "failed"),
        from_cache=int(spec.from_cache),
        input_tokens=spec.input_tokens,
        cached_tokens=spec.cached_tokens,
        cache_write_tokens=spec.cache_write_tokens,
        output_tokens=spec.output_tokens,
        reasoning_tokens=spec.reasoning_tokens,
        cost_usd=spec.cost_usd,
        list_cost_usd=spec.list_cost_usd,
    )


def expected(by: Dimension, rows: Sequence[Spec], run_ids: list[int]) -> dict[Any, CostFigures]:
    """Python's grouping of ``rows``: what every report and view must agree with."""
    groups: dict[Any, CostFigures] = defaultdict(CostFigures)
    for spec in rows:
        key = key_of(by, spec, run_ids)
        groups[key] = groups[key] + figures_of(spec)
    return dict(groups)


def view_rows(session: Session, view: str) -> list[dict[str, Any]]:
    """Every row of ``view`` as a dict, as any SQL client would read it."""
    return [dict(row._mapping) for row in session.execute(text(f"SELECT * FROM {view}"))]


def as_day(value: Any) -> dt.date:
    """A view's ``day``: a ``date`` on PostgreSQL, ``'YYYY-MM-DD'`` text on SQLite."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def check_view(session: Session, by: Dimension, want: dict[Any, CostFigures]) -> None:
    """The grouped view for ``by`` has exactly the oracle's groups and figures."""
    if by not in VIEWS:
        return  # a dimension without a view of its own ("tier")
    key_column = KEY_COLUMNS[by]
    got = {}
    for row in view_rows(session, VIEWS[by]):
        key = row[key_column]
        got[as_day(key) if by == "day" else key] = row
    assert set(got) == set(want)
    for key, figures in want.items():
        row = got[key]
        for name in (
            "requests",
            "completed",
            "incomplete",
            "failed",
            "from_cache",
            "input_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "output_tokens",
            "reasoning_tokens",
        ):
            assert int(row[name]) == getattr(figures, name), (key, name)
        assert usd_from_e10(row["cost_usd_e10"]) == figures.cost_usd
        assert usd_from_e10(row["list_cost_usd_e10"]) == figures.list_cost_usd
        assert usd_from_e10(row["savings_usd_e10"]) == figures.savings_usd
        for name in ("cost_usd", "list_cost_usd", "savings_usd"):
            exact = getattr(figures, name)
            assert math.isclose(float(row[name]), float(exact), rel_tol=1e-12, abs_tol=1e-10)
        if figures.cached_ratio is None:
            assert row["cached_ratio"] is None
        else:
            assert math.isclose(row["cached_ratio"], figures.cached_ratio, rel_tol=1e-12)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(specs(), max_size=25))
def test_report_totals_equal_the_sum_of_generations(
    sessions: sessionmaker[Session], rows: list[Spec]
) -> None:
    """Every report and every view adds up, exactly, to the generation rows it groups."""
    with sessions() as session:
        clear(session)
        run_ids = seed(session, rows)
        total = sum((figures_of(spec) for spec in rows), CostFigures())
        for by in DIMENSIONS:
            want = expected(by, rows, run_ids)
            report = cost_report(session, by)
            assert {row.key: row.figures for row in report.rows} == want
            assert report.total == total
            check_view(session, by, want)
        assert len(view_rows(session, "v_generation_costs")) == len(rows)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(specs(), max_size=20),
    since=st.integers(0, 4),
    span=st.integers(0, 4),
    run=st.sampled_from((None, 0, 1)),
)
def test_filters_keep_exactly_the_matching_generations(
    sessions: sessionmaker[Session], rows: list[Spec], since: int, span: int, run: int | None
) -> None:
    """--since/--until keep whole UTC days (inclusive) and --run keeps one run's generations."""
    first = FIRST_DAY + dt.timedelta(days=since)
    last = first + dt.timedelta(days=span)
    with sessions() as session:
        clear(session)
        run_ids = seed(session, rows)
        run_id = None if run is None else run_ids[run]
        kept = [
            s
            for s in rows
            if first <= s.created_at.date() <= last and (run is None or s.run == run)
        ]
        flt = ReportFilter(since=first, until=last, run_id=run_id)
        report = cost_report(session, "task", flt)
        assert {r.key: r.figures for r in report.rows} == expected("task", kept, run_ids)
        assert report.total == sum((figures_of(s) for s in kept), CostFigures())
        cells = day_task_costs(session, flt)
        assert sum((c.figures for c in cells), CostFigures()) == report.total
        assert all(first <= c.day <= last for c in cells)


def random_specs(count: int, seed_value: int = 6) -> list[Spec]:
    """A fixed, varied data set (the same on every database)."""
    rnd = random.Random(seed_value)
    out = []
    for i in range(count):
        input_tokens = rnd.randint(0, 9000)
        cached_tokens = rnd.randint(0, input_tokens)
        output_tokens = rnd.randint(0, 900)
        out.append(
            Spec(
                task=rnd.choice(TASKS),
                created_at=dt.datetime.combine(FIRST_DAY, dt.time(23, 59, 59, 999_999))
                + dt.timedelta(hours=rnd.randint(0, 96), microseconds=i),
                section=rnd.choice((None, "politics", "sport")),
                batch_label=rnd.choice((None, "evening")),
                run=rnd.choice((None, 0, 1, 1)),
                status=rnd.choice(("completed", "completed", "incomplete", "failed")),
                from_cache=rnd.random() < 0.2,
                request_model="gpt-4.1-mini",
                model=rnd.choice((None, "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14")),
                price_tier=rnd.choice(("standard", "standard", "flex", "batch")),
                input_tokens=input_tokens,
                cached_tokens=cached_tokens,
                cache_write_tokens=rnd.choice((0, rnd.randint(0, input_tokens - cached_tokens))),
                output_tokens=output_tokens,
                reasoning_tokens=rnd.randint(0, output_tokens),
                cost_usd=Decimal(rnd.randint(0, 10**13)).scaleb(-10),
                list_cost_usd=Decimal(rnd.randint(0, 10**13)).scaleb(-10),
            )
        )
    return out


_INTS = {
    "generation_id",
    "run_id",
    "job_id",
    "requests",
    "completed",
    "incomplete",
    "failed",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
}
_FLOATS = {"cost_usd", "list_cost_usd", "savings_usd", "forecast_cost_usd"}
_RATIOS = {"cached_ratio", "forecast_cached_ratio"}
_TIMES = {"created_at", "started_at", "finished_at"}


def normalised(name: str, value: Any) -> Any:
    """A view value in a database-neutral form (exact where the view is exact)."""
    if value is None:
        return None
    if name in _INTS or name.endswith("_e10"):
        return int(value)
    if name == "from_cache":
        return int(value)  # a boolean per generation, a count in the grouped views
    if name == "day":
        return as_day(value)
    if name in _TIMES:
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
    if name in _FLOATS | _RATIOS:
        return round(float(value), 9)
    return value


def snapshot(session: Session, view: str) -> list[tuple[tuple[str, Any], ...]]:
    """A view's rows, normalised and sorted: comparable across databases."""
    rows = [
        tuple(sorted((k, normalised(k, v)) for k, v in row.items()))
        for row in view_rows(session, view)
    ]
    return sorted(rows, key=repr)


@pytest.mark.postgres
def test_views_return_the_same_rows_on_sqlite_and_postgres(
    sqlite_url: str, _postgres_database: str
) -> None:
    """The same generations give the same rows in every view on both databases."""
    rows = random_specs(120)
    snapshots = []
    for url in (sqlite_url, _postgres_database):
        engine = make_engine(url)
        try:
            with session_factory(engine)() as session:
                clear(session)
                seed(session, rows)
                snapshots.append({view: snapshot(session, view) for view in VIEW_NAMES})
                clear(session)
        finally:
            engine.dispose()
    sqlite_rows, postgres_rows = snapshots
    for view in VIEW_NAMES:
        assert sqlite_rows[view], view
        assert sqlite_rows[view] == postgres_rows[view], view


def test_view_columns_are_the_same_on_both_kinds_of_database(engine: Engine) -> None:
    """Each view has the documented columns (checked on SQLite and PostgreSQL alike)."""
    measures = [
        "requests",
        "completed",
        "incomplete",
        "failed",
        "from_cache",
        "input_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cached_ratio",
        "cost_usd",
        "list_cost_usd",
        "savings_usd",
        "cost_usd_e10",
        "list_cost_usd_e10",
        "savings_usd_e10",
    ]
    inspector = inspect(engine)
    assert set(VIEW_NAMES) <= set(inspector.get_view_names())
    for by, view in VIEWS.items():
        columns = [c["name"] for c in inspector.get_columns(view)]
        if by == "run":
            run_columns = ["run_id", "kind", "mode", "state", "started_at", "finished_at"]
            forecast = ["forecast_cost_usd", "forecast_cost_usd_e10", "forecast_cached_ratio"]
            assert columns == [*run_columns, *forecast, *measures]
        else:
            assert columns == [KEY_COLUMNS[by], *measures]


def test_by_run_view_shows_the_forecast_next_to_the_actual(sessions: sessionmaker[Session]) -> None:
    """v_cost_by_run carries each run's forecast; the report pairs it with the actual cost."""
    rows = random_specs(40)
    with sessions() as session:
        run_ids = seed(session, rows)
        by_run = {r["run_id"]: r for r in view_rows(session, "v_cost_by_run")}
        assert usd_from_e10(by_run[run_ids[1]]["forecast_cost_usd_e10"]) == Decimal("2.50")
        assert by_run[run_ids[1]]["forecast_cached_ratio"] == 0.5
        report = cost_report(session, "task", ReportFilter(run_id=run_ids[1]))
        (forecast,) = report.runs
        actual = sum((figures_of(s) for s in rows if s.run == 1), CostFigures())
        assert forecast.forecast_cost_usd == Decimal("2.50")
        assert forecast.actual.cost_usd == actual.cost_usd == report.total.cost_usd
        assert forecast.cost_error_usd == actual.cost_usd - Decimal("2.50")
        assert [r.run_id for r in cost_report(session, "run").runs] == run_ids
        assert cost_report(session, "task").runs == []


def test_latest_run_is_the_one_started_last(sessions: sessionmaker[Session]) -> None:
    """``--run last`` means the run with the newest start; no run at all is a clear error."""
    with sessions() as session:
        with pytest.raises(InputError, match="no runs"):
            latest_run_id(session)
        run_ids = seed(session, [])
        assert latest_run_id(session) == run_ids[-1]


def test_unknown_run_is_a_clear_error(sessions: sessionmaker[Session]) -> None:
    """Reporting on a run that does not exist says so instead of printing an empty table."""
    with sessions() as session, pytest.raises(InputError, match="no run with id 999"):
        cost_report(session, "task", ReportFilter(run_id=999))


def test_empty_database_reports_zero(sessions: sessionmaker[Session]) -> None:
    """No generations: no rows, a zero total, no ratio (rather than a division by zero)."""
    with sessions() as session:
        for by in DIMENSIONS:
            report = cost_report(session, by)
            assert report.rows == []
            assert report.total == CostFigures()
            assert report.total.cached_ratio is None
        assert cost_rows(session, "day") == []


@pytest.mark.parametrize(
    ("text_", "day"),
    [
        ("today", dt.date(2026, 11, 25)),
        ("Yesterday", dt.date(2026, 11, 24)),
        ("7d", dt.date(2026, 11, 18)),
        ("2026-01-31", dt.date(2026, 1, 31)),
    ],
)
def test_parse_day(text_: str, day: dt.date) -> None:
    """--since/--until accept ISO dates, today, yesterday and Nd."""
    assert parse_day(text_, dt.date(2026, 11, 25)) == day


def test_parse_day_rejects_junk_and_reversed_ranges() -> None:
    """A day that is not one, or a range that ends before it starts, is an InputError."""
    with pytest.raises(InputError, match="not a day: 'last week'"):
        parse_day("last week", dt.date(2026, 11, 25))
    with pytest.raises(InputError, match="after --until"):
        ReportFilter(since=dt.date(2026, 2, 1), until=dt.date(2026, 1, 1))


@given(money)
def test_usd_text_is_exact(value: Decimal) -> None:
    """Printed money reads back as the same Decimal, aligned or not."""
    assert Decimal(usd_text(value)) == value
    assert Decimal(usd_text(value, places=4)) == value
    assert usd_text(value, usd_places([value, Decimal("0.5")])).count(".") == 1


def test_usd_text_examples() -> None:
    """At least two places, no rounding, no exponent."""
    assert usd_text(Decimal("1.5000000000")) == "1.50"
    assert usd_text(Decimal("0E-10")) == "0.00"
    assert usd_text(Decimal("0.0000000001")) == "0.0000000001"
    assert usd_text(Decimal("2"), places=4) == "2.0000"


@given(st.floats(min_value=1e-9, max_value=1e9))
def test_chart_ticks_cover_the_tallest_bar(top: float) -> None:
    """Axis ticks start at zero, rise evenly and reach the tallest bar in a few steps."""
    ticks = nice_ticks(top)
    assert ticks[0] == 0
    assert ticks[-1] >= top * (1 - 1e-9)
    assert 2 <= len(ticks) <= 12
    assert all(b > a for a, b in itertools.pairwise(ticks))


def _cell(day: int, task: str, cost: str, input_tokens: int, cached: int) -> DayTaskCost:
    figures = CostFigures(
        requests=3,
        completed=3,
        input_tokens=input_tokens,
        cached_tokens=cached,
        cost_usd=Decimal(cost),
        list_cost_usd=Decimal(cost) * 2,
    )
    return DayTaskCost(FIRST_DAY + dt.timedelta(days=day), task, figures)


def test_chart_is_self_contained_html_with_every_profile() -> None:
    """The chart is one HTML page with inline SVG: bars per profile, ratio line, no scripts."""
    rows = [
        _cell(0, "summary", "0.0123456789", 1000, 500),
        _cell(0, "headline", "0.002", 800, 0),
        _cell(3, "fact_check <&>", "1.5", 2000, 1900),
    ]
    html = daily_cost_chart(rows, title="Nightly cost")
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html and "</svg>" in html
    for name in ("summary", "headline", "fact_check &lt;&amp;&gt;"):
        assert name in html
    assert "fact_check <&>" not in html
    assert "<script" not in html.lower()
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<polyline" in html  # the cached-ratio line
    for label in ("Nightly cost", "Cost (USD)", "Cached share of input tokens", "Day (UTC)"):
        assert label in html
    assert "0.0123456789" in html  # exact figures in the table under the chart
    assert str(FIRST_DAY + dt.timedelta(days=2)) in html  # a day without generations too


def test_chart_without_data_says_so() -> None:
    """An empty period gives a valid page that says there is nothing to show."""
    html = daily_cost_chart([])
    assert "No generations in this period" in html
    assert "</html>" in html


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that has never been migrated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'blank.db'}"
    return str(request.getfixturevalue("blank_postgres_url"))


def _views(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_view_names())
    finally:
        engine.dispose()


def test_views_upgrade_and_downgrade(blank_url: str) -> None:
    """0002, 0005 and 0007 create the views, downgrading to 0001 drops them all, upgrading
    again works."""
    upgrade(blank_url)
    assert _views(blank_url) == MIGRATED_VIEWS
    command.downgrade(alembic_config(blank_url), "0004")
    assert _views(blank_url) == set(VIEW_NAMES)
    command.downgrade(alembic_config(blank_url), "0001")
    assert _views(blank_url) == set()
    upgrade(blank_url)
    assert _views(blank_url) == MIGRATED_VIEWS


def test_autogenerate_ignores_the_views(engine: Engine) -> None:
    """Views are not models: comparing the models with the database proposes nothing for them."""
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diffs if any(view in repr(d) for view in MIGRATED_VIEWS)]


def test_day_boundaries_are_utc_midnight(sessions: sessionmaker[Session]) -> None:
    """A generation at 23:59:59.999999 counts for its day, one a microsecond later for the next."""
    base = random_specs(1)[0]
    late = dt.datetime.combine(FIRST_DAY, dt.time(23, 59, 59, 999_999))
    rows = [
        Spec(**{**base.__dict__, "created_at": late}),
        Spec(**{**base.__dict__, "created_at": late + dt.timedelta(microseconds=1)}),
    ]
    with sessions() as session:
        seed(session, rows)
        days = [row.key for row in cost_rows(session, "day")]
        assert days == [FIRST_DAY, FIRST_DAY + dt.timedelta(days=1)]
        only_first = ReportFilter(since=FIRST_DAY, until=FIRST_DAY)
        assert cost_report(session, "day", only_first).total.requests == 1
        assert sorted(as_day(r["day"]) for r in view_rows(session, "v_cost_by_day")) == days
