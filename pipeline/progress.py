"""Live counters of a run, for the progress display (the CLI renders them; flows log them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.db.models import Generation
from pipeline.db.runs import RunTotals


@dataclass
class Progress:
    """What a run has done so far; updated by the runner, read by displays."""

    limit_tpm: int | None = None
    claimed: int = 0
    started_requests: int = 0
    done: int = 0
    failed: int = 0
    from_cache: int = 0
    in_flight: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    limiter: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    def queued_seen(self, n: int) -> None:
        """Jobs claimed into this run."""
        self.claimed += n

    def started(self) -> None:
        """A request was handed to the client."""
        self.started_requests += 1

    def finished(self, generation: Generation, succeeded: bool) -> None:
        """A result was recorded."""
        if succeeded:
            self.done += 1
        else:
            self.failed += 1
        self.billed(generation)

    def billed(self, generation: Generation) -> None:
        """Add a generation's tokens and cost (a prewarm is billed but finishes no job)."""
        if generation.from_cache:
            self.from_cache += 1
        self.input_tokens += generation.input_tokens or 0
        self.cached_tokens += generation.cached_tokens or 0
        self.cache_write_tokens += generation.cache_write_tokens or 0
        self.output_tokens += generation.output_tokens or 0
        self.cost_usd += generation.cost_usd or Decimal(0)

    def totals(self) -> RunTotals:
        """The run's totals as counted here (when the database cannot give them)."""
        return RunTotals(
            requests=self.done + self.failed,
            succeeded=self.done,
            failed=self.failed,
            incomplete=0,
            from_cache=self.from_cache,
            input_tokens=self.input_tokens,
            cached_tokens=self.cached_tokens,
            cache_write_tokens=self.cache_write_tokens,
            output_tokens=self.output_tokens,
            reasoning_tokens=0,
            cost_usd=self.cost_usd,
            list_cost_usd=self.cost_usd,
        )

    @property
    def elapsed_s(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started_at

    @property
    def requests_per_s(self) -> float:
        """Finished requests per second so far."""
        return (self.done + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cached_ratio(self) -> float:
        """Cached share of input tokens so far."""
        return self.cached_tokens / self.input_tokens if self.input_tokens else 0.0

    @property
    def waiting(self) -> int:
        """Claimed jobs not finished yet."""
        return max(self.claimed - self.done - self.failed, 0)

    def line(self) -> str:
        """One plain log line (for non-terminals and logs)."""
        tpm = self.limiter.get("tokens_per_min")
        tpm_text = f"{tpm:,.0f}" if isinstance(tpm, int | float) else "-"
        if self.limit_tpm:
            tpm_text += f"/{self.limit_tpm:,}"
        return (
            f"done {self.done} failed {self.failed} waiting {self.waiting} "
            f"in-flight {self.in_flight} | {self.requests_per_s:.1f} req/s | "
            f"tokens/min {tpm_text} | cached {self.cached_ratio:.1%} "
            f"cache writes {self.cache_write_tokens:,} | ${self.cost_usd:.4f}"
        )
