"""The client layer: from a ready request body to a typed result.

``ResponsesClient`` (responses.py) runs one request through the response cache (cache.py),
the rate limiter (limiter.py, calibration.py) and the retry policy (retry.py) around
one-attempt calls to the API (api.py), whose SDK exceptions are translated into
``pipeline.errors`` (errors.py); a circuit breaker (breaker.py) rides out outages. Time is a
passed-in ``Clock`` (clock.py). ``wiring`` builds the production stack from settings. Nothing
above this package touches ``openai.*``.
"""

from __future__ import annotations

from pipeline.client.api import HeadersCallback, ResponsesAPI, ResponsesCaller
from pipeline.client.breaker import RunStopping
from pipeline.client.cache import (
    CacheScope,
    NullCache,
    ResponseCache,
    ResultCache,
    ScopeEntries,
    cache_stats,
    clear_cache,
)
from pipeline.client.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
from pipeline.client.errors import translate
from pipeline.client.hooks import AttemptHooks, AttemptTally, BudgetRefused
from pipeline.client.limiter import LimiterStats, ModelLimiters, RateLimiter
from pipeline.client.responses import Outcome, ResponsesClient
from pipeline.client.result import APIResult, field_of, result_of
from pipeline.client.retry import Attempted, RetryPolicy
from pipeline.client.validation import validate_json_output
from pipeline.client.wiring import (
    ClientStack,
    build_client_stack,
    cache_scope,
    current_cache_scope,
    make_sdk_client,
)

__all__ = [
    "SYSTEM_CLOCK",
    "APIResult",
    "AttemptHooks",
    "AttemptTally",
    "Attempted",
    "BudgetRefused",
    "CacheScope",
    "ClientStack",
    "Clock",
    "FakeClock",
    "HeadersCallback",
    "LimiterStats",
    "ModelLimiters",
    "NullCache",
    "Outcome",
    "RateLimiter",
    "ResponseCache",
    "ResponsesAPI",
    "ResponsesCaller",
    "ResponsesClient",
    "ResultCache",
    "RetryPolicy",
    "RunStopping",
    "ScopeEntries",
    "SystemClock",
    "build_client_stack",
    "cache_scope",
    "cache_stats",
    "clear_cache",
    "current_cache_scope",
    "field_of",
    "make_sdk_client",
    "result_of",
    "translate",
    "validate_json_output",
]
