"""What a plan should cost, before anything is sent (the dry run), and what caching saves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
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

    def __add__(self, other: Forecast) -> Forecast:
        return Forecast(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


# Output tokens expected per (task, model), e.g. the mean of recent completed generations.
OutputHistory = Mapping[tuple[str, str], float]


@dataclass(frozen=True)
class BillFactors:
    """How the server's bill compared with the plan for one (model, layout), in earlier runs.

    ``input`` is the input tokens it billed per token we counted (another tokenizer, hidden
    tokens); ``cached`` the cached share it gave over the share the plan expected (spills,
    evictions, a routing rule that differs from ours); ``write`` the same for cache writes.
    """

    input: float = 1.0
    cached: float = 1.0
    write: float = 1.0

    @classmethod
    def learnt(
        cls,
        *,
        planned_input: int,
        planned_cached: int,
        planned_write: int,
        billed_input: int,
        billed_cached: int,
        billed_write: int,
    ) -> BillFactors:
        """The factors of some requests' planned and billed tokens (1.0 where unknown)."""
        if planned_input <= 0 or billed_input <= 0:
            return cls()
        factor = billed_input / planned_input
        cached = write = 1.0
        if planned_cached > 0:
            cached = (billed_cached / billed_input) / (planned_cached / planned_input)
        if planned_write > 0:
            write = (billed_write / billed_input) / (planned_write / planned_input)
        return cls(input=factor, cached=cached, write=write)


# What the bill was against the plan per (model, layout) in earlier runs.
BillHistory = Mapping[tuple[str, str], BillFactors]


def forecast(
    plan: Plan,
    prices: PriceTable,
    *,
    output_ratio: float = 0.5,
    on: dt.date | None = None,
    history: OutputHistory | None = None,
    bills: BillHistory | None = None,
) -> Forecast:
    """Price ``plan``: its prompt and expected cached tokens, and its expected output.

    Output (reasoning included, as the API bills it) is what ``history`` says a (task, model)
    produces, else ``output_ratio`` of the request's ``max_output_tokens``; a prewarm has
    none. Input, cached and written tokens are corrected by ``bills`` (what earlier runs of the
    request's model and layout were billed against their plans), so a server that counts or
    caches differently is forecast as it bills. Expected cache writes (GPT-5.6+) are priced at
    the write rate. Each request is
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
        usage = expected_usage(planned, output_ratio, history, bills)
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


def forecast_by_task(
    plan: Plan,
    prices: PriceTable,
    *,
    history: OutputHistory | None = None,
    bills: BillHistory | None = None,
) -> dict[str, Forecast]:
    """``forecast`` per task of ``plan`` (a primer or a prewarm counts for its group's task);
    the tasks' forecasts add up to the plan's."""
    by_task: dict[str, list[PlannedRequest]] = {}
    for planned in plan.requests:
        by_task.setdefault(planned.request.task, []).append(planned)
    return {
        task: forecast(replace(plan, requests=tuple(group)), prices, history=history, bills=bills)
        for task, group in by_task.items()
    }


def forecast_costs(
    plan: Plan,
    prices: PriceTable,
    *,
    history: OutputHistory | None = None,
    bills: BillHistory | None = None,
) -> dict[tuple[int, bool], Decimal]:
    """What each request of ``plan`` is expected to cost, by (job id, is a prewarm); the same
    figures ``forecast`` sums (today's prices)."""
    price_of: dict[tuple[str, str | None], TierPrice] = {}
    costs: dict[tuple[int, bool], Decimal] = {}
    for planned in plan.requests:
        request = planned.request
        key = (request.model, request.profile.service_tier)
        price = price_of.get(key)
        if price is None:
            price = price_of[key] = prices.price(request.model, tier_of(key[1]))
        usage = expected_usage(planned, history=history, bills=bills)
        costs[request.job_id, planned.prewarm] = cost_usd(usage, price)
    return costs


def expected_usage(
    planned: PlannedRequest,
    output_ratio: float = 0.5,
    history: OutputHistory | None = None,
    bills: BillHistory | None = None,
) -> Usage:
    """The usage ``planned`` is expected to report (output from ``history``, else at
    ``output_ratio`` of its cap, or near its checks' word bound when it has one; capped at
    ``max_output_tokens``; input as ``bills`` says the server bills it)."""
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
    factors = None if bills is None else bills.get((request.model, request.layout))
    if factors is None:
        return Usage(
            input_tokens=planned.prompt_tokens,
            cached_tokens=planned.expected_cached_tokens,
            output_tokens=output,
            cache_write_tokens=planned.expected_cache_write_tokens,
        )
    billed = round(planned.prompt_tokens * factors.input)
    cached = min(billed, round(planned.expected_cached_tokens * factors.input * factors.cached))
    written = min(
        billed - cached, round(planned.expected_cache_write_tokens * factors.input * factors.write)
    )
    return Usage(
        input_tokens=billed,
        cached_tokens=cached,
        output_tokens=output,
        cache_write_tokens=written,
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
