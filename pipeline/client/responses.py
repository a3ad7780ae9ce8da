"""``ResponsesClient``: from a rendered request body to an ``Outcome``.

The path of one request: response cache (a hit is served at zero cost, no attempt made) ->
for each attempt: rate limiter -> one API call -> the limiter follows the response headers ->
on a 429 the limiter pauses every sender for the server's hint -> the retry policy decides.
A finished result is stored in the response cache.

Decisions:

- ``incomplete`` results are cached as well as ``completed`` ones: they are real, paid-for
  outputs, and the same request would be truncated the same way again. A profile that raises
  ``max_output_tokens`` changes the request, hence the key, so it is not served the old one.
- With caching on, identical requests in flight at the same time are sent once: later ones wait
  for the first and are served like a cache hit (``from_cache=True``, attempts 0). If the
  first fails, they get the same error.
- A 429 without a hint still pauses the limiter briefly (``DEFAULT_429_PAUSE_S``), so the
  queue behind it does not run into the same wall.
- Every attempt passes the outage breaker first (``client/breaker.py``): while the API does
  not answer, one probe goes at a time and the rest wait; past the outage window they fail
  with ``FatalAPIError``. ``stop()`` ends every wait at once with ``RunStopping``.
- A flex request (``service_tier: "flex"``) gets the flex timeout and, when flex stays
  unavailable past the deadline, falls back to the default tier (``client/flex.py``); its
  "resource unavailable" 429s do not pause the limiter. ``attempts`` counts both stages.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline.client.api import ResponsesCaller
from pipeline.client.breaker import OutageBreaker, RunStopping, Stopping, is_outage
from pipeline.client.cache import ResultCache
from pipeline.client.clock import SYSTEM_CLOCK, Clock
from pipeline.client.flex import FlexPolicy, fallback_body, is_flex, is_flex_unavailable
from pipeline.client.hooks import AttemptHooks, AttemptTally
from pipeline.client.limiter import ModelLimiters, RateLimiter
from pipeline.client.result import APIResult
from pipeline.client.retry import Attempted, RetryPolicy, describe
from pipeline.client.validation import validate_json_output
from pipeline.errors import APIError, RateLimited, RetryableAPIError
from pipeline.prompts import response_cache_key

__all__ = ["DEFAULT_429_PAUSE_S", "Outcome", "ResponsesClient", "validate_json_output"]

DEFAULT_429_PAUSE_S = 1.0
log = logging.getLogger("contentgen.flex")


@dataclass(frozen=True)
class Outcome:
    """What generating one request came to.

    Exactly one of ``result`` and ``error`` is set. ``from_cache`` results keep the usage of
    the original call for reference; the caller records them at zero cost. ``attempts`` counts
    API calls made for this request (0 when served from the cache); ``abandoned`` those of
    them that may have been billed although no answer came back (``AttemptTally``).
    """

    result: APIResult | None
    error: APIError | None
    attempts: int
    from_cache: bool = False
    cache_key: str | None = None
    abandoned: int = 0

    @property
    def ok(self) -> bool:
        """True when there is a result (completed or incomplete)."""
        return self.result is not None


class ResponsesClient:
    """Sends requests through the response cache, the rate limiter and the retry policy.

    ``timeout_s`` bounds each attempt (the SDK's per-request timeout); ``flex`` sets the
    timeout and the fallback deadline of flex requests.
    """

    def __init__(
        self,
        api: ResponsesCaller,
        *,
        cache: ResultCache,
        limiter: RateLimiter | ModelLimiters,
        retry: RetryPolicy,
        clock: Clock = SYSTEM_CLOCK,
        timeout_s: float = 120.0,
        flex: FlexPolicy | None = None,
        breaker: OutageBreaker | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        self._api = api
        self._breaker = breaker or OutageBreaker(clock=clock)
        self.stopping = stopping or Stopping()
        self._cache = cache
        self._limiter = limiter
        self._retry = retry
        self._clock = clock
        self._timeout_s = timeout_s
        self._flex = flex or FlexPolicy()
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}

    def stop(self) -> None:
        """End every wait (limiter, outage, retry backoff) at once: the run is stopping."""
        self.stopping.set()

    @property
    def breaker(self) -> OutageBreaker:
        """The outage breaker (the progress display shows when it is open)."""
        return self._breaker

    @property
    def limiter(self) -> RateLimiter | ModelLimiters:
        """The rate limiter(s) (``stats()`` feeds the progress display)."""
        return self._limiter

    def _limiter_for(self, body: Mapping[str, Any]) -> RateLimiter:
        if isinstance(self._limiter, ModelLimiters):
            return self._limiter.for_model(str(body.get("model", "")))
        return self._limiter

    async def generate(
        self,
        request_body: Mapping[str, Any],
        *,
        estimated_tokens: int,
        stream: bool,
        cache_ttl_s: int | None,
        cache_enabled: bool,
        job_id: int,
        hooks: AttemptHooks | None = None,
    ) -> Outcome:
        """Generate one request: from the cache when possible, else through the API.

        ``estimated_tokens`` is what the request weighs against the TPM limit (prompt tokens
        plus ``max_output_tokens``, see ``RenderedRequest.estimated_tokens``). ``hooks`` hear
        of each attempt (``client.hooks``).
        """
        tally = AttemptTally(hooks)
        if not cache_enabled:  # no key to compute: it is only the cache's
            return await self._send(request_body, None, estimated_tokens, stream, job_id, tally)
        key = response_cache_key(dict(request_body))

        while True:
            cached = self._cache.get(key)
            if cached is not None:
                return Outcome(cached, None, attempts=0, from_cache=True, cache_key=key)
            leader = self._inflight.get(key)
            if leader is None:
                break
            try:
                first = await asyncio.shield(leader)
            except asyncio.CancelledError:
                if leader.cancelled():  # the first sender was cancelled, not us: go again
                    continue
                raise
            return replace(first, attempts=0, from_cache=first.result is not None, abandoned=0)

        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            outcome = await self._send(request_body, key, estimated_tokens, stream, job_id, tally)
            if outcome.result is not None:
                self._cache.put(key, outcome.result, cache_ttl_s)
        except BaseException:
            future.cancel()
            raise
        finally:
            del self._inflight[key]
        future.set_result(outcome)
        return outcome

    async def _send(
        self,
        body: Mapping[str, Any],
        key: str | None,
        estimated_tokens: int,
        stream: bool,
        job_id: int,
        tally: AttemptTally,
    ) -> Outcome:
        if is_flex(body):
            return await self._send_flex(body, key, estimated_tokens, stream, job_id, tally)
        attempted = await self._retry.run(
            self._attempt(body, estimated_tokens, stream, self._timeout_s, tally), job_id=job_id
        )
        return Outcome(
            attempted.value,
            attempted.error,
            attempted.attempts,
            cache_key=key,
            abandoned=tally.abandoned,
        )

    async def _send_flex(
        self,
        body: Mapping[str, Any],
        key: str | None,
        estimated_tokens: int,
        stream: bool,
        job_id: int,
        tally: AttemptTally,
    ) -> Outcome:
        """The flex stage until the deadline, then the same body at the default tier."""
        flex = self._flex
        stage = self._retry.within(
            max_total_s=flex.fallback_after_s, max_attempts=flex.max_attempts
        )
        first = await stage.run(
            self._attempt(body, estimated_tokens, stream, flex.timeout_s, tally), job_id=job_id
        )
        if first.ok or not isinstance(first.error, RetryableAPIError):
            return Outcome(
                first.value, first.error, first.attempts, cache_key=key, abandoned=tally.abandoned
            )
        assert first.error is not None
        log.warning(
            "flex fallback job=%s after attempts=%d cause=%s: resending at the default tier",
            job_id,
            first.attempts,
            describe(first.error),
            extra={"job_id": job_id, "attempt": first.attempts, "cause": describe(first.error)},
        )
        fallback = fallback_body(body, flex.fallback_tier)
        second: Attempted[APIResult] = await self._retry.run(
            self._attempt(fallback, estimated_tokens, stream, self._timeout_s, tally),
            job_id=job_id,
        )
        attempts = first.attempts + second.attempts
        return Outcome(
            second.value, second.error, attempts, cache_key=key, abandoned=tally.abandoned
        )

    def _attempt(
        self,
        body: Mapping[str, Any],
        estimated_tokens: int,
        stream: bool,
        timeout_s: float,
        tally: AttemptTally,
    ) -> Callable[[int], Awaitable[APIResult]]:
        """One attempt at ``body``: wait for the limiter, call, follow the headers."""
        limiter = self._limiter_for(body)
        hooks = tally.hooks

        def on_headers(headers: Mapping[str, str], sent_at: float) -> None:
            limiter.observe(headers, sent_at=sent_at)
            if hooks is not None and not stream:
                hooks.answering()

        async def attempt(number: int) -> APIResult:
            stopping = self.stopping
            while True:
                if stopping.is_set:
                    raise RunStopping("the run is stopping")
                await tally.clear()  # an abandoned attempt before this one: may it go?
                probe = await self._breaker.before(stopping)
                sent_at: float | None = None
                try:
                    sent_at = await stopping.race(limiter.acquire(estimated_tokens))
                    if hooks is not None:
                        await hooks.sending()
                    try:
                        result = await self._api.call(
                            body,
                            stream=stream,
                            timeout_s=timeout_s,
                            on_headers=functools.partial(on_headers, sent_at=sent_at),
                        )
                    finally:
                        if hooks is not None:
                            hooks.ended()
                except RateLimited as exc:
                    self._breaker.answered(probe)
                    assert sent_at is not None  # a 429 is an answer to a request we sent
                    limiter.rejected(sent_at, estimated_tokens)
                    if is_flex(body) and is_flex_unavailable(exc):
                        raise  # flex capacity, not our rate: other requests need not wait
                    pause = (
                        exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_429_PAUSE_S
                    )
                    limiter.penalize(pause)
                    raise
                except APIError as exc:
                    if exc.status == 429 and sent_at is not None:
                        limiter.rejected(sent_at, estimated_tokens)  # "Request too large"
                    if isinstance(exc, RetryableAPIError) and exc.maybe_billed:
                        tally.abandon()
                    self._breaker.failed(exc, probe, sent_at)
                    if is_outage(exc) and self._breaker.open:
                        continue  # the API is down: wait for it here, not on the retries
                    raise
                except BaseException:
                    if probe:
                        self._breaker.failed(RunStopping("cancelled"), probe)
                    raise
                self._breaker.answered(probe)
                return result

        return attempt
