"""What a plan should cost, before anything is sent (the dry run), and what caching saves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pipeline.money import PriceTable, PromptCachePolicy, TierPrice, Usage, cost_usd, tier_of
from pipeline.planning.planner import Plan, PlannedRequest
from pipeline.prompts import MESSAGE_OVERHEAD_TOKENS, Profile, count_tokens


@dataclass(frozen=True)
class Forecast:
    """Expected tokens and cost of a plan, and its cost if nothing were cached."""

    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost_usd: Decimal
    uncached_cost_usd: Decimal
    cache_write_tokens: int = 0
    prewarms: int = 0

    @property
    def savings_usd(self) -> Decimal:
        """What the expected prompt-cache hits save."""
        return self.uncached_cost_usd - self.cost_usd

    @property
    def cached_ratio(self) -> float:
        """Expected cached share of input tokens."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0


# Output tokens expected per (task, model), e.g. the mean of recent completed generations.
OutputHistory = Mapping[tuple[str, str], float]


def forecast(
    plan: Plan,
    prices: PriceTable,
    *,
    output_ratio: float = 0.5,
    on: dt.date | None = None,
    history: OutputHistory | None = None,
) -> Forecast:
    """Price ``plan``: its prompt and expected cached tokens, and its expected output.

    Output (reasoning included, as the API bills it) is what ``history`` says a (task, model)
    produces, else ``output_ratio`` of the request's ``max_output_tokens``; a prewarm has
    none. Expected cache writes (GPT-5.6+) are priced at the write rate. Each request is
    priced at its profile's tier (``flex`` or standard) on the day ``on`` (default: the
    newest prices). The uncached cost is the same requests without prewarms and with every
    input token at the input rate. Raises ``PricingError`` for a model without a price, so a
    run is refused before any request is sent.
    """
    if output_ratio < 0:
        raise ValueError(f"output_ratio must be >= 0, got {output_ratio}")
    price_of: dict[tuple[str, str | None], TierPrice] = {}
    total = Usage()
    cost = uncached = Decimal(0)
    prewarms = 0
    for planned in plan.requests:
        request = planned.request
        key = (request.model, request.profile.service_tier)
        price = price_of.get(key)
        if price is None:
            price = price_of[key] = prices.price(request.model, tier_of(key[1]), on)
        usage = expected_usage(planned, output_ratio, history)
        total += usage
        cost += cost_usd(usage, price)
        if planned.prewarm:
            prewarms += 1
        else:
            uncached += cost_usd(Usage(usage.input_tokens, 0, usage.output_tokens), price)
    return Forecast(
        requests=len(plan.requests),
        input_tokens=total.input_tokens,
        cached_tokens=total.cached_tokens,
        output_tokens=total.output_tokens,
        cost_usd=cost,
        uncached_cost_usd=uncached,
        cache_write_tokens=total.cache_write_tokens,
        prewarms=prewarms,
    )


TOKENS_PER_WORD = 1.3
WORD_BOUND_SHARE = 0.8


def expected_usage(
    planned: PlannedRequest, output_ratio: float = 0.5, history: OutputHistory | None = None
) -> Usage:
    """The usage ``planned`` is expected to report (output from ``history``, else at
    ``output_ratio`` of its cap, or near its checks' word bound when it has one; capped at
    ``max_output_tokens``)."""
    request = planned.request
    cap = request.profile.max_output_tokens
    known = None if history is None else history.get((request.task, request.model))
    guess = output_ratio * cap if known is None else min(known, cap)
    checks = request.profile.checks
    if known is None and checks is not None and checks.max_words is not None:
        # A task bounded in words writes about that many, whatever its cap: 80% of the bound
        # at the ~1.3 tokens an English word takes, plus any reasoning inside the ratio's guess.
        guess = min(guess, WORD_BOUND_SHARE * checks.max_words * TOKENS_PER_WORD)
    output = 0 if planned.prewarm else round(guess)
    return Usage(
        input_tokens=planned.prompt_tokens,
        cached_tokens=planned.expected_cached_tokens,
        output_tokens=output,
        cache_write_tokens=planned.expected_cache_write_tokens,
    )


def follower_forecast(
    parents: Sequence[PlannedRequest],
    follower: Profile,
    prices: PriceTable,
    policy: PromptCachePolicy,
    *,
    output_ratio: float = 0.5,
    history: OutputHistory | None = None,
) -> Forecast:
    """What a task chained after ``parents`` would cost (a grader, before it is turned on).

    Each follower request is its parent's prompt, the parent's expected answer and its own
    turn (instructions and per-job part). It is sent after its parent on its key, so the
    parent's prompt is read from the prompt cache where the model caches it (grid models; on
    GPT-5.6+ only what a breakpoint wrote, counted here as nothing) and the models match.
    """
    model = follower.model
    price = prices.price(model, tier_of(follower.service_tier))
    turn = (
        count_tokens(follower.instructions_text, model)
        + count_tokens(follower.job_template, model)
        + 3 * MESSAGE_OVERHEAD_TOKENS
    )
    known = None if history is None else history.get((follower.task, model))
    cap = follower.max_output_tokens
    output = round(output_ratio * cap if known is None else min(known, cap))
    total = Usage()
    cost = uncached = Decimal(0)
    count = 0
    for parent in parents:
        if parent.prewarm:
            continue
        answer = expected_usage(parent, output_ratio, history).output_tokens
        prefix = parent.prompt_tokens
        cached = 0
        if parent.request.model == model and not policy.explicit:
            cached = policy.cacheable(prefix)
        usage = Usage(
            input_tokens=prefix + answer + turn, cached_tokens=cached, output_tokens=output
        )
        total += usage
        cost += cost_usd(usage, price)
        uncached += cost_usd(Usage(usage.input_tokens, 0, output), price)
        count += 1
    return Forecast(
        requests=count,
        input_tokens=total.input_tokens,
        cached_tokens=total.cached_tokens,
        output_tokens=total.output_tokens,
        cost_usd=cost,
        uncached_cost_usd=uncached,
    )
