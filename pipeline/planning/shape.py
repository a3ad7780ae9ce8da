"""The prompt-cache fields of one planned request, for its model's regime (pure functions).

Grid models (before GPT-5.6) get ``prompt_cache_retention`` where the profile asks for a
lifetime the model accepts (``"auto"``: 24h where allowed, else nothing) and the planner's
routing key. Breakpoint models (GPT-5.6+) get ``input_text`` blocks with the planner's
breakpoints, ``prompt_cache_options`` in explicit mode with the ``ttl``, and an accounting key
(per run or per batch label): there the key does not route.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.money import PromptCachePolicy
from pipeline.planning.planner import Plan, PlannedRequest
from pipeline.prompts import CacheFields, Profile, RenderedRequest


def lifetime_for(profile: Profile, policy: PromptCachePolicy) -> str | None:
    """The lifetime value to send for ``profile`` on its model (None: send no field)."""
    choice = profile.prompt_cache_lifetime
    if choice == "default":
        return None
    if choice == "auto":
        return policy.long_retention
    return choice


def lifetime_problem(profile: Profile, policy: PromptCachePolicy) -> str | None:
    """Why ``profile``'s lifetime cannot be sent to its model, or None when it can."""
    choice = profile.prompt_cache_lifetime
    if choice in ("auto", "default"):
        return None
    accepted = policy.ttl if policy.explicit else policy.retention
    if choice in accepted:
        return None
    field = "prompt_cache_options.ttl" if policy.explicit else "prompt_cache_retention"
    listed = ", ".join(repr(v) for v in accepted) or "none"
    return f"{profile.model} does not accept {field} {choice!r} (accepted: {listed})"


def cache_fields(planned: PlannedRequest, policy: PromptCachePolicy) -> CacheFields:
    """How ``planned`` asks for prompt caching on a model with ``policy``."""
    return fields_for(planned.request, policy, planned.breakpoints, prewarm=planned.prewarm)


def fields_for(
    request: RenderedRequest,
    policy: PromptCachePolicy,
    breakpoints: tuple[int, ...] = (),
    *,
    prewarm: bool = False,
) -> CacheFields:
    """The cache fields of ``request`` with ``breakpoints`` (segment indices) on its model."""
    lifetime = lifetime_for(request.profile, policy)
    if policy.explicit:
        return CacheFields(explicit=True, breakpoints=breakpoints, ttl=lifetime, prewarm=prewarm)
    return CacheFields(retention=lifetime)


def static_breakpoints(request: RenderedRequest, policy: PromptCachePolicy) -> tuple[int, ...]:
    """One breakpoint after the request's leading static part (instructions and contexts).

    For the Batch API, where lines run in no set order and a resumed upload re-renders its
    lines: the shared static part of a large batch is always read again, and the rule needs
    nothing but the request. Nothing when the part is under the model's minimum.
    """
    depth = 0
    last = None
    for index, segment in enumerate(request.segments):
        if segment.kind not in ("format", "instructions", "context"):
            break
        depth += segment.tokens
        if segment.is_message:
            last = index
    if last is None or not policy.explicit or depth < policy.min_prefix:
        return ()
    return (last,)


def accounting_key(profile: Profile, run_id: int, batch_label: str | None) -> str | None:
    """The ``prompt_cache_key`` of a breakpoint-model request: it labels usage, never routes."""
    if profile.accounting_key == "none":
        return None
    if profile.accounting_key == "batch" and batch_label:
        return f"cg-batch-{batch_label}"[:64]
    return f"cg-run-{run_id}"


def request_key(
    planned: PlannedRequest, policy: PromptCachePolicy, run_id: int, batch_label: str | None
) -> str | None:
    """The ``prompt_cache_key`` to send: the planner's routing key, or an accounting key."""
    if policy.explicit:
        return accounting_key(planned.request.profile, run_id, batch_label)
    return planned.cache_key


def without_prewarms(chunk_plan: Plan) -> Plan:
    """``chunk_plan`` less its prewarms, with the expectations of a plan that has none.

    For the Batch API: its lines run in no set order, so nothing waits and a breakpoint is
    written by whichever line runs first (``static_breakpoints``).
    """
    if not chunk_plan.prewarms:
        return chunk_plan
    kept = tuple(p for p in chunk_plan.requests if not p.prewarm)
    return replace(
        chunk_plan,
        requests=kept,
        prompt_tokens=sum(p.prompt_tokens for p in kept),
        expected_cached_tokens=sum(p.expected_cached_tokens for p in kept),
        expected_cache_write_tokens=sum(p.expected_cache_write_tokens for p in kept),
    )
