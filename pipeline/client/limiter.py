"""Client-side rate limiting: token buckets for requests/min and tokens/min.

The server meters an account with two continuously refilling buckets whose capacity is the
per-minute limit (a full bucket refills in one minute) and which start full. We keep a local
copy of both and admit a request only when both hold enough, so the pipe stays full without
provoking 429s:

- ``acquire(tokens)`` waits, first come first served, until both buckets allow the request
  and no 429 penalty is running, then takes one request and ``tokens`` tokens. The estimate is
  prompt tokens + ``max_output_tokens``, as the server counts it before generating.
- ``observe(headers)`` follows the six ``x-ratelimit-*`` headers of every response: the
  ``limit-*`` values set capacity and refill rate (and switch a bucket on when the limit was
  not configured); the ``remaining-*`` values pull the local level down when the server knows
  less is left (other workers on the account, estimates that differ). They never raise it:
  a stale, optimistic header must not cause a burst.
- ``penalize(retry_after_s)`` after a 429 blocks every sender until the hint has passed.

The server counts its own way (OpenAI estimates tokens from characters; an emulator may use
another tokenizer), so each bucket learns the ratio of the server's count to ours from the
``remaining-*`` headers (``calibration``): ``acquire`` returns the admission time, and
``observe(headers, sent_at=...)`` compares how far the server's bucket fell with what we sent
since. Buckets are kept in the server's units (our estimate x the factor), and a recent header
brought forward to now (refill less what we sent since) sets the level, down and, once the
factor is learnt and the account is ours alone, up. ``set_share`` gives this process a part of
the account when other runners share it (``pipeline.limits.share``).

With a continuous bucket, ``reset-*`` is redundant ((limit - remaining) / rate); it is parsed
and reported in ``snapshot()`` for the progress display, not used for admission.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.client.calibration import Calibration, Sends
from pipeline.client.clock import SYSTEM_CLOCK, Clock
from pipeline.client.durations import parse_go_duration
from pipeline.errors import RequestTooLarge

log = logging.getLogger("contentgen.limiter")

WINDOW_S = 60.0
# Float rounding after sleeping exactly the computed wait must not cost another loop.
_EPSILON = 1e-9
# A header older than this (a long generation) is not brought forward to raise the level.
FRESH_HEADER_S = 10.0
RESERVE_SHARE = 0.02


class _Bucket:
    """A continuously refilling bucket in the server's units; its level may go below zero
    (debt) for oversize takes. ``capacity`` is this process's ``share`` of the ``limit``."""

    def __init__(
        self, limit: float, sends: Sends, level: float | None = None, share: float = 1.0
    ) -> None:
        self.limit = limit
        self.share = share
        self.capacity = limit * share
        # A level read from the server is the account's: this process may use its share.
        self.level = self.capacity if level is None else min(level * share, self.capacity)
        self.sends = sends
        self.calibration = Calibration(sends)

    @property
    def rate_per_s(self) -> float:
        return self.capacity / WINDOW_S

    def refill(self, elapsed_s: float) -> None:
        if elapsed_s > 0:
            self.level = min(self.capacity, self.level + elapsed_s * self.rate_per_s)

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` can be taken (more than capacity needs a full bucket).

        Once the level follows the server's, a small reserve stays untouched: the server's
        count of what is in flight is only known on average, and the reserve absorbs the
        difference (it costs no throughput: the refill rate is the same)."""
        reserve = RESERVE_SHARE * self.capacity if self.calibration.samples else 0.0
        missing = min(amount + reserve, self.capacity) - self.level
        if missing <= _EPSILON * max(1.0, self.capacity):
            return 0.0
        return missing / self.rate_per_s

    def set_limit(self, limit: float, share: float | None = None) -> None:
        self.limit = limit
        if share is not None:
            self.share = share
        self.capacity = limit * self.share
        self.level = min(self.level, self.capacity)

    def follow(self, now: float, remaining: float, sent_at: float | None) -> None:
        """Bring the server's level after the request sent at ``sent_at`` forward to now."""
        if sent_at is None:
            self.level = min(self.level, remaining)  # no time of reference: only ever lower
            return
        self.calibration.observe(sent_at, remaining, self.limit, self.share)
        since = self.sends.between(sent_at, now) * self.calibration.factor
        account = min(self.limit, remaining + max(0.0, now - sent_at) * self.limit / WINDOW_S)
        # Shared, the account's level is everyone's: ours is our share of it.
        expected = account * self.share - since
        alone = self.share >= 1.0 - 1e-9
        # Alone, the server's level is trusted once the factor is measured, or while the
        # factor is found too high (a level held down by a wrong factor would keep it so).
        trusted = self.calibration.samples >= 2 or self.calibration.contradicted
        if alone and trusted and now - sent_at <= FRESH_HEADER_S:
            self.level = min(self.capacity, expected)
        else:
            self.level = min(self.level, expected)


@dataclass(frozen=True)
class LimiterStats:
    """What the limiter admitted and what it knows about the limits, for progress display."""

    rpm_limit: int | None
    tpm_limit: int | None
    requests_per_min: int
    tokens_per_min: int
    requests_total: int
    tokens_total: int
    requests_available: float | None
    tokens_available: float | None
    waiting: int
    blocked_for_s: float
    penalties: int
    server_reset_requests_s: float | None
    server_reset_tokens_s: float | None
    token_factor: float = 1.0
    request_factor: float = 1.0
    share: float = 1.0

    @property
    def tpm_utilisation(self) -> float | None:
        """Tokens admitted in the last minute, as the server counts them, over the TPM limit."""
        if not self.tpm_limit:
            return None
        return self.tokens_per_min * self.token_factor / self.tpm_limit

    def as_dict(self) -> dict[str, Any]:
        """The fields (and ``tpm_utilisation``) as a plain JSON-friendly dict."""
        return {**asdict(self), "tpm_utilisation": self.tpm_utilisation}


class RateLimiter:
    """Token buckets for requests/min (``rpm``) and tokens/min (``tpm``); None means unlimited.

    A limit left as None is switched on by the first response that carries its
    ``x-ratelimit-limit-*`` header. Waiters are served strictly in arrival order, so a large
    request is never starved by a stream of small ones.
    """

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        # What we sent, kept even before a limit is known: the first headers measure it.
        self._request_sends = Sends()
        self._token_sends = Sends()
        self._requests = _Bucket(float(rpm), self._request_sends) if rpm else None
        self._tokens = _Bucket(float(tpm), self._token_sends) if tpm else None
        self._last = clock.monotonic()
        self._blocked_until = -math.inf
        self._queue: asyncio.Lock | None = None
        self._queue_loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0
        self._penalties = 0
        self._admitted: deque[tuple[float, int]] = deque()
        self._window_tokens = 0
        self._requests_total = 0
        self._tokens_total = 0
        self._reset_requests_s: float | None = None
        self._reset_tokens_s: float | None = None
        self._share = 1.0

    async def acquire(self, tokens: int) -> float:
        """Wait until one request and ``tokens`` tokens may be sent, then take them.

        Returns the admission time, to pass back to ``observe`` with the answer's headers."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        self._refuse_too_large(tokens)
        self._waiting += 1
        paced = False
        tokens_bound = False  # the wait was for the token bucket itself
        try:
            async with self._fifo():
                while True:
                    now = self._refill()
                    wait = self._wait_s(now, tokens)
                    if wait <= 0:
                        break
                    paced = True
                    if self._tokens is not None:
                        factor = self._tokens.calibration.factor
                        tokens_bound = tokens_bound or self._tokens.wait_s(tokens * factor) > 0
                    await self._clock.sleep(wait)
                self._take(now, tokens, paced, tokens_bound)
        finally:
            self._waiting -= 1
        return now

    def _refuse_too_large(self, tokens: int) -> None:
        """A request the account's whole TPM cannot hold is never admitted by the server: fail
        it now (``RequestTooLarge``) rather than wait for a bucket that never holds it, or take
        it and leave every later request behind its debt. Judged in our own count (or the
        server's where it counts less), so a factor learnt too high never fails a request."""
        bucket = self._tokens
        if bucket is None:
            return
        counted = tokens * min(1.0, bucket.calibration.factor)
        if counted > bucket.limit:
            raise RequestTooLarge(
                f"request of {tokens:,} tokens (prompt + max_output_tokens) is larger than the "
                f"account's {bucket.limit:,.0f} tokens per minute: it can never be sent; lower "
                "max_output_tokens or the article's token budget"
            )

    def _fifo(self) -> asyncio.Lock:
        # asyncio.Lock wakes waiters in FIFO order. A lock belongs to one event loop; a limiter
        # shared by successive loops (one per chunk, say) gets a fresh lock in each.
        loop = asyncio.get_running_loop()
        if self._queue is None or self._queue_loop is not loop:
            self._queue = asyncio.Lock()
            self._queue_loop = loop
        return self._queue

    def observe(self, headers: Mapping[str, str], sent_at: float | None = None) -> None:
        """Follow a response's ``x-ratelimit-*`` headers (missing or malformed ones are ignored).

        ``sent_at`` is what ``acquire`` returned for the request: with it the headers also
        calibrate the buckets and may raise their levels (see the module docstring)."""
        lowered = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}
        if not lowered:
            return
        now = self._refill()
        self._requests = self._follow(
            self._requests, self._request_sends, lowered, "requests", now, sent_at
        )
        self._tokens = self._follow(
            self._tokens, self._token_sends, lowered, "tokens", now, sent_at
        )
        reset_requests = _duration(lowered.get("x-ratelimit-reset-requests"))
        reset_tokens = _duration(lowered.get("x-ratelimit-reset-tokens"))
        if reset_requests is not None:
            self._reset_requests_s = reset_requests
        if reset_tokens is not None:
            self._reset_tokens_s = reset_tokens

    def rejected(self, sent_at: float, tokens: int) -> None:
        """The request admitted at ``sent_at`` was answered 429: the server counted nothing."""
        self._request_sends.reject(sent_at, 1)
        self._token_sends.reject(sent_at, tokens)

    def set_share(self, share: float) -> None:
        """Use ``share`` (0 < share <= 1) of the account's limits: other runners have the rest."""
        share = min(1.0, max(share, 1e-3))
        for bucket in (self._requests, self._tokens):
            if bucket is not None and bucket.share != share:
                bucket.set_limit(bucket.limit, share)
                if share < 1.0 and bucket.calibration.shared(bucket.limit):
                    # The debt was run up at the dropped factor: start from empty, and let
                    # the next header bring the level to the server's.
                    bucket.level = max(bucket.level, 0.0)
        self._share = share

    @property
    def token_factor(self) -> float:
        """How the server counts a token of our estimate (1.0 until learnt)."""
        return 1.0 if self._tokens is None else self._tokens.calibration.factor

    def penalize(self, retry_after_s: float) -> None:
        """After a 429: send nothing for ``retry_after_s`` (extends a pause, never shortens it)."""
        now = self._clock.monotonic()
        self._blocked_until = max(self._blocked_until, now + max(0.0, retry_after_s))
        self._penalties += 1
        log.info("rate limited: pausing all requests for %.3fs", max(0.0, retry_after_s))

    @property
    def rpm(self) -> int | None:
        """The requests/min limit in force (configured or learnt from headers), None if none."""
        return _limit(self._requests)

    @property
    def tpm(self) -> int | None:
        """The tokens/min limit in force (configured or learnt from headers), None if none."""
        return _limit(self._tokens)

    def stats(self) -> dict[str, Any]:
        """``snapshot()`` as a plain dict for progress displays and run artifacts.

        Keys: ``rpm_limit``, ``tpm_limit``, ``requests_per_min``, ``tokens_per_min`` (admitted
        in the last 60 s), ``requests_total``, ``tokens_total``, ``requests_available``,
        ``tokens_available``, ``waiting``, ``blocked_for_s``, ``penalties``,
        ``server_reset_requests_s``, ``server_reset_tokens_s``, ``tpm_utilisation``.
        """
        return self.snapshot().as_dict()

    def snapshot(self) -> LimiterStats:
        """Limits, availability and what was admitted (last minute and total), typed."""
        now = self._refill()
        self._prune(now)
        return LimiterStats(
            rpm_limit=_limit(self._requests),
            tpm_limit=_limit(self._tokens),
            requests_per_min=len(self._admitted),
            tokens_per_min=self._window_tokens,
            requests_total=self._requests_total,
            tokens_total=self._tokens_total,
            requests_available=None if self._requests is None else self._requests.level,
            tokens_available=None if self._tokens is None else self._tokens.level,
            waiting=self._waiting,
            blocked_for_s=max(0.0, self._blocked_until - now),
            penalties=self._penalties,
            server_reset_requests_s=self._reset_requests_s,
            server_reset_tokens_s=self._reset_tokens_s,
            token_factor=self.token_factor,
            request_factor=1.0 if self._requests is None else self._requests.calibration.factor,
            share=self._share,
        )

    def _refill(self) -> float:
        now = self._clock.monotonic()
        elapsed = now - self._last
        for bucket in (self._requests, self._tokens):
            if bucket is not None:
                bucket.refill(elapsed)
        self._last = max(self._last, now)
        return now

    def _wait_s(self, now: float, tokens: int) -> float:
        wait = self._blocked_until - now
        if self._requests is not None:
            wait = max(wait, self._requests.wait_s(self._requests.calibration.factor))
        if self._tokens is not None:
            wait = max(wait, self._tokens.wait_s(tokens * self._tokens.calibration.factor))
        return wait

    def _take(self, now: float, tokens: int, paced: bool = False, bound: bool = False) -> None:
        self._request_sends.add(now, 1, paced)
        self._token_sends.add(now, tokens, paced, bound)
        if self._requests is not None:
            self._requests.level -= self._requests.calibration.factor
        if self._tokens is not None:
            self._tokens.level -= tokens * self._tokens.calibration.factor
        self._admitted.append((now, tokens))
        self._window_tokens += tokens
        self._requests_total += 1
        self._tokens_total += tokens
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self._admitted and self._admitted[0][0] <= now - WINDOW_S:
            _, tokens = self._admitted.popleft()
            self._window_tokens -= tokens

    def _follow(
        self,
        bucket: _Bucket | None,
        sends: Sends,
        headers: Mapping[str, str],
        kind: str,
        now: float,
        sent_at: float | None,
    ) -> _Bucket | None:
        limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
        remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
        if limit is not None and limit > 0:
            if bucket is None:
                # Sent before the limit was known: any request above it was turned away.
                sends.reject_larger_than(limit)
                bucket = _Bucket(limit, sends, remaining, self._share)
            elif bucket.limit != limit:
                log.info("server %s limit is %d per minute (was %d)", kind, limit, bucket.limit)
                bucket.set_limit(limit)
        if bucket is not None and remaining is not None:
            bucket.follow(now, remaining, sent_at)
        return bucket


def _limit(bucket: _Bucket | None) -> int | None:
    return None if bucket is None else round(bucket.limit)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_go_duration(value)
    except ValueError:
        return None


class ModelLimiters:
    """One ``RateLimiter`` per model: OpenAI's limits (and their headers) are per model.

    Each starts from the configured limits and then follows its own model's headers.
    """

    def __init__(self, rpm: int | None, tpm: int | None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._rpm = rpm
        self._tpm = tpm
        self._clock = clock
        self._by_model: dict[str, RateLimiter] = {}

    def for_model(self, model: str) -> RateLimiter:
        """The limiter of ``model`` (created on first use)."""
        limiter = self._by_model.get(model)
        if limiter is None:
            limiter = self._by_model[model] = RateLimiter(self._rpm, self._tpm, self._clock)
        return limiter

    @property
    def models(self) -> dict[str, RateLimiter]:
        """The limiters created so far, by model."""
        return dict(self._by_model)

    def limits(self, model: str) -> tuple[int | None, int | None]:
        """(rpm, tpm) known for ``model``: learnt from headers, else configured."""
        limiter = self._by_model.get(model)
        if limiter is None:
            return self._rpm, self._tpm
        return limiter.rpm, limiter.tpm

    def stats(self) -> dict[str, Any]:
        """Admitted requests/tokens per minute summed over models (tokens as the server counts
        them, with each model's learnt factor), plus each model's stats."""
        per_model = {model: lim.stats() for model, lim in self._by_model.items()}
        return {
            "requests_per_min": sum(s["requests_per_min"] for s in per_model.values()),
            "tokens_per_min": round(
                sum(s["tokens_per_min"] * s["token_factor"] for s in per_model.values())
            ),
            "tpm_limit": sum(s["tpm_limit"] or 0 for s in per_model.values()) or self._tpm,
            "token_factors": {m: round(s["token_factor"], 3) for m, s in per_model.items()},
            "models": per_model,
        }
