"""The simulator's knobs: one frozen pydantic model, defaults that behave like a generous account.

Every random decision (faults, overflow routing, batch line failures) is drawn from RNGs seeded
with ``seed``; generated text depends only on the request and ``seed``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ConfigError
from pipeline.money import base_model_name

REHEARSAL_OBEY_RATE = 0.85
REHEARSAL_HALLUCINATION_RATE = 0.03


class SimulatorConfig(BaseModel):
    """Everything that shapes the simulator's behaviour (rates are probabilities in [0, 1])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port.")
    seed: int = 0
    api_keys: tuple[str, ...] = Field(
        default=(), description="Keys the server accepts (401 for others); empty: any key."
    )
    pricing_path: Path | None = Field(
        default=None, description="pricing.toml; None: <config_dir>/pricing.toml, then the repo's."
    )

    # Latency: (base + per-token costs) * latency_scale; 0 disables every sleep except slow faults.
    latency_scale: float = Field(default=1.0, ge=0)
    base_latency_s: float = Field(default=0.2, ge=0)
    uncached_input_token_s: float = Field(default=0.00005, ge=0, description="Prefill per token.")
    cached_input_token_s: float = Field(default=0.000005, ge=0)
    output_token_s: float = Field(default=0.005, ge=0, description="Decode time per token.")
    flex_latency_factor: float = Field(default=2.5, ge=1)
    slow_extra_s: float = Field(default=3.0, ge=0, description="Added by a slow fault (unscaled).")
    freeze_clock: bool = Field(
        default=False, description="Simulated time moves only through clock.advance() (tests)."
    )

    # Rate limits (token buckets refilled continuously; capacity = the per-minute limit).
    rpm: int = Field(default=10_000, ge=1, description="Requests/min for models not in model_rpm.")
    tpm: int = Field(
        default=10_000_000, ge=1, description="Tokens/min for models not in model_tpm."
    )
    model_rpm: dict[str, int] = Field(default_factory=dict)
    model_tpm: dict[str, int] = Field(default_factory=dict)
    default_output_estimate: int = Field(
        default=4096, ge=0, description="Output tokens reserved when max_output_tokens is absent."
    )
    # How a request's prompt is counted against TPM (``ratelimit.prompt_charge``): OpenAI
    # estimates it from characters, not with the tokenizer. Billing (usage) stays o200k.
    ratelimit_counting: Literal["tokens", "chars"] = Field(
        default="tokens",
        description="tokens: the prompt's tiktoken count; chars: its text characters / 4.",
    )
    ratelimit_token_factor: float = Field(
        default=1.0, gt=0, le=100, description="Multiplies the counted prompt (x0.5: half)."
    )
    # How usage (and so the bill) counts input tokens: a server with another tokenizer bills
    # another count for the same prompt. Input, cached and written tokens are multiplied.
    usage_token_factor: float = Field(
        default=1.0, gt=0, le=100, description="Multiplies billed input tokens (x0.53)."
    )

    # Faults.
    fail_rate: float = Field(default=0.0, ge=0, le=1, description="HTTP 500 server_error.")
    overload_rate: float = Field(default=0.0, ge=0, le=1, description="HTTP 503 overloaded.")
    drop_rate: float = Field(default=0.0, ge=0, le=1, description="Connection closed, no reply.")
    slow_rate: float = Field(default=0.0, ge=0, le=1, description="Adds slow_extra_s of latency.")
    flex_unavailable_rate: float = Field(default=0.0, ge=0, le=1, description="Flex 429.")
    stream_fail_rate: float = Field(default=0.0, ge=0, le=1, description="response.failed.")
    incomplete_rate: float = Field(
        default=0.0, ge=0, le=1, description="Extra cut at max_output_tokens (per request hash)."
    )

    # Instruction following (pipeline.simulator.following). An obedient, faithful model by
    # default (tests count requests); `contentgen simulate` and the demo rehearse with
    # REHEARSAL_OBEY_RATE and REHEARSAL_HALLUCINATION_RATE, so checks and retries show.
    obey_rate: float = Field(
        default=1.0, ge=0, le=1, description="Answers that keep a stated word limit."
    )
    hallucination_rate: float = Field(
        default=0.0, ge=0, le=1, description="Answers with one article figure changed."
    )

    # Prompt caching. The regime, minimum prefix and grid step of a model come from its policy
    # in the price table; cache_min_tokens and cache_block_tokens apply to models without one.
    cache_machines: int = Field(default=8, ge=1, description="Grid regime machines.")
    cache_ttl_s: float = Field(default=300.0, gt=0, description="Idle expiry (in_memory).")
    cache_extended_ttl_s: float = Field(default=86_400.0, gt=0, description="retention '24h'.")
    cache_min_tokens: int = Field(default=1024, ge=1)
    cache_block_tokens: int = Field(default=128, ge=1)
    routing_prefix_tokens: int = Field(default=256, ge=1)
    overflow_rpm: int = Field(
        default=15, ge=1, description="Per key (all prefixes), or per prefix without a key."
    )
    # API-NOTES §1.5: the Oct 2026 guide counts ~15 req/min per key across all its prefixes
    # ("key", the stricter reading and the default); the Dec 2025 wording per prefix and key
    # combination ("prefix").
    overflow_per: Literal["key", "prefix"] = Field(
        default="key",
        description="key: overflow counted per key over all its prefixes; "
        "prefix: per (prefix, key) combination.",
    )
    cache_max_blocks: int = Field(
        default=200_000,
        ge=1,
        description="Blocks a machine (or breakpoint entries the 5.6+ cache) holds before "
        "evicting the idlest.",
    )

    # Output length when max_output_tokens is absent (tokens of visible text).
    default_text_tokens_min: int = Field(default=150, ge=1)
    default_text_tokens_max: int = Field(default=450, ge=1)
    max_stored_responses: int = Field(
        default=20_000, ge=0, description="Kept for GET and previous_response_id (oldest go)."
    )

    # Batches: durations in simulated seconds, divided by batch_speed.
    batch_speed: float = Field(default=1.0, gt=0)
    batch_validate_s: float = Field(default=10.0, ge=0)
    batch_base_s: float = Field(default=60.0, ge=0)
    batch_line_s: float = Field(default=0.2, ge=0)
    batch_finalize_s: float = Field(default=10.0, ge=0)
    batch_cancel_s: float = Field(default=30.0, ge=0)
    batch_line_failure_rate: float = Field(default=0.0, ge=0, le=1)
    batch_expire_rate: float = Field(default=0.0, ge=0, le=1, description="Batches that expire.")
    batch_expire_unfinished: float = Field(
        default=0.3, ge=0, le=1, description="Share of lines left unfinished by an expiry."
    )
    batch_queue_limit: int = Field(default=5_000_000_000, ge=1, description="Enqueued tokens.")
    model_batch_queue_limit: dict[str, int] = Field(default_factory=dict)

    def rpm_for(self, model: str) -> int:
        """Requests per minute allowed for ``model`` (snapshots share their family's limit)."""
        return self.model_rpm.get(base_model_name(model), self.rpm)

    def tpm_for(self, model: str) -> int:
        """Tokens per minute allowed for ``model``."""
        return self.model_tpm.get(base_model_name(model), self.tpm)

    def batch_queue_limit_for(self, model: str) -> int:
        """Enqueued prompt tokens allowed in pending batches of ``model``."""
        return self.model_batch_queue_limit.get(base_model_name(model), self.batch_queue_limit)


def parse_bill_tokens(value: str) -> float:
    """The ``usage_token_factor`` of a ``--bill-tokens`` value (``o200k`` or ``x<factor>``)."""
    fields = parse_ratelimit_tokens(value, option="--bill-tokens")
    if fields["ratelimit_counting"] != "tokens":
        raise ConfigError(f"invalid --bill-tokens {value!r}: use o200k or x<factor>, e.g. x0.53")
    return float(fields["ratelimit_token_factor"])


def parse_ratelimit_tokens(
    value: str, option: str = "--ratelimit-tokens"
) -> dict[str, str | float]:
    """The config fields of a ``--ratelimit-tokens`` value: ``o200k``, ``x<factor>``, ``chars``.

    Raises ``ConfigError`` naming the accepted forms.
    """
    text = value.strip().lower()
    if text in ("o200k", "tokens"):
        return {"ratelimit_counting": "tokens", "ratelimit_token_factor": 1.0}
    if text == "chars":
        return {"ratelimit_counting": "chars", "ratelimit_token_factor": 1.0}
    if text.startswith("x"):
        try:
            factor = float(text[1:])
        except ValueError:
            factor = math.nan
        if math.isfinite(factor) and 0 < factor <= 100:
            return {"ratelimit_counting": "tokens", "ratelimit_token_factor": factor}
    raise ConfigError(
        f"invalid {option} {value!r}: use o200k, chars or x<factor> with a factor "
        "in (0, 100], e.g. x0.5"
    )
