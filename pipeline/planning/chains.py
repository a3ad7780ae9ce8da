"""Chained requests in a plan: a child goes to its parent's cache key, expecting its prompt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pipeline.planning.planner import Plan
from pipeline.planning.tree import cacheable
from pipeline.prompts import ChainedRequest


def follow_parents(
    chunk_plan: Plan,
    chained: Mapping[int, ChainedRequest],
    explicit_models: frozenset[str] = frozenset(),
) -> Plan:
    """Send chained requests with their parent's cache key, expecting its prompt cached.

    The parent wrote its whole prompt to the cache of the machine its key routed to; the
    child's prefix is that prompt, so the child goes to the same key and waits for nothing.
    On ``explicit_models`` (GPT-5.6+) caches are written only at breakpoints and the key does
    not route: there the child keeps what the planner gave it (the breakpoints it shares).
    """
    planned = []
    expected = 0
    for p in chunk_plan.requests:
        explicit = p.prewarm or p.request.model in explicit_models
        child = None if explicit else chained.get(p.request.job_id)
        if child is not None and child.parent_cache_key is not None:
            p = replace(
                p,
                cache_key=child.parent_cache_key,
                wait_for=None,
                expected_cached_tokens=cacheable(child.parent_prompt_tokens),
            )
        planned.append(p)
        expected += p.expected_cached_tokens
    return replace(chunk_plan, requests=tuple(planned), expected_cached_tokens=expected)
