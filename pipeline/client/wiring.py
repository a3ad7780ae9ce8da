"""Production wiring of the client stack: SDK client, API caller, limiter, retry, cache.

The SDK's own retries are off (``max_retries=0``): ``client/retry.py`` is the one retry layer.
The response cache is scoped to the SDK client's base URL and account (``cache_scope``), taken
from the client that sends the requests, so an injected client cannot be served the answers of
another server.
"""

from __future__ import annotations

from dataclasses import dataclass

import openai

from pipeline.client.api import ResponsesAPI
from pipeline.client.breaker import OutageBreaker, Stopping
from pipeline.client.cache import CacheScope, NullCache, ResponseCache, ResultCache
from pipeline.client.clock import SYSTEM_CLOCK, Clock
from pipeline.client.flex import FlexPolicy
from pipeline.client.limiter import ModelLimiters
from pipeline.client.responses import ResponsesClient
from pipeline.client.retry import RetryPolicy
from pipeline.errors import ConfigError
from pipeline.settings import Settings, ledger_id


@dataclass
class ClientStack:
    """The parts a run sends requests through, and the resources to close afterwards."""

    client: ResponsesClient
    limiter: ModelLimiters
    cache: ResultCache
    sdk: openai.AsyncOpenAI | None = None

    async def aclose(self) -> None:
        """Close the HTTP client and the response cache."""
        if self.sdk is not None:
            await self.sdk.close()
        close = getattr(self.cache, "close", None)
        if close is not None:
            close()


def _api_key(settings: Settings) -> str:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if not key:
        raise ConfigError(
            "OPENAI_API_KEY is not set (to rehearse offline, run `contentgen simulate` and set "
            "OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=sk-simulator)"
        )
    problem = key_problem(key)
    if problem is not None:
        raise ConfigError(f"OPENAI_API_KEY {problem}: no request could carry it; set it again")
    return key


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot go in an HTTP ``Authorization`` header (None: it can).

    An API key is printable ASCII without spaces; a blank one, or one pasted with a newline or
    a space, is refused by the HTTP client on every request, which would otherwise read as
    an outage after the outage window. The key itself is never quoted.
    """
    if not key.strip():
        return "is blank"
    if key != key.strip():
        return "has spaces or a line break around it"
    if any(not ("!" <= ch <= "~") for ch in key):
        return "contains a character that is not printable ASCII (a space, a line break, ...)"
    return None


def make_sdk_client(settings: Settings) -> openai.AsyncOpenAI:
    """An ``AsyncOpenAI`` with SDK retries off and our timeout; needs a key (or a base URL)."""
    return openai.AsyncOpenAI(
        api_key=_api_key(settings),
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.request_timeout_s,
    )


def cache_scope(sdk: openai.AsyncOpenAI | openai.OpenAI) -> CacheScope:
    """The response-cache scope of what ``sdk`` sends: its base URL and its account.

    The account is the organization and project the SDK sends (it reads ``OPENAI_ORG_ID`` and
    ``OPENAI_PROJECT_ID`` itself) when set, else its API key; only a hash of them is kept.
    """
    return CacheScope.of(
        str(sdk.base_url),
        api_key=sdk.api_key,
        organization=sdk.organization,
        project=sdk.project,
    )


def current_cache_scope(settings: Settings) -> CacheScope:
    """The scope a run with ``settings`` would use (an SDK client is made, used, closed)."""
    with openai.OpenAI(
        api_key=_api_key(settings), base_url=settings.openai_base_url, max_retries=0
    ) as sdk:
        return cache_scope(sdk)


def build_client_stack(
    settings: Settings,
    *,
    sdk: openai.AsyncOpenAI | None = None,
    clock: Clock = SYSTEM_CLOCK,
    retry: RetryPolicy | None = None,
    use_cache: bool = True,
    outage_window_s: float | None = None,
) -> ClientStack:
    """Wire the client stack from settings (tests pass their own SDK client or retry policy)."""
    sdk = sdk or make_sdk_client(settings)
    limiter = ModelLimiters(settings.rpm_limit, settings.tpm_limit, clock)
    stopping = Stopping()
    if retry is None:
        retry = RetryPolicy(clock=clock, sleep=lambda s: stopping.sleep(s, clock.sleep))
    cache: ResultCache = (
        ResponseCache(
            settings.cache_dir, scope=cache_scope(sdk), origin=ledger_id(settings.database_url)
        )
        if use_cache
        else NullCache()
    )
    secrets = [settings.openai_api_key.get_secret_value()] if settings.openai_api_key else []
    client = ResponsesClient(
        ResponsesAPI(sdk, clock=clock, secrets=secrets),
        cache=cache,
        limiter=limiter,
        retry=retry,
        clock=clock,
        timeout_s=settings.request_timeout_s,
        flex=FlexPolicy(
            timeout_s=settings.flex_timeout_s, fallback_after_s=settings.flex_fallback_s
        ),
        breaker=OutageBreaker(window_s=outage_window_s or settings.outage_window_s, clock=clock),
        stopping=stopping,
    )
    return ClientStack(client=client, limiter=limiter, cache=cache, sdk=sdk)
