"""The ledger bills exactly what the SDK saw, and counts what it did not bill."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from pipeline.money.pricing import Tier, Usage, tier_of
from pipeline.simulator import SimulatorServer
from tests.simulator.conftest import MakeSim
from tests.simulator.support import (
    LONG_INSTRUCTIONS,
    PRICES,
    ledger_cost,
    message,
    sdk,
    text_block,
    usage_of,
)


def test_ledger_total_equals_the_usage_the_sdk_saw(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """Standard, cached, flex, reasoning, streamed and incomplete answers add up to the cent."""
    seen: list[tuple[str, Tier, Usage]] = []

    def keep(r: openai.types.responses.Response) -> None:
        seen.append((r.model, tier_of(r.service_tier), usage_of(r)))

    for n in range(3):
        keep(
            client.responses.create(
                model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input=f"{n}"
            )
        )
    keep(client.responses.create(model="o4-mini", input="x", service_tier="flex"))
    keep(
        client.responses.create(
            model="o4-mini", instructions=LONG_INSTRUCTIONS, input="a", service_tier="flex"
        )
    )
    keep(
        client.responses.create(
            model="o4-mini", instructions=LONG_INSTRUCTIONS, input="b", service_tier="flex"
        )
    )
    keep(
        client.responses.create(
            model="gpt-5-mini", input="x", reasoning={"effort": "high"}, max_output_tokens=100
        )
    )
    with client.responses.stream(model="gpt-4.1", input="x") as stream:
        keep(stream.get_final_response())
    sim.script("500", "drop", "429", "stream_fail")
    for _ in range(3):
        with pytest.raises(openai.APIError):
            client.responses.create(model="gpt-4.1", input="x")
    list(client.responses.create(model="gpt-4.1", input="x", stream=True))
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="o4-mini", input="x", temperature=1)

    assert any(u.cached_tokens for _, _, u in seen), "the scenario should include cache hits"
    expected = sum((PRICES.cost(m, u, t) for m, t, u in seen), Decimal(0))
    assert ledger_cost(sim) == expected
    totals = sim.ledger()["totals"]
    assert totals["input_tokens"] == sum(u.input_tokens for _, _, u in seen)
    assert totals["cached_tokens"] == sum(u.cached_tokens for _, _, u in seen)
    assert totals["output_tokens"] == sum(u.output_tokens for _, _, u in seen)
    assert totals["reasoning_tokens"] == sum(u.reasoning_tokens for _, _, u in seen)
    assert totals["requests"] == {
        "completed": 7,
        "incomplete": 1,
        "failed": 1,
        "429": 1,
        "4xx": 1,
        "5xx": 1,
        "dropped": 1,
    }
    flex = sim.ledger()["models"]["o4-mini"]["flex"]
    flex_usage = sum((u for m, t, u in seen if t == "flex"), Usage())
    assert Decimal(flex["cost_usd"]) == PRICES.cost("o4-mini", flex_usage, "flex")


async def test_max_in_flight_and_tokens_admitted(make_sim: MakeSim) -> None:
    """Concurrency and TPM consumption are recorded for benchmarks."""
    sim = make_sim(latency_scale=1.0, base_latency_s=0.3, output_token_s=0.0)
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as client:
        results = await asyncio.gather(
            *(
                client.responses.create(model="gpt-4.1-mini", input="x", max_output_tokens=50)
                for _ in range(6)
            )
        )
    ledger = sim.ledger()
    assert ledger["max_in_flight"] == 6 and ledger["in_flight"] == 0
    admitted = sum(r.usage.input_tokens + 50 for r in results if r.usage)
    assert ledger["rate_limits"]["gpt-4.1-mini"]["tokens_admitted"] == admitted
    assert ledger["retry_counts"] == {"0": 6}


def test_reset_clears_everything(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """After reset: empty ledger, cold cache, full buckets, stored answers gone."""
    client.responses.create(model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input="x")
    stored = client.responses.create(
        model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input="x"
    )
    assert stored.usage is not None and stored.usage.input_tokens_details.cached_tokens > 0
    sim.reset()
    assert sim.ledger()["totals"]["requests"]["completed"] == 0
    assert sim.ledger()["rate_limits"] == {}
    again = client.responses.create(model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input="x")
    assert again.usage is not None and again.usage.input_tokens_details.cached_tokens == 0
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(stored.id)


def test_runtime_configure_changes_limits(make_sim: MakeSim) -> None:
    """configure() swaps limits on a running simulator."""
    sim = make_sim()
    sim.configure(model_rpm={"gpt-4.1-mini": 1})
    with sdk(sim) as client:
        client.responses.create(model="gpt-4.1-mini", input="x")
        with pytest.raises(openai.RateLimitError):
            client.responses.create(model="gpt-4.1-mini", input="x")
    with pytest.raises(ValueError):
        sim.configure(cache_machines=2)


def test_ledger_bills_cache_writes(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """GPT-5.6 writes (implicit, explicit, prewarm, streamed, flex) are billed as the SDK saw."""
    seen: list[tuple[str, Tier, Usage]] = []

    def keep(r: openai.types.responses.Response) -> None:
        seen.append((r.model, tier_of(r.service_tier), usage_of(r)))

    shared = message("developer", text_block(LONG_INSTRUCTIONS, breakpoint=True))
    explicit = {"mode": "explicit"}
    keep(
        client.responses.create(
            model="gpt-5.6-luna",
            input=[shared],
            prompt_cache_options={**explicit, "prewarm": True},
        )
    )
    for n in range(3):
        keep(
            client.responses.create(
                model="gpt-5.6-luna",
                input=[shared, message("user", text_block(f"Article {n}."))],
                prompt_cache_options=explicit,
            )
        )
    keep(
        client.responses.create(
            model="gpt-5.6-luna", input=[shared, {"role": "user", "content": "x"}]
        )
    )
    keep(
        client.responses.create(
            model="gpt-5.6-terra",
            instructions=LONG_INSTRUCTIONS,
            input="Implicit, flex.",
            service_tier="flex",
        )
    )
    with client.responses.stream(
        model="gpt-5.6-sol", instructions=LONG_INSTRUCTIONS, input="Streamed."
    ) as stream:
        keep(stream.get_final_response())
    keep(client.responses.create(model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input="x"))

    writes = sum(u.cache_write_tokens for _, _, u in seen)
    assert writes > 0 and any(u.cached_tokens for m, _, u in seen if m == "gpt-5.6-luna")
    expected = sum((PRICES.cost(m, u, t) for m, t, u in seen), Decimal(0))
    assert ledger_cost(sim) == expected
    data = sim.ledger()
    assert data["totals"]["cache_write_tokens"] == writes
    assert data["cache"]["cache_write_tokens"] == writes and data["cache"]["prewarms"] == 1
    flex = data["models"]["gpt-5.6-terra"]["flex"]
    assert flex["cache_write_tokens"] > 0
    [(_, _, terra)] = [s for s in seen if s[0] == "gpt-5.6-terra"]
    assert Decimal(flex["cost_usd"]) == PRICES.cost("gpt-5.6-terra", terra, "flex")
    assert PRICES.price("gpt-5.6-terra", "flex").write_rate == Decimal("1.25")


def test_prices_fall_back_to_the_packaged_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A config dir without pricing.toml: the simulator prices from the package's copy."""
    from pipeline.settings import get_settings, packaged_config_dir
    from pipeline.simulator.config import SimulatorConfig
    from pipeline.simulator.state import resolve_pricing_path

    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        assert resolve_pricing_path(SimulatorConfig()) == packaged_config_dir() / "pricing.toml"
        assert resolve_pricing_path(SimulatorConfig()).is_file()
        (tmp_path / "pricing.toml").write_text("")
        assert resolve_pricing_path(SimulatorConfig()) == tmp_path / "pricing.toml"
        mine = SimulatorConfig(pricing_path=tmp_path / "mine.toml")
        assert resolve_pricing_path(mine) == tmp_path / "mine.toml"
    finally:
        get_settings.cache_clear()
