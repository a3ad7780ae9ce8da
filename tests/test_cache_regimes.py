"""Prompt caching per model generation: policies, request shapes, breakpoints, prewarms, advice.

Pure logic over values: requests are built from segments with chosen token counts (the
helpers of ``test_planning``), policies from the repository's ``config/pricing.toml``.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, PricingError
from pipeline.money.cachepolicy import CachePolicySpec, resolve_policy
from pipeline.money.pricing import PriceTable, Usage, cost_usd, load_pricing
from pipeline.planning import forecast, plan, prefix_advice
from pipeline.planning.shape import (
    accounting_key,
    cache_fields,
    lifetime_problem,
    request_key,
    static_breakpoints,
)
from pipeline.prompts.requests import CacheFields, canonical_request, response_cache_key
from pipeline.run.config import cache_policies
from tests.test_planning import make_profile, newsroom, req, seg

ROOT = Path(__file__).resolve().parents[1]
LUNA = "gpt-5.6-luna"


@pytest.fixture(scope="module")
def prices() -> PriceTable:
    return load_pricing(ROOT / "config" / "pricing.toml")


def on_model(requests: list, model: str) -> list:
    """The same requests sent to ``model`` (profile and format segment follow)."""
    out = []
    for r in requests:
        profile = dataclasses.replace(r.profile, model=model)
        first = dataclasses.replace(r.segments[0], digest=f"{model}-fmt")
        out.append(dataclasses.replace(r, profile=profile, segments=(first, *r.segments[1:])))
    return out


# -- the policy table ----------------------------------------------------------------------


def test_policies_follow_the_three_regimes(prices: PriceTable) -> None:
    """4.1-mini: 128 grid, routing key; 5.5: 2,048 grid, 24h only; 5.6: paid breakpoints."""
    mini, five5, luna = (prices.policy(m) for m in ("gpt-4.1-mini", "gpt-5.5", LUNA))
    assert (mini.regime, mini.step, mini.key_routes, mini.write) == ("grid", 128, True, 1)
    assert mini.read == Decimal("0.25") and mini.long_retention is None
    assert (five5.threshold, five5.cacheable(3000), five5.cacheable(2000)) == (2048, 2048, 0)
    assert five5.retention == ("24h",) and five5.lifetime_s(None) == 86_400
    assert luna.explicit and not luna.key_routes and luna.write == Decimal("1.25")
    assert luna.read == Decimal("0.1") and luna.cacheable(1500) == 1500
    assert luna.long_retention == "30m" and luna.max_writes == 4
    assert prices.policy("gpt-4.1-2025-04-14").retention == ("in_memory", "24h")


def test_unknown_model_policy_names_the_file(prices: PriceTable) -> None:
    """A model with a price but no policy is refused with the file and the section to add."""
    with pytest.raises(PricingError, match=r"pricing\.toml: no prompt-cache policy.*gpt-9"):
        prices.policy("gpt-9")


def test_write_rate_comes_from_the_policy_and_halves_on_batch(prices: PriceTable) -> None:
    """Writes cost 1.25x the tier's input: standard 0.25, batch and flex 0.125 per 1M."""
    assert prices.price(LUNA).write_rate == Decimal("0.25")
    assert prices.price(LUNA, "batch").write_rate == Decimal("0.125")
    assert prices.price(LUNA, "flex").write_rate == Decimal("0.125")
    assert prices.price("gpt-4.1-mini").cache_write is None


def test_cost_is_ordinary_plus_cached_plus_writes(prices: PriceTable) -> None:
    """Writes are a part of input, not an added fee: 5,000 ordinary + 2,000 read + 3,000 written."""
    usage = Usage(
        input_tokens=10_000, cached_tokens=2_000, output_tokens=100, cache_write_tokens=3_000
    )
    expected = 5_000 * Decimal("0.20") + 2_000 * Decimal("0.02") + 3_000 * Decimal("0.25")
    expected += 100 * Decimal("1.20")
    assert cost_usd(usage, prices.price(LUNA)) == expected / 1_000_000


def test_spec_rejects_fields_of_the_other_regime() -> None:
    """A grid policy with a ttl, or a breakpoint policy with a retention, is a config error."""
    with pytest.raises(ValueError, match="ttl"):
        CachePolicySpec(regime="grid", ttl=("30m",))
    with pytest.raises(ValueError, match="retention"):
        CachePolicySpec(regime="breakpoints", retention=("24h",))


def test_padding_break_even_follows_the_guide() -> None:
    """L > M (r + (w - r) / N): 300 tokens pay on 5.6 for 20 requests, not for 2."""
    luna = resolve_policy(LUNA, CachePolicySpec(regime="breakpoints"), Decimal("0.1"))
    # 1024 * (0.1 + 1.15 / 20) = 161.3; 1024 * (0.1 + 1.15 / 2) = 691.2
    assert luna.padding_pays(300, 20) and not luna.padding_pays(300, 2)


# -- request shapes --------------------------------------------------------------------------


def test_grid_request_asks_24h_only_where_the_model_takes_it(prices: PriceTable) -> None:
    """gpt-4.1 gets prompt_cache_retention 24h; gpt-4.1-mini gets no retention field."""
    for model, expected in (("gpt-4.1", "24h"), ("gpt-4.1-mini", None)):
        (r,) = on_model([req(1, 1, [seg("instructions", "s", 1200)])], model)
        (p,) = plan([r], planned_rpm=60, policies={model: prices.policy(model)}).requests
        body = r.body(prompt_cache_key="k", cache=cache_fields(p, prices.policy(model)))
        assert body.get("prompt_cache_retention") == expected
        assert "prompt_cache_options" not in body
        assert all(isinstance(m["content"], str) for m in body["input"])


def test_breakpoint_request_shape(prices: PriceTable) -> None:
    """5.6: developer input_text blocks, breakpoints where planned, explicit mode with ttl."""
    requests = on_model(newsroom(4, layout="instructions_first", style=1200), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    real = next(p for p in chosen.requests if not p.prewarm and p.breakpoints)
    body = real.request.body(
        prompt_cache_key="cg-run-1", cache=cache_fields(real, prices.policy(LUNA))
    )
    assert body["prompt_cache_options"] == {"mode": "explicit", "ttl": "30m"}
    assert "instructions" not in body and "prompt_cache_retention" not in body
    blocks = [m["content"][0] for m in body["input"]]
    assert all(b["type"] == "input_text" for b in blocks)
    marked = [i for i, b in enumerate(blocks) if "prompt_cache_breakpoint" in b]
    # messages skip the format pseudo-segment: segment i is message i - 1
    assert marked == [i - 1 for i in real.breakpoints]
    assert body["input"][0]["role"] == "developer"


def test_prewarm_body_is_the_prefix_only(prices: PriceTable) -> None:
    """A prewarm carries the messages up to its breakpoint and prewarm: true."""
    requests = on_model(newsroom(6, layout="instructions_first", style=1200), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    pre = next(p for p in chosen.requests if p.prewarm)
    body = pre.request.body(cache=cache_fields(pre, prices.policy(LUNA)))
    assert body["prompt_cache_options"]["prewarm"] is True
    assert len(body["input"]) == pre.breakpoints[0]  # segments 1..bp, format excluded
    assert "prompt_cache_breakpoint" in body["input"][-1]["content"][0]


def test_breakpoints_never_change_the_response_cache_key() -> None:
    """Where the planner put breakpoints (or whether it used blocks) keeps the same cache key."""
    r = req(1, 1, [seg("instructions", "s", 1200), seg("article", "a", 400)])
    plain = r.body()
    blocks = r.body(cache=CacheFields(explicit=True, breakpoints=(1,), ttl="30m"))
    assert canonical_request(plain) == canonical_request(blocks)
    assert response_cache_key(plain) == response_cache_key(blocks)


def test_accounting_keys_per_run_or_batch(prices: PriceTable) -> None:
    """On 5.6 the key labels usage (run or batch label), never the planner's routing key."""
    profile = dataclasses.replace(make_profile(model=LUNA), accounting_key="batch")
    assert accounting_key(profile, 7, "election") == "cg-batch-election"
    assert accounting_key(profile, 7, None) == "cg-run-7"
    assert accounting_key(dataclasses.replace(profile, accounting_key="none"), 7, "x") is None
    (r,) = on_model([req(1, 1, [seg("instructions", "s", 1200)])], "gpt-4.1-mini")
    (p,) = plan(
        [r], planned_rpm=60, policies={"gpt-4.1-mini": prices.policy("gpt-4.1-mini")}
    ).requests
    assert request_key(p, prices.policy("gpt-4.1-mini"), 7, None) == p.cache_key


def test_lifetime_a_model_refuses_is_a_config_error(prices: PriceTable) -> None:
    """24h on gpt-4.1-mini and in_memory on 5.6 are refused, naming profile and field."""
    mini = dataclasses.replace(make_profile(), prompt_cache_lifetime="24h")
    assert "does not accept prompt_cache_retention '24h'" in (
        lifetime_problem(mini, prices.policy("gpt-4.1-mini")) or ""
    )
    luna = dataclasses.replace(make_profile(model=LUNA), prompt_cache_lifetime="in_memory")
    with pytest.raises(ConfigError, match=r"profiles\.summary\.prompt_cache_lifetime"):
        cache_policies({"summary": luna}, prices)


# -- breakpoint planning ---------------------------------------------------------------------


def test_breakpoints_sit_where_sharing_stops_and_pay(prices: PriceTable) -> None:
    """Article-first: style guide, section brief and the article (read by the other task)."""
    requests = on_model(newsroom(6, style=1200, sections=2), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    real = [p for p in chosen.requests if not p.prewarm]
    kinds = {tuple(p.request.segments[i].kind for i in p.breakpoints) for p in real}
    assert kinds == {("context", "context", "article")}
    assert all(len(p.breakpoints) <= prices.policy(LUNA).max_writes for p in real)
    assert not any(p.cache_key for p in real)  # no routing keys on 5.6


def test_unshared_article_gets_no_breakpoint(prices: PriceTable) -> None:
    """Instructions-first, one task: each article is read by nobody, so it is never written."""
    requests = on_model(newsroom(6, tasks=("summary",), layout="instructions_first"), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    for p in chosen.requests:
        assert all(p.request.segments[i].kind != "article" for i in p.breakpoints)


def test_group_is_prewarmed_once_and_everyone_waits_for_it(prices: PriceTable) -> None:
    """One prewarm writes the trunk; the group's first request waits for it and reads it."""
    requests = on_model(newsroom(6, style=1200, sections=1), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    prewarms = [p for p in chosen.requests if p.prewarm]
    assert len(prewarms) == 1 and chosen.requests[0].prewarm
    first = chosen.requests[1]
    assert first.wait_for == 0 and first.expected_cached_tokens == prewarms[0].prewarm_tokens
    assert all(p.wait_for is None or p.wait_for < p.index for p in chosen.requests)
    # One section: the trunk is style guide + brief, written once by the prewarm; then each
    # article once, by the first of its two tasks.
    writes = sum(p.expected_cache_write_tokens for p in chosen.requests)
    assert prewarms[0].expected_cache_write_tokens == 1200 + 300
    assert writes == 1200 + 300 + 6 * 1500


def test_warm_breakpoints_skip_the_prewarm(prices: PriceTable) -> None:
    """A second chunk of the same run reads what the first wrote, with no prewarm or wait."""
    requests = on_model(newsroom(6, style=1200, sections=1), LUNA)
    policies = {LUNA: prices.policy(LUNA)}
    first = plan(requests[:6], planned_rpm=60, policies=policies)
    second = plan(requests[6:], planned_rpm=60, policies=policies, warm=first.warmed)
    assert first.prewarms == 1 and second.prewarms == 0
    assert all(p.expected_cached_tokens >= 1200 for p in second.requests)


def test_small_group_has_no_prewarm(prices: PriceTable) -> None:
    """Two requests sharing a prefix: the first writes it itself (a prewarm would cost more)."""
    requests = on_model(newsroom(1, style=1200, sections=1), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    assert chosen.prewarms == 0
    assert chosen.requests[1].wait_for == 0


def test_forecast_prices_writes_and_never_beats_the_bare_cost_wrongly(prices: PriceTable) -> None:
    """Forecast = ordinary + reads + 1.25x writes; it is below the no-cache cost here."""
    requests = on_model(newsroom(20, style=1200), LUNA)
    chosen = plan(requests, planned_rpm=60, policies={LUNA: prices.policy(LUNA)})
    fc = forecast(chosen, prices)
    assert fc.cache_write_tokens == chosen.expected_cache_write_tokens > 0
    assert fc.prewarms == chosen.prewarms
    assert fc.cost_usd < fc.uncached_cost_usd


def test_gpt55_grid_needs_2048_shared_tokens(prices: PriceTable) -> None:
    """On gpt-5.5 a 1,700-token shared prefix caches nothing; with the article, 2,048."""
    policies = {"gpt-5.5": prices.policy("gpt-5.5")}
    short = on_model(
        newsroom(6, tasks=("summary",), style=1200, layout="instructions_first"), "gpt-5.5"
    )
    assert plan(short, planned_rpm=60, policies=policies).expected_cached_tokens == 0
    shared = on_model(newsroom(6, style=1200), "gpt-5.5")  # article-first, two tasks
    chosen = plan(shared, planned_rpm=60, policies=policies)
    assert {p.expected_cached_tokens for p in chosen.requests} <= {0, 2048}
    assert chosen.expected_cached_tokens > 0


def test_static_breakpoint_for_batch_lines(prices: PriceTable) -> None:
    """Batch lines get one breakpoint after instructions + contexts, when long enough."""
    (r,) = newsroom(1, tasks=("summary",), layout="instructions_first", style=1200)[:1]
    assert static_breakpoints(r, prices.policy(LUNA)) == (3,)
    assert static_breakpoints(r, prices.policy("gpt-4.1-mini")) == ()


# -- advice ----------------------------------------------------------------------------------


def test_short_prefix_advice_names_the_lack_and_the_verdict(prices: PriceTable) -> None:
    """A 300-token shared prefix on 5.6: 724 short; padding pays for 40 requests, not for 2.

    Break-even 1024 * (0.1 + 1.15 / N): 131.9 tokens for N = 40, 691.2 for N = 2.
    """
    requests = on_model(
        newsroom(
            40,
            tasks=("summary",),
            layout="instructions_first",
            instructions=100,
            style=100,
            brief=100,
            sections=1,
        ),
        LUNA,
    )
    (advice,) = prefix_advice(requests, {LUNA: prices.policy(LUNA)})
    assert (advice.shared_tokens, advice.lacks, advice.requests) == (300, 724, 40)
    assert advice.padding_pays and "short of the 1,024-token minimum" in advice.line()
    (few,) = prefix_advice(requests[:2], {LUNA: prices.policy(LUNA)})
    assert few.requests == 2 and not few.padding_pays


def test_no_advice_when_the_prefix_caches(prices: PriceTable) -> None:
    """Prefixes over the minimum give no advice."""
    requests = on_model(newsroom(10, style=1200), LUNA)
    assert prefix_advice(requests, {LUNA: prices.policy(LUNA)}) == []
