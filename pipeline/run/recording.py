"""Turning one request's outcome into a generation row and the job's next state.

Token counts are stored as the API reported them; cost is derived from them with the price
in effect today, at the tier the API says it used. A response-cache hit consumed no tokens
and is stored at zero cost with ``from_cache``, unless the answer it holds was paid for by a
run of this database that never recorded it (it died first): then the first hit carries the
real usage and cost (``Verdict.paid``). ``list_cost_usd`` is what the same tokens
would have cost at the standard price with no prompt cache at all (every input token, read
from or written to the cache, at the plain input rate): the base for savings. Savings can be
negative: a request that paid a write premium (GPT-5.6+) and read nothing cost more.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.checks import CheckReport, grade, run_checks, text_of
from pipeline.client import APIResult
from pipeline.db import Generation
from pipeline.money import PriceTable, Tier, TierPrice, Usage, cost_usd, tier_of
from pipeline.prompts import RenderedRequest


@dataclass(frozen=True)
class Verdict:
    """What a result means for the job: the generation to store and how the job ends."""

    generation: Generation
    succeeded: bool
    permanent: bool
    error: str | None
    article_id: int | None = None
    # The output's checks (None: its task declares none, or there was no answer to check).
    checks: CheckReport | None = None
    reason: str | None = None  # the job's failure_reason if this fails it for good
    # A response-cache hit's real usage and cost: recorded instead of zero if no generation
    # holds its response id yet (``db.outcomes.OutcomeRow.paid``).
    paid: dict[str, Any] | None = None


def list_price(price: TierPrice) -> TierPrice:
    """The same tier's rates with no prompt cache: reads and writes at the input rate."""
    return TierPrice(
        input=price.input, cached_input=price.input, output=price.output, cache_write=price.input
    )


def provenance(request: RenderedRequest) -> dict[str, Any]:
    """The generation columns that say what made it: the profile version, the article's
    content hash, and whether its task needs an editor's review."""
    profile = request.profile
    return {
        "profile_version": profile.version,
        "content_hash": request.content_hash,
        "needs_review": profile.review != "none",
    }


def _validated_json(text: str, schema: Any) -> tuple[dict[str, Any] | None, str | None]:
    from pipeline.client import validate_json_output

    parsed, error = validate_json_output(text, schema)
    if error is not None:
        return None, error
    return (parsed if isinstance(parsed, dict) else {"value": parsed}), None


def check(
    request: RenderedRequest, text: str, output_json: Any | None, schema_error: str | None
) -> tuple[CheckReport | None, bool]:
    """The checks of one answer and whether it is flagged: its task's checks, or for a grader
    its verdict (the flag then belongs to the output it graded). Pure and cheap."""
    profile = request.profile
    if profile.grader is not None:
        if schema_error is not None:
            return None, False
        return grade(profile.grader, output_json)
    if profile.checks is None:
        return None, False
    report = run_checks(
        profile.checks,
        text_of(text, output_json),
        source=request.source_text,
        schema_error=schema_error,
        has_schema=profile.output_schema is not None,
    )
    return report, not report.passed


def judge(
    request: RenderedRequest,
    result: APIResult,
    *,
    run_id: int,
    prices: PriceTable,
    attempts: int,
    from_cache: bool,
    cache_key: str | None,
    tier_override: Tier | None = None,
    batch_id: str | None = None,
    today: dt.date | None = None,
    ledger: str | None = None,
) -> Verdict:
    """Price and classify a response: completed (schema-valid) succeeds, anything else fails.

    ``ledger`` (``settings.ledger_id``): a response-cache hit this ledger's own run paid for
    carries its real cost in ``Verdict.paid`` (recorded if that run never recorded it)."""
    today = today or dt.datetime.now(dt.UTC).date()
    model = result.model or request.model
    tier: Tier = tier_override or tier_of(result.service_tier)
    usage = Usage() if from_cache else result.usage
    price = prices.price(model, tier, today)
    standard = prices.price(model, "standard", today)
    paid = None
    if (
        from_cache
        and result.response_id
        and result.paid_by is not None
        and result.paid_by == ledger
    ):
        real = result.usage
        paid = {
            "input_tokens": real.input_tokens,
            "cached_tokens": real.cached_tokens,
            "cache_write_tokens": real.cache_write_tokens,
            "output_tokens": real.output_tokens,
            "reasoning_tokens": real.reasoning_tokens,
            "cost_usd": cost_usd(real, price),
            "list_cost_usd": cost_usd(real, list_price(standard)),
            "from_cache": False,
        }
    output_json = None
    error = None
    status: str = result.status
    schema_error = None
    if status == "completed" and request.profile.output_schema is not None:
        output_json, schema_error = _validated_json(
            result.output_text, request.profile.output_schema
        )
        if schema_error is not None:
            status = "failed"
            error = (
                f"output does not match the {request.profile.schema_name} schema: {schema_error}"
            )
    if status == "incomplete":
        error = f"incomplete: {result.incomplete_reason or 'unknown reason'}"
    report: CheckReport | None = None
    flagged = False
    if status == "completed" or schema_error is not None:
        report, flagged = check(request, result.output_text, output_json, schema_error)
    generation = Generation(
        job_id=request.job_id,
        run_id=run_id,
        task=request.task,
        status=status,
        incomplete_reason=result.incomplete_reason if status == "incomplete" else None,
        error=error,
        response_id=result.response_id,
        request_model=request.model,
        model=result.model,
        output_text=result.output_text,
        output_json=output_json,
        reasoning_summary=result.reasoning_summary,
        input_tokens=usage.input_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        cost_usd=cost_usd(usage, price),
        list_cost_usd=cost_usd(usage, list_price(standard)),
        price_tier=tier,
        service_tier=result.service_tier,
        latency_ms=None if result.latency_s is None else round(result.latency_s * 1000),
        ttft_ms=None if result.ttft_s is None else round(result.ttft_s * 1000),
        attempts=attempts,
        from_cache=from_cache,
        prompt_cache_key=cache_key,
        batch_id=batch_id,
        previous_response_id=request.previous_response_id,
        trimmed=request.trimmed,
        **provenance(request),
        checks=None if report is None else report.as_json(),
        flagged=flagged,
        graded_generation_id=request.parent_generation_id if request.profile.grader else None,
    )
    # Truncated or schema-invalid output would come back the same if sent again: final.
    return Verdict(
        generation,
        succeeded=status == "completed",
        permanent=True,
        error=error,
        article_id=request.article_id,
        checks=report,
        paid=paid,
    )


def failure(
    request: RenderedRequest,
    message: str,
    *,
    run_id: int,
    attempts: int,
    cache_key: str | None,
    permanent: bool,
    reason: str | None = None,
) -> Verdict:
    """A request that got no usable response (nothing billed): a failed generation.

    ``reason`` names a permanent failure for the job's ``failure_reason`` (``too_large``)."""
    generation = Generation(
        job_id=request.job_id,
        run_id=run_id,
        task=request.task,
        status="failed",
        error=message[:4000],
        request_model=request.model,
        cost_usd=Decimal(0),
        list_cost_usd=Decimal(0),
        attempts=attempts,
        prompt_cache_key=cache_key,
        previous_response_id=request.previous_response_id,
        trimmed=request.trimmed,
        **provenance(request),
    )
    return Verdict(
        generation,
        succeeded=False,
        permanent=permanent,
        error=message,
        article_id=request.article_id,
        reason=reason,
    )


def summary_json(verdict: Verdict) -> str:
    """One line describing a verdict (for logs)."""
    g = verdict.generation
    return json.dumps({"job_id": g.job_id, "status": g.status, "error": verdict.error})
