"""Choosing a mode: what each mode costs and takes, the cheapest one that meets the deadline,
the dry run's mode lines, and ``contentgen run --mode ...`` end to end on the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.db.models import Generation, Job
from pipeline.money.pricing import Usage, load_pricing
from pipeline.planning.modes import (
    BATCH_WINDOW_H,
    ModeForecast,
    ModelLoad,
    choose,
    choose_modes,
    for_mode,
    forecast_modes,
    offers,
    tasks_by_mode,
)
from pipeline.prompts.profiles import load_profiles
from pipeline.run.dryrun import dry_run
from pipeline.run.runner import RunOptions
from pipeline.settings import Settings, get_settings
from pipeline.simulator.server import SimulatorServer
from pipeline.simulator.testing import TEST_API_KEY, start_test_simulator
from tests.conftest import CONFIG_DIR
from tests.test_batchmode import enqueue

PRICES = load_pricing(CONFIG_DIR / "pricing.toml")
PROFILES = load_profiles(CONFIG_DIR)
Invoke = Callable[..., Result]


def load(model: str, requests: int = 1000, cached: float = 0.6) -> ModelLoad:
    """A workload of ``requests`` 2,000-token prompts with ``cached`` of them cached."""
    prompt = 2000 * requests
    return ModelLoad(model, requests, prompt, int(prompt * cached), 150 * requests)


def test_flex_mode_asks_for_flex_only_where_it_is_offered() -> None:
    """--mode flex: o4-mini's profile gets service_tier flex; gpt-4.1-mini's does not."""
    assert offers(PRICES, "o4-mini", "flex") and not offers(PRICES, "gpt-4.1-mini", "flex")
    profiles = for_mode(PROFILES, PRICES, "flex")
    assert profiles["fact_check"].service_tier == "flex"
    assert profiles["summary"].service_tier is None
    assert all(p.service_tier is None for p in for_mode(profiles, PRICES, "batch").values())
    assert for_mode(PROFILES, PRICES, "realtime") == PROFILES


def test_each_mode_is_priced_at_its_tier() -> None:
    """Flex and batch cost the batch rates; batch gets a cache discount only where priced."""
    work = load("gpt-5-mini")
    by_mode = {f.mode: f for f in forecast_modes(work, PRICES, rate_rpm=500, deadline_h=48)}
    for mode, tier in (("realtime", "standard"), ("flex", "flex"), ("batch", "batch")):
        assert by_mode[mode].cost_usd == PRICES.cost("gpt-5-mini", work.usage, tier)  # type: ignore[arg-type]
    assert by_mode["flex"].cost_usd * 2 == by_mode["realtime"].cost_usd
    assert by_mode["batch"].hours == BATCH_WINDOW_H
    assert by_mode["flex"].hours == pytest.approx(by_mode["realtime"].hours * 2.5)


@pytest.mark.parametrize(
    ("model", "deadline_h", "expected"),
    [
        ("gpt-5-mini", 0.01, "realtime"),  # nothing is that fast: the fastest
        ("gpt-5-mini", 0.05, "realtime"),  # realtime (0.033 h) fits, flex (0.083 h) does not
        ("gpt-5-mini", 8.0, "flex"),  # flex fits and costs half
        ("gpt-5-mini", 48.0, "flex"),  # batch costs the same here, and flex is faster
        ("o4-mini", 48.0, "flex"),  # batch has no cache discount for o4-mini: flex is cheaper
        ("gpt-4.1-mini", 8.0, "realtime"),  # no flex price, batch takes too long
        ("gpt-4.1-mini", 48.0, "batch"),
    ],
)
def test_auto_picks_the_cheapest_mode_that_meets_the_deadline(
    model: str, deadline_h: float, expected: str
) -> None:
    """The choice for a 1,000-request workload at 500 requests/min."""
    forecasts = forecast_modes(load(model), PRICES, rate_rpm=500, deadline_h=deadline_h)
    assert choose(model, forecasts, deadline_h).mode == expected


@given(
    costs=st.lists(st.decimals(min_value=0, max_value=100, places=4), min_size=3, max_size=3),
    hours=st.lists(st.floats(min_value=0.01, max_value=48), min_size=3, max_size=3),
    available=st.lists(st.booleans(), min_size=3, max_size=3),
    deadline_h=st.floats(min_value=0.01, max_value=48),
)
def test_the_choice_is_never_beaten_by_a_mode_that_meets_the_deadline(
    costs: list[Decimal], hours: list[float], available: list[bool], deadline_h: float
) -> None:
    """Property: if any mode meets the deadline the choice does, and none is cheaper."""
    forecasts = [
        ModeForecast(mode, ok, cost, h, ok and h <= deadline_h)
        for mode, cost, h, ok in zip(
            ("realtime", "flex", "batch"), costs, hours, available, strict=True
        )
    ]
    chosen = next(f for f in forecasts if f.mode == choose("m", forecasts, deadline_h).mode)
    meeting = [f for f in forecasts if f.meets_deadline]
    if meeting:
        assert chosen.meets_deadline
        assert all(chosen.cost_usd <= f.cost_usd for f in meeting)


def test_a_forced_mode_the_model_lacks_runs_realtime() -> None:
    """--mode flex for a model without flex: realtime, and the reason says so."""
    loads = {"gpt-4.1-mini": load("gpt-4.1-mini"), "o4-mini": load("o4-mini")}
    choices = choose_modes(
        loads, PRICES, rates_rpm={m: 500.0 for m in loads}, deadline_h=8, forced="flex"
    )
    assert choices["o4-mini"].mode == "flex"
    assert choices["gpt-4.1-mini"].mode == "realtime"
    assert "not offered" in choices["gpt-4.1-mini"].reason
    assert tasks_by_mode(PROFILES, choices) == {
        "flex": ("fact_check",),
        "realtime": ("grade_summary", "headline", "key_points", "summary"),
    }


def test_model_load_usage_is_what_forecasts_price() -> None:
    """A load's usage has its prompt, expected cached and output tokens."""
    work = ModelLoad("gpt-5-mini", 2, 4000, 1024, 300)
    assert work.usage == Usage(4000, 1024, 300)
    assert (work + work).requests == 4


def test_the_dry_run_shows_every_modes_forecast_and_the_choice(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """Per model: realtime, flex and batch cost and hours, and the mode auto would take;
    its realtime figure is the plan's own forecast."""
    enqueue(sessions, 4, ("summary", "fact_check"))
    report = dry_run(settings.model_copy(update={"deadline_h": 48.0}), RunOptions(mode="auto"))
    assert set(report.mode_choices) == {"gpt-4.1-mini", "o4-mini"}
    realtime = sum(
        (c.forecast("realtime").cost_usd for c in report.mode_choices.values()), Decimal(0)
    )
    assert realtime == report.cost_usd
    data = report.as_dict()
    assert data["mode"] == "auto" and len(data["modes"]) == 2
    lines = report.mode_lines()
    assert lines["mode gpt-4.1-mini"].startswith("batch")
    assert "flex n/a" in lines["mode gpt-4.1-mini"]


# -- the CLI against a live simulator -----------------------------------------------------


@pytest.fixture
def live_sim() -> Iterator[SimulatorServer]:
    """A simulator on real time whose batches finish in milliseconds."""
    server = start_test_simulator(freeze_clock=False, batch_speed=20_000.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cli(
    settings: Settings, live_sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Invoke]:
    """``contentgen`` on the test database, talking to the simulator."""
    env = {
        "CONTENTGEN_DATABASE_URL": settings.database_url,
        "CONTENTGEN_CONFIG_DIR": str(settings.config_dir),
        "CONTENTGEN_CACHE_DIR": str(settings.cache_dir),
        "CONTENTGEN_BATCH_POLL_S": "0.02",
        "CONTENTGEN_BATCH_POLL_MAX_S": "0.05",
        "OPENAI_BASE_URL": live_sim.base_url,
        "OPENAI_API_KEY": TEST_API_KEY,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def test_cli_batch_mode_then_batches_lists_the_batch(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """`run --mode batch` waits for the batch; `batches --json` shows it with its cost."""
    n = enqueue(sessions, 3, ("summary",))
    result = cli("run", "--mode", "batch", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["mode"] == "batch" and run["recorded"] == n and run["batches_open"] == 0
    listed = json.loads(cli("batches", "--json").stdout)
    (batch,) = listed["batches"]
    assert batch["status"] == "completed" and batch["requests"] == n
    assert Decimal(batch["cost_usd"]) == Decimal(run["cost_usd"]) > 0
    assert Decimal(listed["savings_usd"]) > 0
    assert cli("batches", "cancel", str(batch["id"])).exit_code == 2  # it has ended


def test_cli_auto_mode_runs_each_model_in_its_mode(
    cli: Invoke, sessions: sessionmaker[Session]
) -> None:
    """--mode auto with a two-day deadline: each model runs in the mode it chose."""
    n = enqueue(sessions, 3, ("summary", "fact_check"))
    result = cli("run", "--mode", "auto", "--deadline-h", "48", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    chosen = {c["model"]: c["chosen"] for c in data["choices"]}
    assert chosen == {"gpt-4.1-mini": "batch", "o4-mini": "flex"}
    with sessions() as session:
        states = set(session.execute(select(Job.state)).scalars())
        tiers = dict(session.execute(select(Generation.task, Generation.price_tier)).all())
    assert states == {"succeeded"}
    assert tiers == {"summary": "batch", "fact_check": "flex"}
    assert sum(1 for part in data["runs"] if part["mode"] == "batch") == 2  # submit, follow
    assert n == 6
