"""Prices per model and service tier, and the cost of a response's usage.

Money is ``Decimal``. Cost is derived from token counts (the facts) and a price that was in
effect on the day the tokens were used; it is computed once, when a generation is written.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pipeline.errors import PricingError
from pipeline.money.cachepolicy import CachePolicySpec, PromptCachePolicy, resolve_policy
from pipeline.tomlfile import load_model

Tier = Literal["standard", "batch", "flex"]
TIERS: tuple[Tier, ...] = ("standard", "batch", "flex")
MTOK = Decimal(1_000_000)
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class TierPrice(BaseModel):
    """USD per 1M tokens for one tier; no ``cached_input`` means no cache discount.

    ``cache_write`` is the rate of tokens written to the prompt cache (GPT-5.6+); when the file
    leaves it out, the price table fills it from the model's cache policy (``write`` x input),
    so Batch and flex, whose input rate is halved, halve it too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Decimal = Field(ge=0)
    cached_input: Decimal | None = Field(default=None, ge=0)
    output: Decimal = Field(ge=0)
    cache_write: Decimal | None = Field(default=None, ge=0)

    @field_validator("input", "cached_input", "output", "cache_write", mode="before")
    @classmethod
    def _exact(cls, value: object) -> object:
        # TOML floats are binary; go through their shortest repr so 0.40 stays 0.40.
        return str(value) if isinstance(value, float) else value

    @property
    def cached_rate(self) -> Decimal:
        """USD per 1M cached input tokens (the input rate when the tier has no discount)."""
        return self.input if self.cached_input is None else self.cached_input

    @property
    def write_rate(self) -> Decimal:
        """USD per 1M tokens written to the cache (the input rate when writes are not billed)."""
        return self.input if self.cache_write is None else self.cache_write


class ModelPrice(BaseModel):
    """The prices of one model from ``effective_date`` on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    effective_date: dt.date
    standard: TierPrice
    batch: TierPrice | None = None
    flex: TierPrice | None = None

    def tier(self, tier: Tier) -> TierPrice | None:
        """This model's price for ``tier``, or None when the tier is not offered."""
        price: TierPrice | None = getattr(self, tier)
        return price


class PricingFile(BaseModel):
    """The content of ``config/pricing.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prices: list[ModelPrice] = Field(min_length=1)
    models: dict[str, CachePolicySpec] = Field(
        default_factory=dict, description="The prompt-cache policy of each model."
    )


@dataclass(frozen=True)
class Usage:
    """Token counts as the API reports them.

    ``input_tokens`` is inclusive: ``cached_tokens`` (read from the prompt cache) and
    ``cache_write_tokens`` (written to it, GPT-5.6+) are parts of it.
    """

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cached_tokens + other.cached_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def ordinary_input_tokens(self) -> int:
        """Input tokens billed at the plain input rate: neither read from nor written to cache."""
        return self.input_tokens - self.cached_tokens - self.cache_write_tokens


def base_model_name(model: str) -> str:
    """``gpt-4.1-mini-2025-04-14`` -> ``gpt-4.1-mini``: snapshots are priced as their family."""
    return _SNAPSHOT_SUFFIX.sub("", model)


def tier_of(service_tier: str | None) -> Tier:
    """Map the API's ``service_tier`` echo (``default``, ``auto``, ``flex``...) to a price tier."""
    return "flex" if service_tier == "flex" else "standard"


def cost_usd(usage: Usage, price: TierPrice) -> Decimal:
    """What ``usage`` costs at ``price``.

    Input is billed in three parts (API-NOTES §1.5: writes are not an additive fee): ordinary
    tokens at the input rate, cached tokens at the cached rate, cache writes at the write rate;
    then output (reasoning included).
    """
    total = (
        usage.ordinary_input_tokens * price.input
        + usage.cached_tokens * price.cached_rate
        + usage.cache_write_tokens * price.write_rate
        + usage.output_tokens * price.output
    )
    return total / MTOK


class PriceTable:
    """Model prices with history, and each model's prompt-cache policy.

    ``source`` names the file the table came from, for error messages. A tier without an
    explicit ``cache_write`` rate gets ``write`` x its input rate from the model's policy.
    """

    def __init__(
        self,
        prices: list[ModelPrice],
        policies: dict[str, CachePolicySpec] | None = None,
        *,
        source: str = "config/pricing.toml",
    ) -> None:
        self.source = source
        self._policies: dict[str, PromptCachePolicy] = {}
        self._by_model: dict[str, list[ModelPrice]] = {}
        for price in sorted(prices, key=lambda p: p.effective_date):
            self._by_model.setdefault(price.model, []).append(price)
        for model, spec in (policies or {}).items():
            rows = self._by_model.get(model)
            if not rows:
                raise PricingError(f"{source}: models.{model}: a cache policy but no price")
            standard = rows[-1].standard
            read = standard.cached_rate / standard.input if standard.input else Decimal(1)
            policy = self._policies[model] = resolve_policy(model, spec, read)
            self._by_model[model] = [_with_write_rates(row, policy.write) for row in rows]

    @property
    def models(self) -> list[str]:
        """Every model with at least one price."""
        return sorted(self._by_model)

    @property
    def entries(self) -> list[ModelPrice]:
        """Every price row, oldest first per model."""
        return [p for rows in self._by_model.values() for p in rows]

    def knows(self, model: str) -> bool:
        """True when ``model`` (or its snapshot family) has a price."""
        return base_model_name(model) in self._by_model or model in self._by_model

    def price(self, model: str, tier: Tier = "standard", on: dt.date | None = None) -> TierPrice:
        """The ``tier`` price of ``model`` in effect on ``on`` (default: the newest)."""
        rows = self._by_model.get(model) or self._by_model.get(base_model_name(model))
        if not rows:
            raise PricingError(f"no price for model {model!r} (add it to config/pricing.toml)")
        candidates = rows if on is None else [p for p in rows if p.effective_date <= on]
        if not candidates:
            raise PricingError(f"no price for model {model!r} in effect on {on}")
        tier_price = candidates[-1].tier(tier)
        if tier_price is None:
            raise PricingError(f"model {model!r} has no {tier} price")
        return tier_price

    def has_policy(self, model: str) -> bool:
        """True when ``model`` (or its snapshot family) has a prompt-cache policy."""
        return base_model_name(model) in self._policies or model in self._policies

    def policy(self, model: str) -> PromptCachePolicy:
        """The prompt-cache policy of ``model``; ``PricingError`` naming the file if none."""
        found = self._policies.get(model) or self._policies.get(base_model_name(model))
        if found is None:
            raise PricingError(
                f"{self.source}: no prompt-cache policy for model {model!r}: add "
                f'[models."{base_model_name(model)}"] with its regime (see API-NOTES §1.5)'
            )
        return found

    def tier_or_none(self, model: str, tier: Tier) -> TierPrice | None:
        """The newest ``tier`` price of ``model``, or None when it has none."""
        try:
            return self.price(model, tier)
        except PricingError:
            return None

    def cost(
        self, model: str, usage: Usage, tier: Tier = "standard", on: dt.date | None = None
    ) -> Decimal:
        """Cost of ``usage`` on ``model`` at ``tier`` on the day ``on``."""
        return cost_usd(usage, self.price(model, tier, on))


def _with_write_rates(price: ModelPrice, multiple: Decimal) -> ModelPrice:
    """``price`` with every tier's missing ``cache_write`` set to ``multiple`` x its input."""
    if multiple == 1:
        return price
    changes: dict[str, TierPrice] = {}
    for tier in TIERS:
        tier_price = price.tier(tier)
        if tier_price is not None and tier_price.cache_write is None:
            changes[tier] = tier_price.model_copy(
                update={"cache_write": tier_price.input * multiple}
            )
    return price.model_copy(update=changes) if changes else price


def load_pricing(path: Path) -> PriceTable:
    """Read ``pricing.toml`` into a ``PriceTable``; errors name the file and key."""
    data = load_model(path, PricingFile)
    return PriceTable(data.prices, data.models, source=str(path))
