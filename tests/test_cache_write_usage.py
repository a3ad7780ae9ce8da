"""Cache writes (GPT-5.6+) from the response to every report: parsed, priced, stored, summed.

``usage.input_tokens_details.cache_write_tokens`` is a part of the inclusive ``input_tokens``
billed at the write rate (API-NOTES §1.2, §1.5). Migration 0004 stores it on generations and
runs (old rows read 0) and remakes the report views with it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from alembic import command
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import column, table

from pipeline.batchmode.context import BatchContext
from pipeline.batchmode.files import parse_lines
from pipeline.batchmode.ingest import verdict_of
from pipeline.batchmode.items import Item
from pipeline.batchmode.remote import RemoteBatch
from pipeline.client.result import APIResult, result_of, usage_of
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.migrate import alembic_config, upgrade
from pipeline.db.models import Article, Generation, Job, Price, Run
from pipeline.db.prices import sync_prices
from pipeline.db.runs import close_run, open_run
from pipeline.db.types import ExactDecimal
from pipeline.errors import PricingError
from pipeline.money.budget import worst_case_cost
from pipeline.money.cachepolicy import CachePolicySpec
from pipeline.money.pricing import (
    MTOK,
    ModelPrice,
    PriceTable,
    TierPrice,
    Usage,
    cost_usd,
    load_pricing,
)
from pipeline.prompts.requests import RenderedRequest
from pipeline.reports.chart import daily_cost_chart
from pipeline.reports.costs import (
    DIMENSIONS,
    ReportFilter,
    cost_report,
    day_task_costs,
    usd_from_e10,
)
from pipeline.run.progress import Progress
from pipeline.run.recording import judge, list_price
from tests.conftest import CONFIG_DIR
from tests.test_planning import make_profile, req, seg
from tests.test_reports import VIEW_NAMES

SOL = "gpt-5.6-sol"  # standard 4.00 / 0.40 / 20.00 per 1M, writes 1.25 x input = 5.00
TODAY = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    """The repository's price table."""
    return load_pricing(CONFIG_DIR / "pricing.toml")


def response_json(
    *,
    model: str = SOL,
    service_tier: str | None = "default",
    input_tokens: int = 10_000,
    cached: int = 4_000,
    writes: int | None = 3_000,
    output_tokens: int = 500,
) -> dict[str, Any]:
    """A completed Responses API body; ``writes=None`` leaves the field out (older models)."""
    details: dict[str, int] = {"cached_tokens": cached}
    if writes is not None:
        details["cache_write_tokens"] = writes
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1_790_000_000,
        "status": "completed",
        "model": model,
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "service_tier": service_tier,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": details,
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        },
    }


def sol_request(service_tier: str | None = None) -> RenderedRequest:
    """A request to gpt-5.6-sol (its profile may ask for a service tier)."""
    profile = make_profile(model=SOL, max_output_tokens=500, service_tier=service_tier)
    return req(1, 1, [seg("instructions", "i", 6_000), seg("article", "a", 3_900)], profile=profile)


def judged(
    result: APIResult, request: RenderedRequest, prices: PriceTable, **kw: Any
) -> Generation:
    """The generation ``judge`` makes of ``result`` (priced on ``TODAY``)."""
    verdict = judge(
        request,
        result,
        run_id=1,
        prices=prices,
        attempts=1,
        from_cache=False,
        cache_key=None,
        today=TODAY,
        **kw,
    )
    return verdict.generation


# -- parsing and the response cache ----------------------------------------------------------


def test_usage_reads_cache_writes_from_a_dict_and_from_the_sdk_object() -> None:
    """``input_tokens_details.cache_write_tokens`` becomes ``Usage.cache_write_tokens``."""
    body = response_json()
    want = Usage(
        input_tokens=10_000,
        cached_tokens=4_000,
        output_tokens=500,
        reasoning_tokens=0,
        cache_write_tokens=3_000,
    )
    assert usage_of(body) == want
    assert usage_of(Response.model_validate(body)) == want


def test_usage_without_the_field_counts_no_writes() -> None:
    """Responses of models before GPT-5.6 (or older SDKs) carry no writes: 0."""
    assert usage_of(response_json(writes=None)).cache_write_tokens == 0
    assert usage_of({"usage": None}) == Usage()


def test_result_round_trips_with_cache_writes() -> None:
    """The response cache's JSON keeps the writes."""
    result = result_of(response_json(), latency_s=1.5, request_id="req_1")
    again = APIResult.from_json_dict(json.loads(json.dumps(result.to_json_dict())))
    assert again == result
    assert again.usage.cache_write_tokens == 3_000


def test_cache_entries_stored_before_writes_still_load_as_zero() -> None:
    """An entry written before the field existed loads, with 0 writes and everything else kept."""
    old = {
        "format": 1,
        "response_id": "resp_old",
        "model": "gpt-4.1-mini",
        "status": "completed",
        "incomplete_reason": None,
        "output_text": "hi",
        "reasoning_summary": None,
        "usage": {
            "input_tokens": 1200,
            "cached_tokens": 1024,
            "output_tokens": 30,
            "reasoning_tokens": 0,
        },
        "service_tier": "default",
        "latency_s": 0.4,
        "ttft_s": None,
        "request_id": "req_old",
    }
    result = APIResult.from_json_dict(old)
    assert result.usage == Usage(1200, 1024, 30, 0, 0)
    assert result.response_id == "resp_old"


# -- pricing a generation --------------------------------------------------------------------


def test_a_generation_with_writes_is_priced_ordinary_plus_cached_plus_writes(
    prices: PriceTable,
) -> None:
    """Ordinary input at 4.00, cached at 0.40, writes at 5.00, output at 20.00, exactly; the
    list cost has every input token at 4.00."""
    result = result_of(response_json(), latency_s=1.0)
    g = judged(result, sol_request(), prices)
    assert (g.input_tokens, g.cached_tokens, g.cache_write_tokens) == (10_000, 4_000, 3_000)
    ordinary = 10_000 - 4_000 - 3_000
    want = (
        ordinary * Decimal("4.00")
        + 4_000 * Decimal("0.40")
        + 3_000 * Decimal("5.00")
        + 500 * Decimal("20.00")
    ) / MTOK
    assert g.cost_usd == want == Decimal("0.0386")
    assert g.list_cost_usd == (10_000 * Decimal("4.00") + 500 * Decimal("20.00")) / MTOK
    assert g.price_tier == "standard"


def test_writes_without_reads_show_negative_savings(prices: PriceTable) -> None:
    """Paying the write premium and reading nothing costs more than no cache at all."""
    body = response_json(cached=0, writes=8_000, output_tokens=0)
    g = judged(result_of(body, latency_s=1.0), sol_request(), prices)
    assert g.cost_usd == (2_000 * Decimal(4) + 8_000 * Decimal(5)) / MTOK == Decimal("0.048")
    assert g.list_cost_usd == Decimal("0.04")
    assert g.list_cost_usd - g.cost_usd == Decimal("-0.008")


def test_list_price_has_no_cache_at_all() -> None:
    """The savings base bills reads and writes at the plain input rate."""
    price = TierPrice(
        input=Decimal(4), cached_input=Decimal("0.4"), output=Decimal(20), cache_write=Decimal(5)
    )
    base = list_price(price)
    assert (base.input, base.cached_rate, base.write_rate, base.output) == (4, 4, 4, 20)


@pytest.mark.parametrize(
    ("asked", "echoed", "tier", "want"),
    [
        # Sol flex: 2.00 / 0.20 / writes 2.50 / 10.00 per 1M.
        ("default", "flex", "flex", Decimal("0.0193")),
        ("flex", "default", "standard", Decimal("0.0386")),
        (None, "auto", "standard", Decimal("0.0386")),
    ],
)
def test_the_tier_the_response_echoes_is_the_tier_billed(
    prices: PriceTable, asked: str | None, echoed: str, tier: str, want: Decimal
) -> None:
    """A request that asked for one tier is billed at the tier the response says it used."""
    result = result_of(response_json(service_tier=echoed), latency_s=1.0)
    g = judged(result, sol_request(service_tier=asked), prices)
    assert (g.price_tier, g.service_tier, g.cost_usd) == (tier, echoed, want)


def test_batch_output_lines_carry_writes_into_the_generation(prices: PriceTable) -> None:
    """A batch output line's writes are stored and billed at the batch write rate (2.50)."""
    line_json = {
        "id": "batch_req_1",
        "custom_id": "j1-a1",
        "response": {"status_code": 200, "request_id": "req_9", "body": response_json()},
        "error": None,
    }
    (line,) = parse_lines(json.dumps(line_json).encode())
    ctx = cast(BatchContext, SimpleNamespace(run_id=1, prices=prices))
    item = Item("j1-a1", 1, 1, "summary", "instructions_first", None, "pending")
    verdict = verdict_of(
        ctx, RemoteBatch(id="batch_1", status="completed"), sol_request(), item, line
    )
    assert not isinstance(verdict, str)
    g = verdict.generation
    assert (g.cache_write_tokens, g.price_tier, g.batch_id) == (3_000, "batch", "batch_1")
    assert (
        g.cost_usd
        == (
            3_000 * Decimal(2) + 4_000 * Decimal("0.2") + 3_000 * Decimal("2.5") + 500 * Decimal(10)
        )
        / MTOK
    )


# -- the budget ------------------------------------------------------------------------------


@given(
    prompt=st.integers(0, 200_000),
    cached_share=st.floats(0, 1),
    write_share=st.floats(0, 1),
    output=st.integers(0, 2_000),
    tier=st.sampled_from(("standard", "flex", "batch")),
)
def test_worst_case_covers_any_split_into_reads_and_writes(
    prices: PriceTable,
    prompt: int,
    cached_share: float,
    write_share: float,
    output: int,
    tier: Any,
) -> None:
    """The reservation for a 5.6 request is at least what any response to it can cost, writes
    (dearer than input) included."""
    profile = make_profile(model=SOL, max_output_tokens=2_000)
    request = req(1, 1, [seg("article", "a", prompt)], profile=profile)
    input_tokens = request.prompt_tokens
    cached = int(input_tokens * cached_share)
    writes = int((input_tokens - cached) * write_share)
    usage = Usage(input_tokens, cached, output, 0, writes)
    actual = cost_usd(usage, prices.price(SOL, tier))
    assert worst_case_cost(request, prices) >= actual


def test_worst_case_of_an_all_write_prompt(prices: PriceTable) -> None:
    """The case the old bound missed: every prompt token written to the cache, full output."""
    request = sol_request()
    usage = Usage(request.prompt_tokens, 0, 500, 0, request.prompt_tokens)
    assert worst_case_cost(request, prices) >= cost_usd(usage, prices.price(SOL))


# -- database, reports and runs --------------------------------------------------------------


def _job(session: Session, task: str = "summary") -> Job:
    article = Article(source_id=f"a-{task}", title="t", body="b", section="news", content_hash="h")
    session.add(article)
    session.flush()
    job = Job(article_id=article.id, task=task, content_hash="h", state="succeeded")
    session.add(job)
    session.flush()
    return job


def test_writes_reach_the_run_the_reports_and_the_chart(
    sessions: sessionmaker[Session], prices: PriceTable
) -> None:
    """A judged generation with writes is stored, summed into its run row, every report's total
    and the views (SQLite and PostgreSQL alike)."""
    with sessions() as session:
        run_id = open_run(session, kind="cli", trigger="cli")
        with_writes = result_of(response_json(), latency_s=1.0)
        without = result_of(
            response_json(model="gpt-4.1-mini", cached=1024, writes=None), latency_s=1.0
        )
        generations = []
        for task, result, request in (
            ("summary", with_writes, sol_request()),
            ("headline", without, req(2, 2, [], task="headline", profile=make_profile("headline"))),
        ):
            job = _job(session, task)
            g = judge(
                request,
                result,
                run_id=run_id,
                prices=prices,
                attempts=1,
                from_cache=False,
                cache_key=None,
                today=TODAY,
            ).generation
            g.job_id = job.id
            generations.append(g)
        session.add_all(generations)
        session.commit()
        cost = sum((g.cost_usd for g in generations), Decimal(0))
        list_cost = sum((g.list_cost_usd for g in generations), Decimal(0))

        totals = close_run(session, run_id, state="succeeded")
        assert totals.cache_write_tokens == 3_000
        run = session.get(Run, run_id)
        assert run is not None
        session.refresh(run)
        assert (run.cache_write_tokens, run.cached_tokens) == (3_000, 4_000 + 1024)

        for by in DIMENSIONS:
            report = cost_report(session, by)
            assert report.total.cache_write_tokens == 3_000
            assert report.total.cost_usd == cost
            assert report.total.list_cost_usd == list_cost
        by_task = {r.key: r.figures for r in cost_report(session, "task").rows}
        assert by_task["summary"].cache_write_tokens == 3_000
        assert by_task["headline"].cache_write_tokens == 0
        (forecast,) = cost_report(session, "task", ReportFilter(run_id=run_id)).runs
        assert forecast.actual.cache_write_tokens == 3_000

        for view in VIEW_NAMES:
            rows = session.execute(text(f"SELECT cache_write_tokens FROM {view}")).all()
            assert sum(int(r[0]) for r in rows) == 3_000, view
        (e10,) = session.execute(text("SELECT cost_usd_e10 FROM v_cost_by_run")).one()
        assert usd_from_e10(e10) == cost

        html = daily_cost_chart(day_task_costs(session))
        assert "Cache writes (tokens)" in html and "3,000" in html


def test_progress_counts_cache_writes(prices: PriceTable) -> None:
    """The live counters and their log line show the writes next to the cached share."""
    progress = Progress()
    progress.finished(
        judged(result_of(response_json(), latency_s=1.0), sol_request(), prices), True
    )
    progress.finished(Generation(status="failed"), False)  # no usage: nothing added
    assert progress.cache_write_tokens == 3_000
    assert "cache writes 3,000" in progress.line()


# -- prices ----------------------------------------------------------------------------------


def test_prices_store_the_write_rate(sessions: sessionmaker[Session], prices: PriceTable) -> None:
    """`prices load` stores each tier's write rate; NULL where writes cost the input rate."""
    with sessions() as session:
        sync_prices(session, prices)
        rows = {(p.model, p.tier): p for p in session.scalars(select(Price))}
    assert rows[(SOL, "standard")].cache_write_usd_per_mtok == Decimal("5.00")
    assert rows[(SOL, "batch")].cache_write_usd_per_mtok == Decimal("2.50")
    assert rows[("gpt-4.1-mini", "standard")].cache_write_usd_per_mtok is None


def test_rows_stored_before_0004_get_the_write_rate_filled_in(
    sessions: sessionmaker[Session], prices: PriceTable
) -> None:
    """A stored row without a write rate and otherwise equal is the same price: filled, not a
    conflict; one whose other rates differ is still refused."""
    with sessions() as session:
        sync_prices(session, prices)
        for p in session.scalars(select(Price).where(Price.model == SOL)):
            p.cache_write_usd_per_mtok = None  # as 0003 stored it
        session.commit()
        assert sync_prices(session, prices) == 0
        stored = session.scalars(select(Price).where(Price.model == SOL, Price.tier == "flex"))
        assert [p.cache_write_usd_per_mtok for p in stored] == [Decimal("2.50")]

        for p in session.scalars(select(Price).where(Price.model == SOL)):
            p.cache_write_usd_per_mtok = None
        session.commit()
        day = dt.date(2026, 10, 2)
        standard = TierPrice(
            input=Decimal("4.10"), cached_input=Decimal("0.40"), output=Decimal("20.00")
        )
        changed = PriceTable(
            [ModelPrice(model=SOL, effective_date=day, standard=standard)],
            {SOL: CachePolicySpec(regime="breakpoints")},
        )
        with pytest.raises(PricingError, match="differs from the stored one"):
            sync_prices(session, changed)
        stored_rates = session.scalars(
            select(Price.cache_write_usd_per_mtok).where(Price.model == SOL)
        )
        assert set(stored_rates) == {None}  # nothing half-written


def test_a_stored_write_rate_is_history(
    sessions: sessionmaker[Session], prices: PriceTable
) -> None:
    """Changing the write rate of a stored (model, tier, date) is refused like any other rate."""
    with sessions() as session:
        sync_prices(session, prices)
        day = dt.date(2026, 10, 2)
        standard = TierPrice(
            input=Decimal("4.00"),
            cached_input=Decimal("0.40"),
            output=Decimal("20.00"),
            cache_write=Decimal("8.00"),
        )
        changed = PriceTable([ModelPrice(model=SOL, effective_date=day, standard=standard)])
        with pytest.raises(PricingError, match="cache write 5"):
            sync_prices(session, changed)


# -- migration 0004 --------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that has never been migrated."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'blank.db'}"
    return str(request.getfixturevalue("blank_postgres_url"))


@pytest.fixture
def engine_at(blank_url: str) -> Iterator[Engine]:
    """An engine on ``blank_url``."""
    engine = make_engine(blank_url)
    try:
        yield engine
    finally:
        engine.dispose()


_MONEY = ExactDecimal()
_NOW = dt.datetime(2026, 11, 30, 12, 0)


def _insert(conn: Any, name: str, money: tuple[str, ...] = (), **values: Any) -> None:
    """Insert one row as plain columns (``money`` ones through ExactDecimal, per dialect)."""
    cols = [column(c, _MONEY) if c in money else column(c) for c in values]
    conn.execute(table(name, *cols).insert().values(**values))


def _seed_0003(engine: Engine, prices: PriceTable) -> list[Decimal]:
    """Rows as revision 0003 stores them (no write columns); returns the generations' costs."""
    mini = prices.price("gpt-4.1-mini", "standard", dt.date(2026, 11, 30))
    stamps = {"created_at": _NOW, "updated_at": _NOW}
    costs = []
    with engine.begin() as conn:
        _insert(conn, "articles", id=1, source_id="a1", title="t", body="b", content_hash="h",
                **stamps)  # fmt: skip
        _insert(conn, "jobs", id=1, article_id=1, task="summary", state="succeeded", priority=0,
                attempts=1, content_hash="h", **stamps)  # fmt: skip
        _insert(conn, "runs", ("cost_usd",), id=1, kind="cli", trigger="cli", mode="realtime",
                state="succeeded", started_at=_NOW, requests=2, succeeded=2, failed=0,
                input_tokens=2400, cached_tokens=1024, output_tokens=120, reasoning_tokens=0,
                cost_usd=Decimal(0))  # fmt: skip
        for i, (inp, cached, out) in enumerate(((1500, 1024, 80), (900, 0, 40)), start=1):
            usage = Usage(inp, cached, out, 0)
            costs.append(cost_usd(usage, mini))
            _insert(conn, "generations", ("cost_usd", "list_cost_usd"), id=i, job_id=1, run_id=1,
                    task="summary", status="completed", request_model="gpt-4.1-mini",
                    model="gpt-4.1-mini", input_tokens=inp, cached_tokens=cached,
                    output_tokens=out, reasoning_tokens=0, cost_usd=costs[-1],
                    list_cost_usd=cost_usd(usage, list_price(mini)), price_tier="standard",
                    attempts=1, from_cache=False, created_at=_NOW)  # fmt: skip
        rates = ("input_usd_per_mtok", "cached_input_usd_per_mtok", "output_usd_per_mtok")
        _insert(conn, "prices", rates, model=SOL, tier="standard",
                effective_date=dt.date(2026, 10, 2), input_usd_per_mtok=Decimal(4),
                cached_input_usd_per_mtok=Decimal("0.4"),
                output_usd_per_mtok=Decimal(20))  # fmt: skip
    return costs


def test_upgrade_from_0003_keeps_old_rows_at_zero_writes_and_the_same_cost(
    blank_url: str, engine_at: Engine, prices: PriceTable
) -> None:
    """Generations stored before 0004 read 0 writes and report the cost they were stored with,
    which is also what the new pricing gives them; prices get their write rate on load."""
    upgrade(blank_url, "0003")
    costs = _seed_0003(engine_at, prices)
    upgrade(blank_url)
    with session_factory(engine_at)() as session:
        gens = list(session.scalars(select(Generation).order_by(Generation.id)))
        assert [g.cache_write_tokens for g in gens] == [0, 0]
        assert [g.cost_usd for g in gens] == costs
        mini = prices.price("gpt-4.1-mini", "standard", dt.date(2026, 11, 30))
        for g in gens:
            usage = Usage(g.input_tokens, g.cached_tokens, g.output_tokens, 0, g.cache_write_tokens)
            assert cost_usd(usage, mini) == g.cost_usd
        report = cost_report(session, "run")
        assert report.total.cost_usd == sum(costs, Decimal(0))
        assert report.total.cache_write_tokens == 0
        run = session.get(Run, 1)
        assert run is not None and run.cache_write_tokens == 0
        rows = session.execute(text("SELECT cache_write_tokens FROM v_generation_costs")).all()
        assert [int(r[0]) for r in rows] == [0, 0]

        (stored,) = session.scalars(select(Price))
        assert stored.cache_write_usd_per_mtok is None
        sync_prices(session, prices)
        session.refresh(stored)
        assert stored.cache_write_usd_per_mtok == Decimal("5.00")


def _view_sql(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'view'"
        else:
            query = "SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'"
        return {name: sql for name, sql in conn.execute(text(query))}


def test_downgrade_restores_the_0002_views_and_drops_the_columns(
    blank_url: str, engine_at: Engine
) -> None:
    """0004 down gives back exactly the views and columns 0003 had; up again works."""
    upgrade(blank_url, "0003")
    before = _view_sql(engine_at)
    assert set(before) == set(VIEW_NAMES)
    upgrade(blank_url)
    assert _view_sql(engine_at) != before
    command.downgrade(alembic_config(blank_url), "0003")
    assert _view_sql(engine_at) == before
    inspector = inspect(engine_at)
    for name, col in (
        ("generations", "cache_write_tokens"),
        ("runs", "cache_write_tokens"),
        ("prices", "cache_write_usd_per_mtok"),
    ):
        assert col not in {c["name"] for c in inspector.get_columns(name)}
    upgrade(blank_url)
    columns = {c["name"] for c in inspect(engine_at).get_columns("v_cost_by_run")}
    assert "cache_write_tokens" in columns
