"""How a model's prompt cache works and what it costs: one policy per model, as data.

The provider's cache has three regimes (API-NOTES.md §1.5), and a pipeline must choose its
request shape, cache-key policy, retention field and cost formula per model:

- ``grid`` (models before GPT-5.6): prefixes of at least ``min_prefix`` tokens are cached
  implicitly on a ``step``-token grid (128; gpt-5.5: 2,048), after the request carrying them
  finished, on the machine ``prompt_cache_key`` routes to (~15 requests/min per key across all
  its prefixes). Writes are free; ``prompt_cache_retention`` takes the values in ``retention``.
- ``breakpoints`` (GPT-5.6 and later): prefixes are written at explicit breakpoints on
  ``input_text`` blocks (at most ``max_writes`` per request), billed at ``write`` x the input
  rate and read at the cached rate; ``cached_tokens`` is the exact matched boundary; routing is
  automatic (the key is accounting only); ``prompt_cache_options.ttl`` takes ``ttl`` values.

Policies live in ``config/pricing.toml`` under ``[models."<name>"]``, next to the prices, so
that nothing else in the code branches on model names. Read multipliers come from the prices
(``cached_input / input``); the write multiplier from the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Regime = Literal["grid", "breakpoints"]
Retention = Literal["in_memory", "24h"]

# How long an idle prefix stays cached, per lifetime value (API-NOTES §1.1, §1.5). The in-memory
# cache keeps prefixes "5 to 10 minutes of inactivity": plan with the low end.
LIFETIME_S: dict[str, float] = {
    "in_memory": 300.0,
    "24h": 86_400.0,
    "30m": 1_800.0,
    "12h": 43_200.0,  # listed by openai SDK 3.57 for prompt_cache_options.ttl; not in API-NOTES
}


class CachePolicySpec(BaseModel):
    """A model's cache policy as written in pricing.toml; unset fields follow the regime."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regime: Regime
    min_prefix: int | None = Field(default=None, ge=1, description="Shortest cacheable prefix.")
    step: int | None = Field(default=None, ge=1, description="Grid step (grid regime).")
    write: Decimal | None = Field(
        default=None, ge=0, description="Cache-write price as a multiple of the input price."
    )
    key_routes: bool | None = Field(
        default=None, description="Whether prompt_cache_key steers routing (grid regime)."
    )
    key_rpm: float = Field(default=15.0, gt=0, description="Requests/min one key can carry.")
    retention: tuple[Retention, ...] = Field(
        default=(), description="prompt_cache_retention values the model accepts."
    )
    ttl: tuple[str, ...] = Field(
        default=(), description="prompt_cache_options.ttl values (breakpoints regime)."
    )
    max_writes: int = Field(default=4, ge=1, description="Cache writes per request (breakpoints).")
    # The model's own limits, where published: a profile asking for more output is a config
    # error, a request longer than the context window fails its job at once (``too_large``).
    max_output_tokens: int | None = Field(
        default=None, ge=16, description="Most output (reasoning included) one response may have."
    )
    context_window: int | None = Field(
        default=None, ge=1, description="Prompt plus output tokens one request may have."
    )

    @field_validator("write", mode="before")
    @classmethod
    def _exact(cls, value: object) -> object:
        return str(value) if isinstance(value, float) else value

    @model_validator(mode="after")
    def _consistent(self) -> CachePolicySpec:
        if self.regime == "grid" and self.ttl:
            raise ValueError("'ttl' is for the breakpoints regime; grid models use 'retention'")
        if self.regime == "breakpoints" and self.retention:
            raise ValueError("'retention' is for the grid regime; breakpoints models use 'ttl'")
        unknown = [t for t in self.ttl if t not in LIFETIME_S]
        if unknown:
            raise ValueError(f"unknown ttl value(s) {unknown}; known: {sorted(LIFETIME_S)}")
        return self


@dataclass(frozen=True)
class PromptCachePolicy:
    """A model's resolved cache policy (see the module docstring).

    ``read`` and ``write`` are multiples of the input price: what a cached token and a token
    written to the cache cost. ``write`` is 1 where writes carry no premium (grid models).
    """

    model: str
    regime: Regime
    min_prefix: int
    step: int
    read: Decimal
    write: Decimal
    key_routes: bool
    key_rpm: float
    retention: tuple[str, ...]
    ttl: tuple[str, ...]
    max_writes: int
    max_output_tokens: int | None = None
    context_window: int | None = None

    @property
    def explicit(self) -> bool:
        """True on GPT-5.6+: explicit breakpoints, paid writes, automatic routing."""
        return self.regime == "breakpoints"

    @property
    def threshold(self) -> int:
        """The smallest prefix that caches anything: ``min_prefix`` rounded up to ``step``."""
        return -(-self.min_prefix // self.step) * self.step

    def cacheable(self, depth: int) -> int:
        """Tokens a cache serves of a ``depth``-token shared prefix (0 when too short)."""
        cached = depth // self.step * self.step
        return cached if cached >= self.min_prefix else 0

    def accepts_retention(self, value: str) -> bool:
        """True when ``prompt_cache_retention: value`` is accepted by the model."""
        return value in self.retention

    @property
    def long_retention(self) -> str | None:
        """The longest lifetime the model accepts in a request field, or None."""
        if self.explicit:
            return max(self.ttl, key=LIFETIME_S.__getitem__) if self.ttl else None
        return "24h" if "24h" in self.retention else None

    def lifetime_s(self, value: str | None) -> float:
        """How long an idle prefix stays cached with lifetime ``value`` (None: the default)."""
        if value is not None:
            return LIFETIME_S[value]
        if self.explicit:
            return LIFETIME_S["30m"]
        # A model that accepts only "24h" keeps prefixes that long by default (gpt-5.5).
        return LIFETIME_S["24h"] if self.retention == ("24h",) else LIFETIME_S["in_memory"]

    def padding_pays(self, shared_tokens: int, requests: int) -> bool:
        """Whether padding a ``shared_tokens`` prefix up to the minimum would pay (§1.5).

        The guide's break-even: expand when L > M * (r + (w - r) / N), with L the shared
        tokens, M the minimum, r and w the read and write multipliers and N the requests that
        would share the padded prefix.
        """
        if requests <= 0:
            return False
        minimum = Decimal(self.threshold)
        bar = minimum * (self.read + (self.write - self.read) / Decimal(requests))
        return Decimal(shared_tokens) > bar


def resolve_policy(model: str, spec: CachePolicySpec, read: Decimal) -> PromptCachePolicy:
    """The policy of ``model`` with the regime's defaults filled in.

    ``read`` is the model's cached-input price over its input price (standard tier).
    """
    explicit = spec.regime == "breakpoints"
    return PromptCachePolicy(
        model=model,
        regime=spec.regime,
        min_prefix=spec.min_prefix or 1024,
        step=spec.step or (1 if explicit else 128),
        read=read,
        write=spec.write if spec.write is not None else Decimal("1.25" if explicit else "1"),
        key_routes=spec.key_routes if spec.key_routes is not None else not explicit,
        key_rpm=spec.key_rpm,
        retention=tuple(spec.retention) or (() if explicit else ("in_memory",)),
        ttl=tuple(spec.ttl) or (("30m",) if explicit else ()),
        max_writes=spec.max_writes,
        max_output_tokens=spec.max_output_tokens,
        context_window=spec.context_window,
    )
