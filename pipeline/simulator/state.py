"""The simulator's state and the request life cycle shared by HTTP, streaming and batches.

``prepare`` (validate) -> ``execute`` (cache lookup at arrival in the model's regime, generation
or, for a prewarm, none; latency) -> ``complete`` (cache write, billing with cache reads and
writes, storing the answer). Everything runs on the server's event
loop; the ledger is the only part read from other threads, and it locks.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.money import PriceTable, Tier, load_pricing
from pipeline.settings import get_settings, packaged_config_dir
from pipeline.simulator.batches import BatchService
from pipeline.simulator.caching import PromptCache
from pipeline.simulator.clock import SimClock
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.execution import Execution
from pipeline.simulator.faults import Fault, FaultInjector
from pipeline.simulator.ledger import Ledger
from pipeline.simulator.prompt import History, assistant_ids
from pipeline.simulator.ratelimit import RateLimiter
from pipeline.simulator.responses import (
    OutputIds,
    Prepared,
    output_items,
    prepare,
    response_object,
    usage_object,
)
from pipeline.simulator.text import Generation, generate

# A prewarm generates nothing (API-NOTES §1.5).
NOTHING = Generation(
    text="", text_tokens=0, reasoning_tokens=0, summary=None, incomplete=False, has_message=False
)

# Knobs that cannot change on a running simulator (they shape its structure or identity).
FIXED_FIELDS = frozenset({"host", "port", "seed", "pricing_path", "cache_machines"})


def resolve_pricing_path(config: SimulatorConfig) -> Path:
    """The price table: the configured path, else ``<config_dir>/pricing.toml``, else the one
    shipped in the package (so an installed simulator prices like the checkout's)."""
    if config.pricing_path is not None:
        return config.pricing_path
    candidate = get_settings().config_dir / "pricing.toml"
    if candidate.exists():
        return candidate
    return packaged_config_dir() / "pricing.toml"


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for ``GET /v1/responses/{id}`` and ``previous_response_id``.

    The conversation (with its cache marks) is packed, 8 bytes a token: chains of long prompts
    add up.
    """

    body: dict[str, Any]
    conversation: History


class SimulatorState:
    """Config, clock, prices and every stateful part of a running simulator."""

    def __init__(self, config: SimulatorConfig, *, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock(frozen=config.freeze_clock)
        self.prices: PriceTable = load_pricing(resolve_pricing_path(config))
        self._build()

    def _build(self) -> None:
        self.ledger = Ledger(self.prices)
        self.cache = PromptCache(self.config, self.clock, self.prices)
        self.limiter = RateLimiter(self.config, self.clock)
        self.faults = FaultInjector(self.config)
        self.stored: OrderedDict[str, StoredResponse] = OrderedDict()
        self.batches = BatchService(self)

    def reset(self) -> None:
        """Forget everything: ledger, caches, rate buckets, faults, stored answers, batches."""
        self._build()

    def configure(self, changes: dict[str, Any]) -> SimulatorConfig:
        """Change knobs at runtime (fault rates, limits, latency...); returns the new config.

        Raises ValueError for unknown or fixed fields and pydantic's ValidationError for bad
        values.
        """
        fixed = sorted(set(changes) & FIXED_FIELDS)
        if fixed:
            raise ValueError(f"cannot change {', '.join(fixed)} on a running simulator")
        config = SimulatorConfig.model_validate({**self.config.model_dump(), **changes})
        self.config = config
        self.cache.reconfigure(config)
        self.faults.reconfigure(config)
        self.limiter.reconfigure(config)
        return config

    def history(self, response_id: str) -> History | None:
        """The stored conversation of ``response_id`` (None when unknown or not stored)."""
        stored = self.stored.get(response_id)
        return stored.conversation if stored else None

    def prepare(self, body: Any) -> Prepared:
        """Validate a request body (raises ``SimAPIError`` with the API's 400)."""
        return prepare(body, self.prices, self.config.seed, self.history)

    def execute(self, prep: Prepared, fault: Fault, *, overflow: bool = True) -> Execution:
        """Route and look up the prompt cache, generate the answer and time it."""
        cfg = self.config
        if prep.cache.explicit:
            lookup = self.cache.lookup_breakpoints(prep.model, prep.prompt, prep.cache)
        else:
            lookup = self.cache.lookup(
                prep.model,
                prep.prompt.ids,
                prep.body.get("prompt_cache_key"),
                prep.cache.retention,
                overflow=overflow,
            )
        if prep.prewarm:
            generation = NOTHING
        else:
            generation = generate(
                prep.generation,
                incomplete_rate=cfg.incomplete_rate,
                force_incomplete=fault.kind == "incomplete",
                default_tokens=(cfg.default_text_tokens_min, cfg.default_text_tokens_max),
                obey_rate=cfg.obey_rate,
                hallucination_rate=cfg.hallucination_rate,
            )
        uncached = prep.input_tokens - lookup.cached_tokens
        ttft = cfg.base_latency_s + uncached * cfg.uncached_input_token_s
        ttft += lookup.cached_tokens * cfg.cached_input_token_s
        total = ttft + generation.output_tokens * cfg.output_token_s
        factor = cfg.latency_scale * (cfg.flex_latency_factor if prep.tier == "flex" else 1.0)
        reasoning = generation.reasoning_tokens * cfg.output_token_s * factor
        return Execution(
            prep=prep,
            ids=OutputIds.new(),
            created_at=int(self.clock.wall()),
            lookup=lookup,
            generation=generation,
            ttft_s=ttft * factor + fault.extra_latency_s,
            total_s=total * factor + fault.extra_latency_s,
            reasoning_s=reasoning,
            billing_factor=cfg.usage_token_factor,
        )

    def final_object(
        self, execution: Execution, *, service_tier: str | None = None
    ) -> dict[str, Any]:
        """The finished Response object of ``execution``."""
        prep, gen = execution.prep, execution.generation
        return response_object(
            prep,
            execution.ids.response,
            execution.created_at,
            status=execution.status,
            output=output_items(prep, gen, execution.ids),
            usage=usage_object(execution.usage()),
            completed_at=int(self.clock.wall()) if execution.status == "completed" else None,
            service_tier=service_tier,
        )

    def complete(self, execution: Execution, tier: Tier | None = None) -> dict[str, Any]:
        """Finish a request: write its prefix to the cache, bill it, store it; returns the body."""
        prep = execution.prep
        self.cache.write(execution.lookup)
        billed_tier: Tier = tier or prep.tier
        usage = execution.usage()
        self.ledger.record(prep.model, billed_tier, execution.status, usage)
        self.ledger.cache_event(
            cached_tokens=usage.cached_tokens,
            input_tokens=usage.input_tokens,
            overflowed=execution.lookup.overflowed,
            cache_write_tokens=usage.cache_write_tokens,
            prewarm=prep.prewarm,
        )
        body = self.final_object(execution)
        if prep.store and billed_tier != "batch":
            self._store(execution, body)
        return body

    def _store(self, execution: Execution, body: dict[str, Any]) -> None:
        limit = self.config.max_stored_responses
        if limit == 0:
            return
        prep = execution.prep
        reply = [] if prep.prewarm else assistant_ids(execution.generation.text, prep.model)
        self.stored[execution.ids.response] = StoredResponse(body, prep.prompt.carried(reply))
        while len(self.stored) > limit:
            self.stored.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        """The ledger plus limiter and cache figures, JSON-ready.

        Shape: ``models.<model>.<tier>`` and ``totals`` each with ``requests`` (by status:
        completed, incomplete, failed, 429, 4xx, 5xx, dropped), ``input_tokens``,
        ``cached_tokens``, ``cache_write_tokens``, ``output_tokens``, ``reasoning_tokens``,
        ``cost_usd`` (decimal string, cache writes included); ``in_flight``, ``max_in_flight``,
        ``retry_counts`` (by ``x-stainless-retry-count``), ``cache`` (lookups, hits,
        cached/input tokens, cache_write_tokens, prewarms, overflow routes, entries),
        ``rate_limits.<family>`` (limits, admitted requests/tokens, remaining) and ``clock``
        (simulated monotonic seconds).
        """
        data = self.ledger.snapshot()
        data["cache"]["entries"] = self.cache.entries()
        data["rate_limits"] = self.limiter.usage()
        data["faults_pending"] = self.faults.pending()
        data["clock"] = {"now_s": round(self.clock.now(), 3), "frozen": self.clock.frozen}
        return data
