"""Helpers for tests that need a simulator (ours and the engine's).

with test_simulator(model_rpm={"gpt-4.1-mini": 3}) as sim, sync_client(sim) as client:
    client.responses.create(model="gpt-4.1-mini", input="x")
    sim.advance(20)                      # frozen clock: time moves only when told
    assert sim.ledger()["totals"]["requests"]["completed"] == 1
"""

from __future__ import annotations

from typing import Any

import openai

from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.server import SimulatorServer

# No latency, frozen clock: answers at once and rate-limit/cache figures are exact.
TEST_SETTINGS: dict[str, Any] = {"latency_scale": 0.0, "freeze_clock": True}
TEST_API_KEY = "sk-simulator-test"


def start_test_simulator(**overrides: Any) -> SimulatorServer:
    """A started in-process simulator with ``TEST_SETTINGS`` plus ``overrides`` (stop it, or
    use it as a context manager)."""
    return SimulatorServer(SimulatorConfig(**{**TEST_SETTINGS, **overrides})).start()


def sync_client(server: SimulatorServer, **options: Any) -> openai.OpenAI:
    """The real SDK pointed at ``server``; SDK retries off unless ``max_retries`` is given."""
    return openai.OpenAI(
        base_url=server.base_url, api_key=TEST_API_KEY, **{"max_retries": 0, **options}
    )


def async_client(server: SimulatorServer, **options: Any) -> openai.AsyncOpenAI:
    """The real async SDK pointed at ``server``; SDK retries off unless asked."""
    return openai.AsyncOpenAI(
        base_url=server.base_url, api_key=TEST_API_KEY, **{"max_retries": 0, **options}
    )
