"""Flex processing (``service_tier: "flex"``): half price, slower, sometimes unavailable.

A flex request is sent in two stages under the one retry policy (``client/retry.py``):

1. the flex stage: the body as rendered, each attempt with the long flex timeout
   (``timeout_s``, 900 s as OpenAI suggests). Its 429 "resource unavailable" (not charged)
   and other retryable failures are retried with the policy's backoff until
   ``fallback_after_s`` has passed;
2. the fallback stage, only when the flex stage ran out on a retryable failure: the same body
   with ``service_tier`` removed (the account's default tier), under the policy's normal
   bounds and the normal timeout.

The tier that answered is whatever the response's ``service_tier`` says, and that is what
``recording.judge`` prices. A flex 429 is a capacity answer, not the account's rate limit, so
it does not pause the rate limiter for every other request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import RateLimited

__all__ = ["FlexPolicy", "fallback_body", "is_flex", "is_flex_unavailable"]

# Both shapes OpenAI has been seen to use for flex capacity 429s (API-NOTES section 8).
_UNAVAILABLE_CODES = frozenset({"resource_unavailable"})
_UNAVAILABLE_TEXT = ("resource unavailable", "currently processing too many requests")


@dataclass(frozen=True)
class FlexPolicy:
    """How flex requests are timed and when they fall back to the default tier.

    ``max_attempts`` bounds the flex stage; its deadline ``fallback_after_s`` normally ends it
    first. ``fallback_tier`` is the ``service_tier`` the fallback sends (None: left out).
    """

    timeout_s: float = 900.0
    fallback_after_s: float = 600.0
    max_attempts: int = 100
    fallback_tier: str | None = None


def is_flex(body: Mapping[str, Any]) -> bool:
    """True when the request asks for flex processing."""
    return body.get("service_tier") == "flex"


def fallback_body(body: Mapping[str, Any], tier: str | None = None) -> dict[str, Any]:
    """``body`` for the default tier: ``service_tier`` removed (or set to ``tier``)."""
    out = {k: v for k, v in body.items() if k != "service_tier"}
    if tier is not None:
        out["service_tier"] = tier
    return out


def is_flex_unavailable(exc: BaseException) -> bool:
    """True for flex's 429 "resource unavailable" (a capacity answer, never charged)."""
    if not isinstance(exc, RateLimited):
        return False
    if exc.code in _UNAVAILABLE_CODES:
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _UNAVAILABLE_TEXT)
