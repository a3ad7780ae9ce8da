"""Runs on each prompt-cache regime, end to end through the simulator over HTTP.

GPT-5.6+ (paid writes, explicit breakpoints, prewarms), a grid model that accepts 24h
retention (gpt-4.1), and grid models that refuse it (gpt-5-mini): the requests carry only the
fields the model takes, cache writes are recorded, and the recorded cost equals the bill.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pipeline.run.dryrun import dry_run
from pipeline.run.runner import RunOptions
from tests.engine_support import (
    CONFIG_DIR,
    RequestLog,
    engine_settings,
    generations,
    job_rows,
    recorded_cost,
    requeue_succeeded,
    run_engine,
    seed,
    simulator,
)


def config_for(tmp_path: Path, model: str) -> Path:
    """The repository's config with every gpt-4.1-mini profile moved to ``model``."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    profiles = (target / "profiles.toml").read_text(encoding="utf-8")
    profiles = profiles.replace('model = "gpt-4.1-mini"', f'model = "{model}"')
    if model.startswith("gpt-5"):  # reasoning models take no temperature / top_p
        profiles = re.sub(r"^(temperature|top_p) = .*$", "", profiles, flags=re.M)
    (target / "profiles.toml").write_text(profiles, encoding="utf-8")
    return target


def test_gpt56_run_writes_at_breakpoints_prewarms_and_matches_the_bill(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """On gpt-5.6-luna: explicit mode, writes recorded, one prewarm, cost == bill, no 4xx."""
    config = config_for(tmp_path, "gpt-5.6-luna")
    ids = seed(engine, ["summary", "headline"], n=6)
    log = RequestLog()
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        forecast = dry_run(settings, RunOptions())
        summary = run_engine(settings, sdk=log.sdk(settings))
        ledger = sim.ledger()

    assert ledger["totals"]["requests"]["4xx"] == 0
    assert {job.state for job in job_rows(engine)} == {"succeeded"}
    rows = generations(engine)
    prewarms = [g for g in rows if g.status == "prewarm"]
    answers = [g for g in rows if g.status == "completed"]
    assert sorted(g.job_id for g in answers) == ids
    assert len(prewarms) == ledger["cache"]["prewarms"] >= 1
    assert all(g.output_tokens == 0 and g.cache_write_tokens > 0 for g in prewarms)
    writes = sum(g.cache_write_tokens for g in rows)
    assert writes == ledger["totals"]["cache_write_tokens"] > 0
    assert sum(g.cached_tokens for g in rows) == ledger["totals"]["cached_tokens"] > 0
    assert recorded_cost(engine) == Decimal(ledger["totals"]["cost_usd"]) == summary.totals.cost_usd
    assert summary.totals.cache_write_tokens == writes

    for body in log.bodies:
        assert body["prompt_cache_options"]["mode"] == "explicit"
        assert body["prompt_cache_options"]["ttl"] == "30m"
        assert "prompt_cache_retention" not in body and "instructions" not in body
        assert body["prompt_cache_key"] == f"cg-run-{summary.run_id}"
    prewarm_bodies = [b for b in log.bodies if b["prompt_cache_options"].get("prewarm")]
    assert len(prewarm_bodies) == len(prewarms)
    # Nobody writes the per-job part: breakpoints sit on shared parts only.
    for body in log.bodies:
        last = body["input"][-1]["content"]
        if not body["prompt_cache_options"].get("prewarm"):
            assert "prompt_cache_breakpoint" not in last[0]

    achieved = summary.totals.cached_tokens / summary.totals.input_tokens
    assert abs(forecast.cached_ratio - achieved) < 0.05
    assert forecast.cache_write_tokens == pytest.approx(writes, rel=0.05)


@pytest.mark.parametrize(("model", "retention"), [("gpt-4.1", "24h"), ("gpt-5-mini", None)])
def test_grid_run_asks_24h_only_where_the_model_takes_it(
    database_url: str, engine: Engine, tmp_path: Path, model: str, retention: str | None
) -> None:
    """gpt-4.1 gets prompt_cache_retention 24h; gpt-5-mini gets none (it refuses it)."""
    config = config_for(tmp_path, model)
    seed(engine, ["summary", "headline"], n=4)
    log = RequestLog()
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        summary = run_engine(settings, sdk=log.sdk(settings))
        ledger = sim.ledger()

    assert ledger["totals"]["requests"]["4xx"] == 0
    # (gpt-5-mini reasons at medium effort by default and may hit max_output_tokens: incomplete
    # answers are answers; what matters here is that no request was refused.)
    assert summary.totals.requests == 8 and summary.totals.failed == 0
    assert {b.get("prompt_cache_retention") for b in log.bodies} == {retention}
    assert all("prompt_cache_options" not in b for b in log.bodies)
    assert all(b["prompt_cache_key"].startswith("cg-") for b in log.bodies)
    assert sum(g.cache_write_tokens for g in generations(engine)) == 0
    assert recorded_cost(engine) == Decimal(ledger["totals"]["cost_usd"])


def test_profile_lifetime_the_model_refuses_stops_before_any_request(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """prompt_cache_lifetime = "24h" on gpt-4.1-mini is a config error naming the profile."""
    config = config_for(tmp_path, "gpt-4.1-mini")
    profiles = (config / "profiles.toml").read_text(encoding="utf-8")
    profiles = profiles.replace(
        "[profiles.summary]\n", '[profiles.summary]\nprompt_cache_lifetime = "24h"\n'
    )
    (config / "profiles.toml").write_text(profiles, encoding="utf-8")
    seed(engine, ["summary"], n=1)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        with pytest.raises(Exception, match=r"profiles\.summary\.prompt_cache_lifetime"):
            run_engine(settings)
        assert sum(sim.ledger()["totals"]["requests"].values()) == 0


@pytest.mark.parametrize("model", ["gpt-5.6-luna", "gpt-4.1-mini"])
def test_next_dry_run_forecast_is_within_5_percent(
    database_url: str, engine: Engine, tmp_path: Path, model: str
) -> None:
    """After a run, a dry run over the same jobs forecasts its cost and cached share within 5%.

    The dry run learns each task's output length from the run's generations; the cached
    tokens come from the plan (breakpoints on 5.6, buckets sharing machines before).
    """
    config = config_for(tmp_path, model)
    seed(engine, ["summary", "headline"], n=12)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        summary = run_engine(settings)
        ledger = sim.ledger()
    billed = Decimal(ledger["totals"]["cost_usd"])
    assert requeue_succeeded(engine) == 24
    forecast = dry_run(settings, RunOptions())
    achieved = summary.totals.cached_tokens / summary.totals.input_tokens
    assert abs(forecast.cached_ratio - achieved) < 0.05
    assert abs(forecast.cost_usd - billed) / billed < Decimal("0.05")
