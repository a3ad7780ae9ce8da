"""Per-model RPM and TPM token buckets, their ``x-ratelimit-*`` headers and 429 bodies.

Each bucket holds up to the per-minute limit and refills continuously (limit/60 per second), so
one request of a 10,000 RPM bucket is back after 6 ms, like the real headers show (§5.3).

A request costs one request and an estimate of tokens: its prompt's charge plus its
``max_output_tokens`` (``default_output_estimate``, 4096, when absent). This mirrors OpenAI's
"maximum of max_tokens and the estimated tokens" pre-check and the cookbook's prompt + max_tokens
throttler (§5.5); nothing is refunded after the answer. A rejected request consumes nothing.

The prompt's charge (``prompt_charge``) is by default its input tokens as billed (tiktoken).
OpenAI's pre-check estimates it from the characters of the request instead, so the real
count differs from the tokenizer's (an emulator we compared counts about 1/1.9 of o200k);
``ratelimit_counting="chars"`` counts the prompt's text characters / 4 (rounded up) plus its
structural tokens (message framing, images), and ``ratelimit_token_factor`` multiplies
either count (rounded to an integer). The ``x-ratelimit-*-tokens`` headers, 429 decisions and
their "Requested N" figures use the charge; ``usage`` in the answer does not change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.money import base_model_name
from pipeline.prompts import encoding_name, get_encoding
from pipeline.simulator.apierrors import SimAPIError
from pipeline.simulator.clock import SimClock
from pipeline.simulator.config import SimulatorConfig

ORGANIZATION = "org-simulator"
_LIMITS_URL = "Visit https://platform.openai.com/account/rate-limits to learn more."


def go_duration(seconds: float) -> str:
    """A duration the way Go prints it, at millisecond precision: 0s, 6ms, 3.114s, 6m0s."""
    ms = math.ceil(seconds * 1000 - 1e-9) if seconds > 0 else 0
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def prompt_charge(ids: Sequence[int], model: str, config: SimulatorConfig) -> int:
    """What a prompt of token ``ids`` takes from ``model``'s TPM bucket (module docstring)."""
    if config.ratelimit_counting == "chars":
        # Text tokens have tiktoken ids >= 0; framing and image tokens are negative.
        text_ids = [i for i in ids if i >= 0]
        chars = len(get_encoding(encoding_name(model)).decode(text_ids))
        counted = math.ceil(chars / 4) + len(ids) - len(text_ids)
    else:
        counted = len(ids)
    return round(config.ratelimit_token_factor * counted)


class Bucket:
    """A continuously refilled token bucket whose capacity is a per-minute limit."""

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.level = float(limit)
        self._rate = limit / 60.0
        self._updated = now

    def refill(self, now: float) -> None:
        """Add what flowed in since the last update (never above the limit)."""
        if now > self._updated:
            self.level = min(float(self.limit), self.level + (now - self._updated) * self._rate)
            self._updated = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` is available."""
        return max(0.0, (amount - self.level) / self._rate)

    def reset_s(self) -> float:
        """Seconds until the bucket is full again."""
        return max(0.0, (self.limit - self.level) / self._rate)


@dataclass
class _ModelBuckets:
    requests: Bucket
    tokens: Bucket
    admitted_requests: int = 0
    admitted_tokens: int = 0


class RateLimiter:
    """The account's synchronous limits, one pair of buckets per model family."""

    def __init__(self, config: SimulatorConfig, clock: SimClock) -> None:
        self._config = config
        self._clock = clock
        self._models: dict[str, _ModelBuckets] = {}

    def reconfigure(self, config: SimulatorConfig) -> None:
        """Use ``config``; when its limits changed, buckets are rebuilt (full) on next use."""
        old = self._config
        changed = (old.rpm, old.tpm, old.model_rpm, old.model_tpm) != (
            config.rpm,
            config.tpm,
            config.model_rpm,
            config.model_tpm,
        )
        self._config = config
        if changed:
            self._models.clear()

    def _buckets(self, model: str) -> _ModelBuckets:
        family = base_model_name(model)
        buckets = self._models.get(family)
        if buckets is None:
            now = self._clock.now()
            buckets = _ModelBuckets(
                Bucket(self._config.rpm_for(family), now), Bucket(self._config.tpm_for(family), now)
            )
            self._models[family] = buckets
        now = self._clock.now()
        buckets.requests.refill(now)
        buckets.tokens.refill(now)
        return buckets

    def headers(self, model: str) -> dict[str, str]:
        """The six ``x-ratelimit-*`` headers for ``model`` as of now."""
        b = self._buckets(model)
        return {
            "x-ratelimit-limit-requests": str(b.requests.limit),
            "x-ratelimit-limit-tokens": str(b.tokens.limit),
            "x-ratelimit-remaining-requests": str(max(0, int(b.requests.level))),
            "x-ratelimit-remaining-tokens": str(max(0, int(b.tokens.level))),
            "x-ratelimit-reset-requests": go_duration(b.requests.reset_s()),
            "x-ratelimit-reset-tokens": go_duration(b.tokens.reset_s()),
        }

    def admit(self, model: str, tokens: int) -> dict[str, str]:
        """Take one request and ``tokens`` from ``model``'s buckets and return the headers.

        Raises ``SimAPIError`` (429 with the real body, headers and retry hints) when a bucket
        is short; then nothing is taken.
        """
        b = self._buckets(model)
        if tokens > b.tokens.limit:
            raise SimAPIError(
                429,
                f"Request too large for {model} in organization {ORGANIZATION} on tokens per min "
                f"(TPM): Limit {b.tokens.limit}, Requested {tokens}. The input or output tokens "
                f"must be reduced in order to run successfully. {_LIMITS_URL}",
                type="tokens",
                code="rate_limit_exceeded",
                headers=self.headers(model),
            )
        if b.requests.level < 1:
            self._reject(model, "requests", b.requests, 1)
        if b.tokens.level < tokens:
            self._reject(model, "tokens", b.tokens, tokens)
        b.requests.level -= 1
        b.tokens.level -= tokens
        b.admitted_requests += 1
        b.admitted_tokens += tokens
        return self.headers(model)

    def _reject(self, model: str, kind: str, bucket: Bucket, amount: int) -> None:
        wait = bucket.wait_s(amount)
        label = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
        used = bucket.limit - max(0, int(bucket.level))
        headers = self.headers(model)
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        raise SimAPIError(
            429,
            f"Rate limit reached for {model} in organization {ORGANIZATION} on {label}: "
            f"Limit {bucket.limit}, Used {used}, Requested {amount}. Please try again in "
            f"{go_duration(wait)}. {_LIMITS_URL}",
            type=kind,
            code="rate_limit_exceeded",
            headers=headers,
        )

    def usage(self) -> dict[str, dict[str, int]]:
        """Per model family: limits, admitted requests/tokens and what is left right now."""
        for family in list(self._models):
            self._buckets(family)
        return {
            family: {
                "rpm_limit": b.requests.limit,
                "tpm_limit": b.tokens.limit,
                "requests_admitted": b.admitted_requests,
                "tokens_admitted": b.admitted_tokens,
                "requests_remaining": max(0, int(b.requests.level)),
                "tokens_remaining": max(0, int(b.tokens.level)),
            }
            for family, b in self._models.items()
        }
