"""Flex processing: flex-tier pricing, retried "resource unavailable" 429s, and the fallback to
the default tier after the deadline; through the simulator over HTTP where it matters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.client.api import HeadersCallback
from pipeline.client.cache import NullCache
from pipeline.client.clock import FakeClock
from pipeline.client.flex import FlexPolicy, fallback_body, is_flex_unavailable
from pipeline.client.limiter import RateLimiter
from pipeline.client.responses import ResponsesClient
from pipeline.client.result import APIResult
from pipeline.client.retry import RetryPolicy
from pipeline.client.wiring import build_client_stack
from pipeline.db.models import Generation, Run
from pipeline.errors import PermanentAPIError, RateLimited
from pipeline.money.pricing import Usage
from pipeline.run.runner import RunOptions, RunSummary, run_batch_async
from pipeline.settings import Settings
from pipeline.simulator.server import SimulatorServer
from pipeline.simulator.testing import TEST_API_KEY, async_client, start_test_simulator
from tests.test_batchmode import enqueue

FLEX_MODEL = "o4-mini"  # fact_check's model: has a flex price
BODY: dict[str, Any] = {"model": FLEX_MODEL, "input": "Check this.", "service_tier": "flex"}


class MaxJitter(random.Random):
    """Jitter at its top: backoff waits are exactly base * 2**(n-1) (capped)."""

    def random(self) -> float:
        return 1.0


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A simulator with no latency and a frozen clock."""
    server = start_test_simulator()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def flex_settings(settings: Settings, sim: SimulatorServer) -> Settings:
    """Settings pointing at the simulator."""
    return settings.model_copy(
        update={"openai_base_url": sim.base_url, "openai_api_key": SecretStr(TEST_API_KEY)}
    )


def run(
    settings: Settings,
    sim: SimulatorServer,
    *,
    tasks: tuple[str, ...],
    mode: str = "flex",
    retry: RetryPolicy | None = None,
    clock: FakeClock | None = None,
) -> RunSummary:
    """A realtime-engine run on the simulator; retry waits go by a fake clock."""
    clock = clock or FakeClock()

    async def main() -> RunSummary:
        stack = build_client_stack(
            settings,
            sdk=async_client(sim),
            clock=clock,
            retry=retry or RetryPolicy(clock=clock),
            use_cache=False,
        )
        return await run_batch_async(settings, RunOptions(mode=mode, tasks=tasks), stack=stack)

    return asyncio.run(main())


def generations(sessions: sessionmaker[Session]) -> list[Generation]:
    """Every generation, oldest first."""
    with sessions() as session:
        return list(session.execute(select(Generation).order_by(Generation.id)).scalars())


def ledger_cost(sim: SimulatorServer, model: str, tier: str) -> Decimal:
    """What the simulator billed ``model`` at ``tier``."""
    return Decimal(sim.ledger()["models"][model][tier]["cost_usd"])


def test_flex_mode_prices_flex_capable_models_at_the_flex_tier(
    flex_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """--mode flex: o4-mini goes flex and is recorded at what the simulator billed for flex;
    gpt-4.1-mini (no flex price) stays standard."""
    enqueue(sessions, 3, ("fact_check", "summary"))
    summary = run(flex_settings, sim, tasks=("fact_check", "summary"))
    assert summary.totals.succeeded == 6
    gens = generations(sessions)
    tiers = {(g.task, g.price_tier, g.service_tier) for g in gens}
    assert tiers == {("fact_check", "flex", "flex"), ("summary", "standard", "default")}
    flex_cost = sum((g.cost_usd for g in gens if g.price_tier == "flex"), Decimal(0))
    assert flex_cost == ledger_cost(sim, FLEX_MODEL, "flex")
    assert summary.totals.cost_usd == sim.state.ledger.total_cost()
    with sessions() as session:
        assert session.execute(select(Run.mode)).scalar_one() == "flex"


def test_flex_unavailable_is_retried_then_answered_at_flex(
    flex_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Two flex 429s (not billed), then the answer: one generation at the flex tier."""
    enqueue(sessions, 1, ("fact_check",))
    sim.script("flex", "flex")
    run(flex_settings, sim, tasks=("fact_check",))
    (g,) = generations(sessions)
    assert (g.status, g.attempts, g.price_tier) == ("completed", 3, "flex")
    flex = sim.ledger()["models"][FLEX_MODEL]["flex"]
    assert flex["requests"]["429"] == 2 and flex["requests"]["completed"] == 1
    assert g.cost_usd == Decimal(flex["cost_usd"])


def test_flex_falls_back_to_the_default_tier_after_the_deadline(
    flex_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Flex stays unavailable past CONTENTGEN_FLEX_FALLBACK_S: the same request goes to the
    default tier, and is recorded and priced at the tier that answered."""
    enqueue(sessions, 1, ("fact_check",))
    settings = flex_settings.model_copy(update={"flex_fallback_s": 6.0})
    clock = FakeClock()
    # Waits 1, 2, then 4 would end past 6 s: three flex attempts, then the fallback.
    retry = RetryPolicy(clock=clock, base_s=1.0, max_backoff_s=4.0, rng=MaxJitter())
    sim.script("flex", "flex", "flex")
    run(settings, sim, tasks=("fact_check",), retry=retry, clock=clock)
    (g,) = generations(sessions)
    assert (g.status, g.attempts) == ("completed", 4)
    assert (g.service_tier, g.price_tier) == ("default", "standard")
    models = sim.ledger()["models"][FLEX_MODEL]
    assert models["flex"]["requests"]["429"] == 3
    assert models["standard"]["requests"]["completed"] == 1
    assert g.cost_usd == Decimal(models["standard"]["cost_usd"])
    assert clock.slept_s == pytest.approx(3.0)


# -- the client alone ------------------------------------------------------------------------


class Caller:
    """Answers from a queue and records each call's body and timeout."""

    def __init__(self, *answers: APIResult | BaseException) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[dict[str, Any], float]] = []

    async def call(
        self,
        body: Mapping[str, Any],
        *,
        stream: bool,
        timeout_s: float,
        on_headers: HeadersCallback | None = None,
    ) -> APIResult:
        self.calls.append((dict(body), timeout_s))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def ok(tier: str = "flex") -> APIResult:
    return APIResult("resp_1", FLEX_MODEL, "completed", "fine", Usage(10, 0, 5), service_tier=tier)


def unavailable() -> RateLimited:
    return RateLimited(
        "HTTP 429 resource_unavailable: Resource unavailable.",
        status=429,
        code="resource_unavailable",
    )


def client(caller: Caller, limiter: RateLimiter, policy: FlexPolicy) -> ResponsesClient:
    clock = FakeClock()
    return ResponsesClient(
        caller,
        cache=NullCache(),
        limiter=limiter,
        retry=RetryPolicy(clock=clock),
        clock=clock,
        timeout_s=120.0,
        flex=policy,
    )


async def generate(c: ResponsesClient, body: Mapping[str, Any]) -> Any:
    return await c.generate(
        body, estimated_tokens=100, stream=False, cache_ttl_s=None, cache_enabled=False, job_id=1
    )


async def test_flex_attempts_get_the_long_timeout_and_the_fallback_the_normal_one() -> None:
    """900 s per flex attempt; the fallback drops service_tier and uses the usual timeout."""
    caller = Caller(unavailable(), ok("default"))
    limiter = RateLimiter(None, None)
    c = client(caller, limiter, FlexPolicy(timeout_s=900.0, max_attempts=1))
    outcome = await generate(c, BODY)
    assert outcome.ok and outcome.attempts == 2
    (first, t1), (second, t2) = caller.calls
    assert (first["service_tier"], t1) == ("flex", 900.0)
    assert "service_tier" not in second and t2 == 120.0
    assert limiter.stats()["penalties"] == 0  # flex capacity is not our rate limit


async def test_a_permanent_error_at_flex_does_not_fall_back() -> None:
    """A 400 would fail at any tier: no second request."""
    caller = Caller(PermanentAPIError("HTTP 400: bad", status=400))
    outcome = await generate(client(caller, RateLimiter(None, None), FlexPolicy()), BODY)
    assert not outcome.ok and outcome.attempts == 1 and len(caller.calls) == 1


async def test_a_rate_limit_429_on_a_standard_request_still_pauses_the_limiter() -> None:
    """Only flex capacity 429s skip the limiter pause."""
    limiter = RateLimiter(None, None, FakeClock())
    caller = Caller(RateLimited("HTTP 429 rate_limit_exceeded", status=429), ok("default"))
    outcome = await generate(client(caller, limiter, FlexPolicy()), {"model": FLEX_MODEL})
    assert outcome.ok and limiter.stats()["penalties"] == 1


def test_fallback_body_and_unavailable_detection() -> None:
    """The fallback body is the same request without service_tier (or with the one asked)."""
    assert fallback_body(BODY) == {"model": FLEX_MODEL, "input": "Check this."}
    assert fallback_body(BODY, "default")["service_tier"] == "default"
    assert is_flex_unavailable(unavailable())
    assert is_flex_unavailable(RateLimited("We're currently processing too many requests"))
    assert not is_flex_unavailable(RateLimited("Rate limit reached for o4-mini"))
