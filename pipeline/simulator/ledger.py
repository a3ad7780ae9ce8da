"""What the simulator billed and counted: per model and tier, with totals (money is Decimal).

Billed: completed and incomplete responses (sync, flex and batch lines). Counted, not billed:
429s, other 4xx, 5xx, dropped connections and streams that failed. Costs come from the same
``PriceTable`` as the pipeline's (flex at the flex tier, batch lines at the batch tier), input
in three parts: ordinary, cache reads and cache writes (GPT-5.6+, API-NOTES §1.5).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.money import PriceTable, Tier, Usage

STATUSES = ("completed", "incomplete", "failed", "429", "4xx", "5xx", "dropped")
CACHE_FIGURES = (
    "lookups",
    "hits",
    "cached_tokens",
    "cache_write_tokens",
    "input_tokens",
    "prewarms",
    "overflow_routes",
)
BILLED = frozenset({"completed", "incomplete"})


@dataclass
class Account:
    """Counts and cost of one (model, tier) or of everything."""

    requests: Counter[str] = field(default_factory=Counter)
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, status: str, usage: Usage | None, cost: Decimal) -> None:
        """Count one request with ``status``; add its usage and cost when billed."""
        self.requests[status] += 1
        if usage is not None:
            self.input_tokens += usage.input_tokens
            self.cached_tokens += usage.cached_tokens
            self.cache_write_tokens += usage.cache_write_tokens
            self.output_tokens += usage.output_tokens
            self.reasoning_tokens += usage.reasoning_tokens
            self.cost_usd += cost

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: request counts by status, token sums, cost as a decimal string."""
        return {
            "requests": {status: self.requests.get(status, 0) for status in STATUSES},
            "input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_usd": str(self.cost_usd),
        }


class Ledger:
    """Thread-safe tallies; the server's loop writes, tests and the admin route read."""

    def __init__(self, prices: PriceTable) -> None:
        self._prices = prices
        self._lock = threading.Lock()
        self._accounts: dict[tuple[str, Tier], Account] = {}
        self._total = Account()
        self._retry_counts: Counter[str] = Counter()
        self._cache: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    def record(self, model: str, tier: Tier, status: str, usage: Usage | None = None) -> Decimal:
        """Count a request; bill ``usage`` when ``status`` is billed. Returns the cost."""
        billed = usage if status in BILLED else None
        cost = Decimal(0)
        if billed is not None and self._prices.knows(model):
            cost = self._prices.cost(model, billed, tier)
        with self._lock:
            account = self._accounts.setdefault((model, tier), Account())
            account.add(status, billed, cost)
            self._total.add(status, billed, cost)
        return cost

    def started(self, retry_count: str | None) -> None:
        """A request entered the server (``retry_count``: its ``x-stainless-retry-count``)."""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._retry_counts[retry_count if retry_count is not None else "none"] += 1

    def finished(self) -> None:
        """A request left the server (any outcome)."""
        with self._lock:
            self.in_flight -= 1

    def cache_event(
        self,
        *,
        cached_tokens: int,
        input_tokens: int,
        overflowed: bool,
        cache_write_tokens: int = 0,
        prewarm: bool = False,
    ) -> None:
        """Tally one cache lookup (and the writes) of a billed request."""
        with self._lock:
            self._cache["lookups"] += 1
            self._cache["hits"] += 1 if cached_tokens else 0
            self._cache["cached_tokens"] += cached_tokens
            self._cache["cache_write_tokens"] += cache_write_tokens
            self._cache["input_tokens"] += input_tokens
            self._cache["prewarms"] += 1 if prewarm else 0
            self._cache["overflow_routes"] += 1 if overflowed else 0

    def snapshot(self) -> dict[str, Any]:
        """The ledger as JSON-ready data (see ``state.SimulatorState.snapshot`` for the shape)."""
        with self._lock:
            models: dict[str, dict[str, Any]] = {}
            for (model, tier), account in sorted(self._accounts.items()):
                models.setdefault(model, {})[tier] = account.as_dict()
            return {
                "models": models,
                "totals": self._total.as_dict(),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "retry_counts": dict(sorted(self._retry_counts.items())),
                "cache": {key: self._cache.get(key, 0) for key in CACHE_FIGURES},
            }

    def total_cost(self) -> Decimal:
        """Everything billed so far, in USD."""
        with self._lock:
            return self._total.cost_usd
