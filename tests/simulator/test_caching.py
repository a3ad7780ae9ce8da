"""Grid prompt caching (models before GPT-5.6): 1024 minimum, 128 steps, write after finish, TTL,
routing and overflow."""

from __future__ import annotations

import asyncio
import random

import openai
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.simulator import SimulatorConfig, SimulatorServer
from pipeline.simulator.caching import PromptCache
from pipeline.simulator.clock import SimClock
from pipeline.simulator.prompt import prompt_token_ids
from tests.simulator.conftest import MakeSim
from tests.simulator.support import LONG_INSTRUCTIONS, sdk


def ask(
    client: openai.OpenAI,
    text: str = "Summarise article 1.",
    *,
    model: str = "gpt-4.1-mini",
    **extra: object,
) -> int:
    """Send a long-prefix request; return its cached tokens."""
    r = client.responses.create(
        model=model,
        instructions=LONG_INSTRUCTIONS,
        input=text,
        **extra,  # type: ignore[arg-type]
    )
    assert r.usage is not None
    return r.usage.input_tokens_details.cached_tokens


def test_short_prompts_never_cache(client: openai.OpenAI) -> None:
    """Below 1024 tokens cached_tokens stays 0 however often the prompt repeats."""
    for _ in range(3):
        r = client.responses.create(model="gpt-4.1-mini", instructions="Short.", input="Hello")
        assert r.usage is not None and r.usage.input_tokens_details.cached_tokens == 0


def test_second_request_hits_in_128_token_steps(client: openai.OpenAI) -> None:
    """First request misses; a later one sharing the prefix gets a multiple of 128 >= 1024."""
    assert ask(client, "Summarise article 1.") == 0
    r = client.responses.create(
        model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input="Headline for article 2."
    )
    assert r.usage is not None
    cached = r.usage.input_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    assert cached < r.usage.input_tokens
    # the shared part is instructions (+ header): a different question cannot hit beyond it
    shared = 2 + 4 + len(LONG_INSTRUCTIONS.split()) * 2  # generous upper bound
    assert cached <= shared


def test_identical_prompt_caches_all_full_blocks(client: openai.OpenAI) -> None:
    """An identical repeat caches every full block but the last token."""
    ask(client)
    r = client.responses.create(
        model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input="Summarise article 1."
    )
    assert r.usage is not None
    total = r.usage.input_tokens
    assert r.usage.input_tokens_details.cached_tokens == (total - 1) // 128 * 128


async def test_concurrent_cold_requests_all_miss(make_sim: MakeSim) -> None:
    """Simultaneous first requests miss: the prefix is written only when one finishes."""
    sim = make_sim(latency_scale=1.0, base_latency_s=0.4, output_token_s=0.0)
    async with openai.AsyncOpenAI(base_url=sim.base_url, api_key="k", max_retries=0) as client:

        async def one(n: int) -> int:
            r = await client.responses.create(
                model="gpt-4.1-mini", instructions=LONG_INSTRUCTIONS, input=f"Article {n}."
            )
            assert r.usage is not None
            return r.usage.input_tokens_details.cached_tokens

        assert await asyncio.gather(*(one(n) for n in range(5))) == [0] * 5
        assert await one(99) >= 1024


def test_cache_expires_after_idle_ttl(make_sim: MakeSim) -> None:
    """Idle longer than cache_ttl_s: miss; within it: hit (and a hit refreshes the entry)."""
    sim = make_sim(cache_ttl_s=300)
    with sdk(sim) as client:
        ask(client)
        sim.advance(290)
        assert ask(client) >= 1024
        sim.advance(290)  # 290 s since the last use: still warm
        assert ask(client) >= 1024
        sim.advance(301)
        assert ask(client) == 0


def test_extended_retention_survives_hours(make_sim: MakeSim) -> None:
    """prompt_cache_retention=24h keeps the prefix for a day of idleness (gpt-4.1 accepts it)."""
    sim = make_sim()
    with sdk(sim) as client:
        ask(client, model="gpt-4.1", prompt_cache_retention="24h")
        sim.advance(6 * 3600)
        assert ask(client, model="gpt-4.1", prompt_cache_retention="24h") >= 1024
        sim.advance(25 * 3600)
        assert ask(client, model="gpt-4.1") == 0


def _machine_of(sim: SimulatorServer, key: str) -> int:
    """The machine a LONG_INSTRUCTIONS prompt with ``key`` is routed to (no overflow)."""
    body = {"model": "gpt-4.1-mini", "instructions": LONG_INSTRUCTIONS, "input": "x"}
    ids = prompt_token_ids(body)
    return sim.state.cache.lookup("gpt-4.1-mini", ids, key, overflow=False).machine


def test_prompt_cache_key_changes_routing(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """The key is hashed with the prefix: a key routed to another machine starts cold."""
    home = _machine_of(sim, "bucket-0")
    other = next(f"bucket-{n}" for n in range(1, 100) if _machine_of(sim, f"bucket-{n}") != home)
    assert ask(client, prompt_cache_key="bucket-0") == 0
    assert ask(client, prompt_cache_key="bucket-0") >= 1024
    assert ask(client, prompt_cache_key=other) == 0
    assert ask(client, prompt_cache_key=other) >= 1024


def test_overflow_above_15_per_minute_reduces_hits(make_sim: MakeSim) -> None:
    """30 requests in one minute for one prefix+key overflow to cold machines; spaced out, not."""

    def hits(sim: SimulatorServer, spacing_s: float) -> int:
        with sdk(sim) as client:
            count = 0
            for n in range(30):
                count += ask(client, f"Article {n}.", prompt_cache_key="k") > 0
                sim.advance(spacing_s)
            return count

    burst = make_sim(seed=3)
    spaced = make_sim(seed=3)
    burst_hits, spaced_hits = hits(burst, 0.0), hits(spaced, 5.0)
    assert spaced_hits == 29  # only the very first request is cold
    assert burst_hits < spaced_hits
    assert burst.ledger()["cache"]["overflow_routes"] == 15
    assert spaced.ledger()["cache"]["overflow_routes"] == 0


def test_cache_is_per_model(client: openai.OpenAI) -> None:
    """The same prompt on another model starts cold."""
    ask(client)
    r = client.responses.create(model="gpt-4.1", instructions=LONG_INSTRUCTIONS, input="x")
    assert r.usage is not None and r.usage.input_tokens_details.cached_tokens == 0


@settings(max_examples=60, deadline=None)
@given(
    first=st.integers(min_value=0, max_value=3000),
    second=st.integers(min_value=1, max_value=3000),
    shared=st.integers(min_value=0, max_value=3000),
)
def test_cached_tokens_rules_hold_for_any_prompts(first: int, second: int, shared: int) -> None:
    """cached is 0 or a multiple of 128 in [1024, shared prefix], always below the input."""
    cache = PromptCache(SimulatorConfig(cache_machines=1), SimClock(frozen=True))
    rng = random.Random(first * 7919 + second)
    a = [rng.randrange(50_000) for _ in range(first)]
    common = a[: min(shared, first)]
    b = common + [50_001 + rng.randrange(1000) for _ in range(second)]
    cache.write(cache.lookup("gpt-4.1-mini", a))
    cached = cache.lookup("gpt-4.1-mini", b).cached_tokens
    assert cached == 0 or (cached >= 1024 and cached % 128 == 0)
    assert cached <= len(common) and cached < len(b)
    if len(common) >= 1024 + 128 and len(b) > len(common):
        assert cached == len(common) // 128 * 128


def test_a_full_machine_evicts_the_idlest_prefixes() -> None:
    """Past cache_max_blocks a machine keeps the most recently used prefixes."""
    clock = SimClock(frozen=True)
    cache = PromptCache(SimulatorConfig(cache_machines=1, cache_max_blocks=40), clock)
    prompts = [[p * 100_000 + i for i in range(1300)] for p in range(5)]  # 10 blocks each
    for prompt in prompts:
        cache.write(cache.lookup("gpt-4.1-mini", prompt))
        clock.advance(1)
    assert cache.entries() <= 40
    assert cache.lookup("gpt-4.1-mini", prompts[-1]).cached_tokens == 1280
    assert cache.lookup("gpt-4.1-mini", prompts[0]).cached_tokens == 0
