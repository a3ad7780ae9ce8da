"""Recording a prewarm: a request that wrote a group's shared prefix to the prompt cache.

On GPT-5.6+ models the planner warms each group with ``prompt_cache_options.prewarm`` instead
of a generated primer (``planning.breakpoints``). A prewarm generates nothing but is billed
(its prefix as cache writes), so it is stored as a generation with status ``prewarm`` on the
first job of its group: its usage and cost are facts of the run, counted in every cost report
and run total, so the recorded cost still equals the provider's bill. It never changes the
job's state, and no report of generated text shows it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pipeline.client import APIResult
from pipeline.db import Generation
from pipeline.money import PriceTable, cost_usd, tier_of
from pipeline.prompts import RenderedRequest
from pipeline.run.recording import list_price, provenance

PREWARM_STATUS = "prewarm"


def prewarm_generation(
    request: RenderedRequest,
    result: APIResult | None,
    *,
    run_id: int,
    prices: PriceTable,
    cache_key: str | None,
    attempts: int,
    error: str | None = None,
    today: dt.date | None = None,
) -> Generation:
    """The generation row of one prewarm (``result`` None: it failed, nothing was billed)."""
    today = today or dt.datetime.now(dt.UTC).date()
    if result is None:
        return Generation(
            job_id=request.job_id,
            run_id=run_id,
            task=request.task,
            status=PREWARM_STATUS,
            error=(error or "prewarm failed")[:4000],
            request_model=request.model,
            cost_usd=Decimal(0),
            list_cost_usd=Decimal(0),
            attempts=attempts,
            prompt_cache_key=cache_key,
            **provenance(request),
        )
    model = result.model or request.model
    tier = tier_of(result.service_tier)
    usage = result.usage
    return Generation(
        job_id=request.job_id,
        run_id=run_id,
        task=request.task,
        status=PREWARM_STATUS,
        response_id=result.response_id,
        request_model=request.model,
        model=result.model,
        output_text="",
        input_tokens=usage.input_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost_usd(usage, prices.price(model, tier, today)),
        list_cost_usd=cost_usd(usage, list_price(prices.price(model, "standard", today))),
        price_tier=tier,
        service_tier=result.service_tier,
        latency_ms=round(result.latency_s * 1000),
        attempts=attempts,
        from_cache=False,
        prompt_cache_key=cache_key,
        **provenance(request),
    )
