"""Injected faults (scripted and random) as the SDK sees them, and the admin hooks over HTTP."""

from __future__ import annotations

import time

import openai
import pytest

from pipeline.simulator import SimulatorConfig, SimulatorServer, SimulatorState
from pipeline.simulator.faults import NO_FAULT, parse
from tests.simulator.conftest import MakeSim
from tests.simulator.support import LONG_INSTRUCTIONS, admin, sdk


def create(client: openai.OpenAI, **extra: object) -> openai.types.responses.Response:
    """One small request."""
    return client.responses.create(model="o4-mini", input="x", **extra)  # type: ignore[arg-type,no-any-return]


def test_500_and_503_have_the_documented_bodies(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """Scripted 500 and 503 surface as InternalServerError with the API's wording."""
    sim.script("500", "503")
    with pytest.raises(openai.InternalServerError) as first:
        create(client)
    assert first.value.status_code == 500
    assert first.value.body["message"] == (  # type: ignore[index]
        "The server had an error while processing your request. Sorry about that!"
    )
    with pytest.raises(openai.InternalServerError) as second:
        create(client)
    assert second.value.status_code == 503
    assert second.value.body["message"] == (  # type: ignore[index]
        "The engine is currently overloaded, please try again later"
    )
    assert create(client).status == "completed"
    counts = sim.ledger()["totals"]["requests"]
    assert (counts["5xx"], counts["completed"]) == (2, 1)
    assert sim.ledger()["totals"]["cost_usd"] != "0"


def test_dropped_connection_is_an_api_connection_error(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """A drop closes the socket without an answer; the next request works; not billed."""
    sim.script("drop")
    with pytest.raises(openai.APIConnectionError):
        create(client)
    assert create(client).status == "completed"
    ledger = sim.ledger()
    assert ledger["totals"]["requests"]["dropped"] == 1
    assert ledger["models"]["o4-mini"]["standard"]["requests"]["completed"] == 1


def test_flex_resource_unavailable_is_a_free_429(
    sim: SimulatorServer, client: openai.OpenAI
) -> None:
    """Flex capacity 429 (code resource_unavailable), not charged, no rate-limit use."""
    sim.script("flex")
    with pytest.raises(openai.RateLimitError) as caught:
        create(client, service_tier="flex")
    assert caught.value.code == "resource_unavailable"
    ledger = sim.ledger()
    assert ledger["models"]["o4-mini"]["flex"]["requests"]["429"] == 1
    assert ledger["totals"]["cost_usd"] == "0"
    assert ledger["rate_limits"] == {}


def test_random_flex_unavailability_only_hits_flex(make_sim: MakeSim) -> None:
    """flex_unavailable_rate=1: every flex request refused, standard ones served."""
    with sdk(make_sim(flex_unavailable_rate=1.0)) as client:
        for _ in range(3):
            with pytest.raises(openai.RateLimitError):
                create(client, service_tier="flex")
        assert create(client).status == "completed"


def test_fault_rates_are_seeded(make_sim: MakeSim) -> None:
    """With fail_rate=0.5 two simulators with the same seed fail the same requests."""

    def pattern(sim: SimulatorServer) -> list[bool]:
        outcomes = []
        with sdk(sim) as client:
            for _ in range(20):
                try:
                    create(client)
                    outcomes.append(True)
                except openai.InternalServerError:
                    outcomes.append(False)
        return outcomes

    first = pattern(make_sim(fail_rate=0.5, seed=11))
    assert first == pattern(make_sim(fail_rate=0.5, seed=11))
    assert 3 <= first.count(False) <= 17


def test_slow_fault_adds_latency(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """A scripted slow:0.3 answer arrives no sooner than 0.3 s."""
    sim.script("slow:0.3")
    began = time.perf_counter()
    create(client)
    assert time.perf_counter() - began >= 0.3


def test_quota_429_is_scriptable(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """insufficient_quota comes with its real body."""
    sim.script("quota")
    with pytest.raises(openai.RateLimitError) as caught:
        create(client)
    assert caught.value.code == "insufficient_quota"


def test_sdk_retries_a_500_then_succeeds(sim: SimulatorServer) -> None:
    """With SDK retries on, a 500 then success counts one retry in the ledger."""
    sim.script("500")
    with sdk(sim, max_retries=1) as client:
        assert create(client).status == "completed"
    assert sim.ledger()["retry_counts"] == {"0": 1, "1": 1}


def test_admin_hooks_over_http(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """script, faults, clock, ledger and reset work over HTTP; bad input is a 400."""
    assert admin(sim, "POST", "/_sim/script", json={"faults": ["503", "ok"]}).json() == {
        "pending": 2
    }
    with pytest.raises(openai.InternalServerError):
        create(client)
    assert create(client).status == "completed"
    assert admin(sim, "POST", "/_sim/script", json={"faults": ["boom"]}).status_code == 400
    changed = admin(sim, "POST", "/_sim/faults", json={"fail_rate": 1.0})
    assert changed.json()["fail_rate"] == 1.0
    with pytest.raises(openai.InternalServerError):
        create(client)
    assert admin(sim, "POST", "/_sim/faults", json={"seed": 3}).status_code == 400
    assert admin(sim, "POST", "/_sim/faults", json={"fail_rate": 2}).status_code == 400
    admin(sim, "POST", "/_sim/faults", json={"fail_rate": 0.0})
    before = sim.state.clock.now()
    admin(sim, "POST", "/_sim/clock", json={"advance_s": 120})
    assert sim.state.clock.now() - before == pytest.approx(120)
    ledger = admin(sim, "GET", "/_sim/ledger").json()
    assert ledger["totals"]["requests"]["5xx"] == 2
    assert admin(sim, "POST", "/_sim/reset").json() == {"reset": True}
    assert admin(sim, "GET", "/_sim/ledger").json()["totals"]["requests"]["5xx"] == 0
    assert admin(sim, "GET", "/_sim/config").json()["fail_rate"] == 0.0


def test_script_entries_are_checked() -> None:
    """Unknown kinds and stray arguments are refused."""
    assert parse("429:250").retry_ms == 250
    assert parse("slow:1.5").extra_latency_s == 1.5
    for bad in ("nope", "500:3"):
        with pytest.raises(ValueError):
            parse(bad)


def test_latency_model_cache_and_flex() -> None:
    """A cache hit shortens time-to-first-token; flex is 2.5x slower; scale 0 means no wait."""
    state = SimulatorState(SimulatorConfig(latency_scale=1.0, freeze_clock=True))
    body = {"model": "o4-mini", "instructions": LONG_INSTRUCTIONS, "input": "x"}
    cold = state.execute(state.prepare(body), NO_FAULT)
    state.complete(cold)
    warm = state.execute(state.prepare(body), NO_FAULT)
    assert warm.cached_tokens > 0 and warm.ttft_s < cold.ttft_s
    flex = state.execute(state.prepare({**body, "service_tier": "flex"}), NO_FAULT)
    standard = state.execute(state.prepare(body), NO_FAULT)
    assert flex.total_s == pytest.approx(2.5 * standard.total_s)
    state.configure({"latency_scale": 0.0})
    assert state.execute(state.prepare(body), NO_FAULT).total_s == 0
