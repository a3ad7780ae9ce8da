"""One admitted request of the simulator in flight, between ``execute`` and ``complete``."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.money import Usage
from pipeline.simulator.caching import CacheLookup
from pipeline.simulator.responses import OutputIds, Prepared
from pipeline.simulator.text import Generation


@dataclass
class Execution:
    """One admitted request in flight: where it was routed, what it will answer, how slowly."""

    prep: Prepared
    ids: OutputIds
    created_at: int
    lookup: CacheLookup
    generation: Generation
    ttft_s: float
    total_s: float
    reasoning_s: float = 0.0
    # Billed input tokens per prompt token (``SimulatorConfig.usage_token_factor``).
    billing_factor: float = 1.0

    def billed(self, tokens: int) -> int:
        """``tokens`` of the prompt as usage counts them."""
        return tokens if self.billing_factor == 1.0 else round(tokens * self.billing_factor)

    @property
    def cached_tokens(self) -> int:
        """Cached input tokens found at arrival."""
        return self.lookup.cached_tokens

    @property
    def cache_write_tokens(self) -> int:
        """Input tokens this request writes to the prompt cache (breakpoints regime)."""
        return self.lookup.cache_write_tokens

    @property
    def status(self) -> str:
        """``completed`` or ``incomplete``."""
        return "incomplete" if self.generation.incomplete else "completed"

    def usage(self) -> Usage:
        """Token counts as billed."""
        gen = self.generation
        return Usage(
            self.billed(self.prep.input_tokens),
            self.billed(self.cached_tokens),
            gen.output_tokens,
            gen.reasoning_tokens,
            self.billed(self.cache_write_tokens),
        )
