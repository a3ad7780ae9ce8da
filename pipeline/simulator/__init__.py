"""A local server that speaks the OpenAI Responses, Files and Batches APIs (API-NOTES.md).

It reproduces what our cost and reliability claims depend on: prompt caching (1024-token
minimum, 128-token steps, write-after-finish, routing and overflow, idle expiry), rate limits
with their headers and 429 bodies, faults, streaming events, reasoning models, structured
outputs, batches and a ledger of what was billed. The real ``openai`` SDK works against it via
``base_url``.

Public API: ``SimulatorConfig``, ``SimulatorServer`` (in-process), ``SimulatorState``,
``serve_forever`` (foreground), ``count_input_tokens`` / ``prompt_token_ids`` (the input-token
formula the forecast shares).
"""

from __future__ import annotations

from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.prompt import count_input_tokens, prompt_token_ids
from pipeline.simulator.server import SimulatorServer, serve_forever
from pipeline.simulator.state import SimulatorState

__all__ = [
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorState",
    "count_input_tokens",
    "prompt_token_ids",
    "serve_forever",
]
