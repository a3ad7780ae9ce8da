"""The client layer: from a ready request body to a typed result.

``ResponsesClient`` (responses.py) runs one request through the response cache (cache.py),
the rate limiter (limiter.py) and the retry policy (retry.py) around one-attempt calls to the
API (api.py), whose SDK exceptions are translated into ``pipeline.errors`` (errors.py).
Time is a passed-in ``Clock`` (clock.py). Nothing above this package touches ``openai.*``.
"""

from __future__ import annotations

from pipeline.client.api import HeadersCallback, ResponsesAPI, ResponsesCaller
from pipeline.client.cache import NullCache, ResponseCache, ResultCache
from pipeline.client.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
from pipeline.client.limiter import LimiterStats, RateLimiter
from pipeline.client.responses import Outcome, ResponsesClient
from pipeline.client.result import APIResult
from pipeline.client.retry import Attempted, RetryPolicy
from pipeline.client.validation import validate_json_output

__all__ = [
    "SYSTEM_CLOCK",
    "APIResult",
    "Attempted",
    "Clock",
    "FakeClock",
    "HeadersCallback",
    "LimiterStats",
    "NullCache",
    "Outcome",
    "RateLimiter",
    "ResponseCache",
    "ResponsesAPI",
    "ResponsesCaller",
    "ResponsesClient",
    "ResultCache",
    "RetryPolicy",
    "SystemClock",
    "validate_json_output",
]
