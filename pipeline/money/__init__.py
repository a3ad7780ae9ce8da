"""Money: prices per model and tier, how each model's prompt cache bills, and a run's budget.

- ``pricing``: ``config/pricing.toml`` as a ``PriceTable``; the cost of a response's usage
  (``Decimal``, never float);
- ``cachepolicy``: each model's prompt-cache policy as data (regime, grid, minimum, write
  multiple, lifetimes);
- ``budget``: a spending cap that holds however many requests are in flight;
- ``recurring``: daily and monthly budgets per batch label, task or section (``budgets.toml``).
- ``usd``: ``format_usd``, money as people read it.
"""

from __future__ import annotations

from pipeline.money.budget import Budget, worst_case_cost
from pipeline.money.cachepolicy import CachePolicySpec, PromptCachePolicy, resolve_policy
from pipeline.money.pricing import (
    TIERS,
    PriceTable,
    Tier,
    TierPrice,
    Usage,
    base_model_name,
    cost_usd,
    load_pricing,
    tier_of,
)
from pipeline.money.recurring import (
    BUDGETS_FILE,
    BudgetFile,
    BudgetSpec,
    load_budgets,
    period_bounds,
)
from pipeline.money.usd import format_usd

__all__ = [
    "BUDGETS_FILE",
    "TIERS",
    "Budget",
    "BudgetFile",
    "BudgetSpec",
    "CachePolicySpec",
    "PriceTable",
    "PromptCachePolicy",
    "Tier",
    "TierPrice",
    "Usage",
    "base_model_name",
    "cost_usd",
    "format_usd",
    "load_budgets",
    "load_pricing",
    "period_bounds",
    "resolve_policy",
    "tier_of",
    "worst_case_cost",
]
