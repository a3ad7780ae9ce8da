"""Fixtures for the simulator tests: an in-process server per test and real SDK clients.

``sim`` is a fresh ``SimulatorServer`` with no latency and a frozen clock (time moves only via
``sim.advance``), so rate-limit and cache-expiry figures are exact. ``make_sim(**overrides)``
starts one with other knobs. Clients are the real ``openai`` SDK over HTTP with retries off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
import pytest

from pipeline.simulator import SimulatorServer
from pipeline.simulator.testing import async_client, start_test_simulator, sync_client

MakeSim = Callable[..., SimulatorServer]


@pytest.fixture
def make_sim() -> Iterator[MakeSim]:
    """Start test simulators (no latency, frozen clock) with overrides; all stopped at the end."""
    started: list[SimulatorServer] = []

    def make(**overrides: Any) -> SimulatorServer:
        server = start_test_simulator(**overrides)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def sim(make_sim: MakeSim) -> SimulatorServer:
    """A simulator with no latency and a frozen clock."""
    return make_sim()


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[openai.OpenAI]:
    """The real SDK pointed at ``sim``."""
    with sync_client(sim) as c:
        yield c


@pytest.fixture
async def aclient(sim: SimulatorServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real async SDK pointed at ``sim``."""
    async with async_client(sim) as c:
        yield c
