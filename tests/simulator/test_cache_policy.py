"""Per-model cache policy on grid models, and the 400s for fields a model's regime refuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

from pipeline.simulator import SimulatorServer
from tests.simulator.conftest import MakeSim
from tests.simulator.support import (
    LONG_INSTRUCTIONS,
    message,
    sdk,
    shared_prefix,
    text_block,
    words,
)


def gpt55_pair(shared_words: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two gpt-5.5 bodies whose instructions are ``shared_words`` tokens, then different input."""
    instructions = words(shared_words)
    first = {"model": "gpt-5.5", "instructions": instructions, "input": "Alpha " + words(300)}
    second = {"model": "gpt-5.5", "instructions": instructions, "input": "Bravo " + words(300)}
    return first, second


@pytest.mark.parametrize(("shared_words", "expected"), [(1890, 0), (2090, 2048)])
def test_gpt55_caches_on_a_2048_token_grid(
    client: openai.OpenAI, shared_words: int, expected: int
) -> None:
    """gpt-5.5: a ~1,900-token shared prefix caches nothing, ~2,100 caches exactly 2,048."""
    first, second = gpt55_pair(shared_words)
    depth = shared_prefix(first, second)
    assert (depth < 2048) == (expected == 0) and abs(depth - shared_words) < 20
    client.responses.create(**first)
    r = client.responses.create(**second)
    assert r.usage is not None
    assert r.usage.input_tokens_details.cached_tokens == expected
    assert r.usage.input_tokens_details.cache_write_tokens == 0


def test_gpt55_keeps_prefixes_24h_by_default(sim: SimulatorServer, client: openai.OpenAI) -> None:
    """gpt-5.5 accepts only 24h retention, so an unmarked request keeps its prefix for hours."""
    first, second = gpt55_pair(2500)
    r = client.responses.create(**first)
    assert r.prompt_cache_retention == "24h"
    sim.advance(6 * 3600)
    again = client.responses.create(**second)
    assert again.usage is not None and again.usage.input_tokens_details.cached_tokens == 2048


def _long(n: int) -> str:
    """Long instructions whose first tokens differ per ``n`` (another prefix head)."""
    return f"Desk {n} rules. " + LONG_INSTRUCTIONS


def _send(client: openai.OpenAI, n: int, key: str | None) -> int:
    extra: dict[str, Any] = {"prompt_cache_key": key} if key else {}
    r = client.responses.create(model="gpt-4.1-mini", instructions=_long(n), input="x", **extra)
    assert r.usage is not None
    return r.usage.input_tokens_details.cached_tokens


def test_overflow_is_counted_per_key_across_prefixes(make_sim: MakeSim) -> None:
    """With a key, ~15 req/min covers all its prefixes; without one, each prefix counts alone."""
    keyed, unkeyed = make_sim(seed=5), make_sim(seed=5)
    with sdk(keyed) as a, sdk(unkeyed) as b:
        for n in range(20):
            _send(a, n, "tenant-1")
            _send(b, n, None)
    assert keyed.ledger()["cache"]["overflow_routes"] == 5
    assert unkeyed.ledger()["cache"]["overflow_routes"] == 0


def test_overflow_per_prefix_is_the_lenient_reading(make_sim: MakeSim) -> None:
    """``overflow_per="prefix"`` (the Dec 2025 wording): one key over 20 prefixes never spills;
    one prefix under one key spills past 15 a minute either way."""
    lenient, strict = make_sim(seed=5, overflow_per="prefix"), make_sim(seed=5)
    with sdk(lenient) as a, sdk(strict) as b:
        for n in range(20):
            _send(a, n, "tenant-1")
            _send(b, 0, "tenant-1")
    assert lenient.ledger()["cache"]["overflow_routes"] == 0
    assert strict.ledger()["cache"]["overflow_routes"] == 5


def test_a_server_billing_another_tokenizer_scales_usage_and_bill(make_sim: MakeSim) -> None:
    """``usage_token_factor``: input and cached tokens are billed at that share of ours."""
    plain, half = make_sim(seed=5), make_sim(seed=5, usage_token_factor=0.5)
    with sdk(plain) as a, sdk(half) as b:
        for _ in range(2):
            _send(a, 0, "k")
            _send(b, 0, "k")
    ours, theirs = plain.ledger()["totals"], half.ledger()["totals"]
    assert theirs["input_tokens"] == pytest.approx(ours["input_tokens"] / 2, abs=2)
    assert theirs["cached_tokens"] == pytest.approx(ours["cached_tokens"] / 2, abs=2)
    assert theirs["cached_tokens"] > 0
    assert Decimal(theirs["cost_usd"]) < Decimal(ours["cost_usd"])


def test_a_busy_key_overflows_a_warm_prefix(make_sim: MakeSim) -> None:
    """Other prefixes under the same key push a warm prefix's 16th request to a cold machine."""
    busy, calm = make_sim(seed=5), make_sim(seed=5)
    with sdk(busy) as a, sdk(calm) as b:
        for sim, client, pause_s in ((busy, a, 0.0), (calm, b, 61.0)):
            assert _send(client, 0, "tenant-1") == 0  # warm prefix 0 on its home machine
            for n in range(1, 15):
                _send(client, n, "tenant-1")
            sim.advance(pause_s)
            cached = _send(client, 0, "tenant-1")
            assert (cached == 0) == (sim is busy)


@pytest.mark.parametrize(
    ("model", "retention", "ok"),
    [
        ("gpt-4.1", "24h", True),
        ("gpt-4.1", "in_memory", True),
        ("gpt-4.1-mini", "24h", False),
        ("gpt-4.1-mini", "in_memory", True),
        ("gpt-5.5", "in_memory", False),
        ("gpt-5.5", "24h", True),
    ],
)
def test_retention_is_accepted_per_model(
    client: openai.OpenAI, model: str, retention: Any, ok: bool
) -> None:
    """prompt_cache_retention takes the model's policy values; others are a 400 naming it."""
    if ok:
        r = client.responses.create(model=model, input="x", prompt_cache_retention=retention)
        assert r.prompt_cache_retention == retention and r.prompt_cache_options is None
        return
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=model, input="x", prompt_cache_retention=retention)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("prompt_cache_retention", "unsupported_value")
    assert model in error["message"] and retention in error["message"]


def test_unknown_retention_is_an_invalid_value(client: openai.OpenAI) -> None:
    """A value no model knows is invalid_value, as before."""
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model="gpt-4.1",
            input="x",
            prompt_cache_retention="1h",
        )
    assert caught.value.code == "invalid_value"


def _refused(client: openai.OpenAI, **body: Any) -> dict[str, Any]:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**body)
    assert caught.value.status_code == 400
    error = caught.value.body
    assert isinstance(error, dict)
    return error


def test_grid_models_refuse_the_breakpoint_fields(client: openai.OpenAI) -> None:
    """prompt_cache_options and prompt_cache_breakpoint on gpt-4.1-mini: unsupported_parameter."""
    error = _refused(
        client, model="gpt-4.1-mini", input="x", prompt_cache_options={"mode": "explicit"}
    )
    assert (error["param"], error["code"]) == ("prompt_cache_options", "unsupported_parameter")
    marked = message("user", text_block("a"), text_block("b", breakpoint=True))
    error = _refused(client, model="gpt-4.1-mini", input=[message("user", text_block("x")), marked])
    assert error["param"] == "input[1].content[1].prompt_cache_breakpoint"
    assert error["code"] == "unsupported_parameter"


def test_breakpoints_models_refuse_retention(client: openai.OpenAI) -> None:
    """gpt-5.6-luna takes prompt_cache_options.ttl, not prompt_cache_retention."""
    error = _refused(client, model="gpt-5.6-luna", input="x", prompt_cache_retention="24h")
    assert (error["param"], error["code"]) == ("prompt_cache_retention", "unsupported_parameter")


@pytest.mark.parametrize(
    ("options", "block_extra", "param", "code"),
    [
        ({"mode": "sometimes"}, None, "prompt_cache_options.mode", "invalid_value"),
        ({"ttl": "12h"}, None, "prompt_cache_options.ttl", "invalid_value"),
        ({"ttl": 30}, None, "prompt_cache_options.ttl", "invalid_type"),
        ({"prewarm": "yes"}, None, "prompt_cache_options.prewarm", "invalid_type"),
        ({"color": "red"}, None, "prompt_cache_options.color", "unknown_parameter"),
        ("explicit", None, "prompt_cache_options", "invalid_type"),
        (None, "explicit", "input[0].content[0].prompt_cache_breakpoint", "invalid_type"),
        (
            None,
            {"mode": "implicit"},
            "input[0].content[0].prompt_cache_breakpoint.mode",
            "invalid_value",
        ),
        (
            None,
            {},
            "input[0].content[0].prompt_cache_breakpoint.mode",
            "missing_required_parameter",
        ),
        (
            None,
            {"mode": "explicit", "ttl": "12h"},
            "input[0].content[0].prompt_cache_breakpoint.ttl",
            "invalid_value",
        ),
    ],
)
def test_breakpoint_fields_are_validated(
    client: openai.OpenAI, options: Any, block_extra: Any, param: str, code: str
) -> None:
    """Malformed prompt_cache_options or breakpoint on gpt-5.6-luna: a 400 naming the field."""
    block: dict[str, Any] = {"type": "input_text", "text": "x"}
    if block_extra is not None:
        block["prompt_cache_breakpoint"] = block_extra
    body: dict[str, Any] = {"model": "gpt-5.6-luna", "input": [message("user", block)]}
    if options is not None:
        body["prompt_cache_options"] = options
    error = _refused(client, **body)
    assert (error["param"], error["code"]) == (param, code)


def test_a_breakpoint_on_an_output_text_block_is_refused(client: openai.OpenAI) -> None:
    """Only input text, image and file blocks carry a breakpoint."""
    block = {"type": "output_text", "text": "x", "prompt_cache_breakpoint": {"mode": "explicit"}}
    error = _refused(
        client, model="gpt-5.6-luna", input=[{"role": "assistant", "content": [block]}]
    )
    assert error["param"] == "input[0].content[0].prompt_cache_breakpoint"
