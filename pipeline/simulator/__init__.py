"""A local server that speaks the OpenAI Responses, Files and Batches APIs (API-NOTES.md).

It reproduces what our cost and reliability claims depend on: prompt caching in the three
regimes of API-NOTES §1.5, chosen per model from the price table's cache policies
(``config/pricing.toml`` ``[models]``):

- models before gpt-5.5 (grid): 1,024-token minimum, 128-token steps, write-after-finish,
  routing by prefix and ``prompt_cache_key``, overflow above ~15 requests/min per key across
  all its prefixes, idle expiry, ``prompt_cache_retention`` values per model;
- gpt-5.5 (grid): the same on a 2,048-token grid from 2,048 tokens, retention ``24h`` only;
- GPT-5.6+ (breakpoints): explicit ``prompt_cache_breakpoint`` blocks and the implicit
  breakpoint, ``prompt_cache_options`` (mode, ttl, prewarm), exact ``cached_tokens``, paid
  writes reported in ``cache_write_tokens`` (at most four per request), 30-minute lifetime,
  automatic routing; fields of one regime sent to a model of another are a 400.

Where API-NOTES is silent the modules say so (INFERENCE), e.g. ``breakpoints`` on which writes
are kept and when they become visible. Also: rate limits with their headers and 429 bodies,
faults, streaming events, reasoning models, structured outputs, batches and a ledger of what
was billed (cache writes included). The real ``openai`` SDK works against it via ``base_url``.

Public API: ``SimulatorConfig``, ``SimulatorServer`` (in-process), ``SimulatorState``,
``serve_forever`` (foreground), ``count_input_tokens`` / ``prompt_token_ids`` (the input-token
formula the forecast shares).
"""

from __future__ import annotations

from pipeline.simulator.config import (
    REHEARSAL_HALLUCINATION_RATE,
    REHEARSAL_OBEY_RATE,
    SimulatorConfig,
    parse_bill_tokens,
    parse_ratelimit_tokens,
)
from pipeline.simulator.prompt import count_input_tokens, prompt_token_ids
from pipeline.simulator.server import SimulatorServer, serve_forever
from pipeline.simulator.state import SimulatorState

__all__ = [
    "REHEARSAL_HALLUCINATION_RATE",
    "REHEARSAL_OBEY_RATE",
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorState",
    "count_input_tokens",
    "parse_bill_tokens",
    "parse_ratelimit_tokens",
    "prompt_token_ids",
    "serve_forever",
]
