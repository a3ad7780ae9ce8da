"""How the simulator counts a prompt against TPM: tiktoken's count, a factor of it, or chars / 4.

The rate-limit headers and 429s use that charge; ``usage`` (billing) always reports tiktoken's.
"""

from __future__ import annotations

import math

import openai
import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.errors import ConfigError
from pipeline.prompts.tokens import get_encoding
from pipeline.simulator.config import parse_ratelimit_tokens
from tests.simulator.conftest import MakeSim
from tests.simulator.support import LONG_INSTRUCTIONS, sdk

MODEL = "gpt-4.1-mini"
TPM = 1_000_000
MAX_OUTPUT = 100


def remaining_after_two(sim_make: MakeSim, **config: object) -> tuple[int, list[int]]:
    """Send the same request twice; return its billed input tokens and remaining-tokens."""
    sim = sim_make(model_tpm={MODEL: TPM}, **config)
    remaining = []
    billed = []
    with sdk(sim) as client:
        for _ in range(2):
            raw = client.responses.with_raw_response.create(
                model=MODEL,
                instructions=LONG_INSTRUCTIONS,
                input="Summarise the council's budget vote.",
                max_output_tokens=MAX_OUTPUT,
            )
            assert raw.headers["x-ratelimit-limit-tokens"] == str(TPM)
            remaining.append(int(raw.headers["x-ratelimit-remaining-tokens"]))
            usage = raw.parse().usage
            assert usage is not None
            billed.append(usage.input_tokens)
    assert billed[0] == billed[1]
    return billed[0], remaining


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5, 1 / 1.9])
def test_factor_scales_the_prompt_charge_not_the_usage(make_sim: MakeSim, factor: float) -> None:
    """Each request takes round(factor x prompt tokens) + max_output_tokens; usage is o200k."""
    baseline, _ = remaining_after_two(make_sim)
    billed, remaining = remaining_after_two(make_sim, ratelimit_token_factor=factor)
    assert billed == baseline > 1000
    charge = round(factor * billed) + MAX_OUTPUT
    assert remaining == [TPM - charge, TPM - 2 * charge]


def test_chars_counts_text_characters_over_four(make_sim: MakeSim) -> None:
    """chars: the prompt's text characters / 4 (rounded up) plus its framing tokens."""
    text = "Zoë's café: " + "naïve résumé, " * 50  # multi-byte characters count once each
    sim = make_sim(model_tpm={MODEL: TPM}, ratelimit_counting="chars")
    with sdk(sim) as client:
        raw = client.responses.with_raw_response.create(
            model=MODEL, input=text, max_output_tokens=MAX_OUTPUT
        )
    usage = raw.parse().usage
    assert usage is not None
    text_tokens = len(get_encoding("o200k_base").encode_ordinary(text))
    framing = usage.input_tokens - text_tokens
    assert 0 < framing < 10
    charge = math.ceil(len(text) / 4) + framing + MAX_OUTPUT
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == TPM - charge


def test_chars_and_factor_combine(make_sim: MakeSim) -> None:
    """The factor multiplies the chars count too (a config-only combination)."""
    text = "a b c d " * 100
    sim = make_sim(model_tpm={MODEL: TPM}, ratelimit_counting="chars", ratelimit_token_factor=2.0)
    with sdk(sim) as client:
        raw = client.responses.with_raw_response.create(
            model=MODEL, input=text, max_output_tokens=MAX_OUTPUT
        )
    usage = raw.parse().usage
    assert usage is not None
    framing = usage.input_tokens - len(get_encoding("o200k_base").encode_ordinary(text))
    charge = 2 * (math.ceil(len(text) / 4) + framing) + MAX_OUTPUT
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == TPM - charge


def test_429_decision_and_requested_figure_use_the_charge(make_sim: MakeSim) -> None:
    """At x1.5 the TPM runs out sooner, and the 429 says what the request was charged."""
    probe, _ = remaining_after_two(make_sim)
    charge = round(1.5 * probe) + MAX_OUTPUT
    # Room for two requests at x1.0, only one at x1.5.
    tpm = 2 * (probe + MAX_OUTPUT) + 10
    assert charge * 2 > tpm
    sim = make_sim(model_tpm={MODEL: tpm}, ratelimit_token_factor=1.5)
    with sdk(sim) as client:
        request = {
            "model": MODEL,
            "instructions": LONG_INSTRUCTIONS,
            "input": "Summarise the council's budget vote.",
            "max_output_tokens": MAX_OUTPUT,
        }
        client.responses.create(**request)  # type: ignore[call-overload]
        with pytest.raises(openai.RateLimitError) as caught:
            client.responses.create(**request)  # type: ignore[call-overload]
    message = caught.value.body["message"]  # type: ignore[index]
    assert f"Limit {tpm}, Used {charge}, Requested {charge}." in message


def test_counting_changes_at_runtime(make_sim: MakeSim) -> None:
    """The factor can be changed on a running simulator; the buckets are kept."""
    sim = make_sim(model_tpm={MODEL: TPM})
    with sdk(sim) as client:
        client.responses.create(model=MODEL, input="x", max_output_tokens=MAX_OUTPUT)
        sim.configure(ratelimit_token_factor=0.5)
        raw = client.responses.with_raw_response.create(
            model=MODEL, input="x", max_output_tokens=MAX_OUTPUT
        )
    usage = raw.parse().usage
    assert usage is not None
    full = usage.input_tokens + MAX_OUTPUT
    half = round(0.5 * usage.input_tokens) + MAX_OUTPUT
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) == TPM - full - half


@pytest.mark.parametrize(
    ("value", "fields"),
    [
        ("o200k", {"ratelimit_counting": "tokens", "ratelimit_token_factor": 1.0}),
        ("chars", {"ratelimit_counting": "chars", "ratelimit_token_factor": 1.0}),
        ("x0.5", {"ratelimit_counting": "tokens", "ratelimit_token_factor": 0.5}),
        (" X1.5 ", {"ratelimit_counting": "tokens", "ratelimit_token_factor": 1.5}),
    ],
)
def test_flag_values(value: str, fields: dict[str, object]) -> None:
    """--ratelimit-tokens takes o200k, chars or x<factor>."""
    assert parse_ratelimit_tokens(value) == fields


@pytest.mark.parametrize("value", ["", "x", "x0", "x-1", "xnan", "xinf", "x101", "0.5", "bytes"])
def test_bad_flag_values_are_refused(value: str) -> None:
    """Anything else is a ConfigError that names the accepted forms."""
    with pytest.raises(ConfigError, match="o200k, chars or x<factor>"):
        parse_ratelimit_tokens(value)


def test_cli_refuses_a_bad_value_in_one_line() -> None:
    """`contentgen simulate --ratelimit-tokens half` exits non-zero before serving anything."""
    result = CliRunner().invoke(app, ["simulate", "--ratelimit-tokens", "half"])
    assert result.exit_code != 0
    assert "invalid --ratelimit-tokens 'half'" in result.output
