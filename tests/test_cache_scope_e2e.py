"""The operator's report, end to end: a rehearsal's answers are never served to another server.

Real engine, real SDK over HTTP, in-process simulators on free ports, one response-cache
folder shared by every run (the default location, as on the operator's machine). The
simulators' ledgers say what was sent and billed; the database says what was served.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine

from pipeline.client.cache import cache_stats
from pipeline.settings import Settings
from tests.engine_support import (
    CONFIG_DIR,
    billed_usd,
    generations,
    ledger_requests,
    recorded_cost,
    requeue_succeeded,
    run_engine,
    seed,
    simulator,
    states,
)


def default_cache_settings(database_url: str, base_url: str, key: str) -> Settings:
    """A run against ``base_url`` as ``key``, with the response cache where it lives by default."""
    return Settings(
        database_url=database_url,
        config_dir=CONFIG_DIR,
        openai_base_url=base_url,
        openai_api_key=SecretStr(key),
    )


def test_a_rehearsal_is_never_served_to_another_server(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """After a run on simulator A, the same jobs sent to simulator B reach B and are billed."""
    ids = seed(engine, ["summary", "headline"], n=2)
    with simulator() as sim_a, simulator() as sim_b:
        assert sim_a.base_url != sim_b.base_url
        rehearsal = default_cache_settings(database_url, sim_a.base_url, "sk-simulator")
        first = run_engine(rehearsal)
        assert first.totals.succeeded == len(ids)
        assert cache_stats(rehearsal.cache_dir).entries == len(ids)  # the answers are cached
        a_before = sim_a.ledger()["totals"]

        assert requeue_succeeded(engine) == len(ids)
        real = default_cache_settings(database_url, sim_b.base_url, "sk-simulator")
        assert real.cache_dir == rehearsal.cache_dir  # one folder, as on the operator's machine
        second = run_engine(real)
        b_requests, b_billed = ledger_requests(sim_b), billed_usd(sim_b)
        a_after = sim_a.ledger()["totals"]

    assert a_after == a_before  # A saw nothing of the second run
    assert b_requests.get("completed") == len(ids) and b_billed > 0
    again = generations(engine, second.run_id)
    assert sorted(g.job_id for g in again) == ids
    assert not any(g.from_cache for g in again) and all(g.attempts >= 1 for g in again)
    assert sum((g.cost_usd for g in again), Decimal(0)) == b_billed
    assert second.totals.from_cache == 0 and second.totals.cost_usd == b_billed
    assert recorded_cost(engine) == Decimal(a_before["cost_usd"]) + b_billed
    scopes = cache_stats(real.cache_dir).scopes
    assert sorted(s.entries for s in scopes) == [len(ids), len(ids)]  # one set per server
    assert states(engine) == {"succeeded": len(ids)}


def test_another_api_key_on_the_same_server_is_not_served(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Answers paid by one key are sent again for another key, and served again for the first."""
    ids = seed(engine, ["summary"], n=2)
    with simulator() as sim:
        run_engine(default_cache_settings(database_url, sim.base_url, "sk-account-a"))
        paid_once = ledger_requests(sim)["completed"]

        requeue_succeeded(engine)
        other = run_engine(default_cache_settings(database_url, sim.base_url, "sk-account-b"))
        paid_twice = ledger_requests(sim)["completed"]

        requeue_succeeded(engine)
        same = run_engine(default_cache_settings(database_url, sim.base_url, "sk-account-a"))
        paid_after = ledger_requests(sim)["completed"]

    assert (paid_once, paid_twice, paid_after) == (len(ids), 2 * len(ids), 2 * len(ids))
    assert other.totals.from_cache == 0
    assert same.totals.from_cache == len(ids) and same.totals.cost_usd == 0
