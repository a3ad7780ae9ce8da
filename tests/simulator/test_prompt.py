"""The pure parts: the input-token formula, text generation and schema instances."""

from __future__ import annotations

import copy
import random

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.prompts.tokens import count_tokens
from pipeline.simulator import count_input_tokens, prompt_token_ids
from pipeline.simulator.prompt import MessageEnd, PromptError, assistant_ids, render_prompt
from pipeline.simulator.schema import SchemaInstance
from pipeline.simulator.text import GenerationRequest, deltas, generate
from tests.simulator.support import KEY_POINTS_SCHEMA, message, text_block

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200)


@settings(max_examples=50, deadline=None)
@given(instructions=texts, messages=st.lists(texts, max_size=5))
def test_count_matches_the_formula(instructions: str, messages: list[str]) -> None:
    """3 per request + 4 per message + tiktoken tokens of each text."""
    body = {
        "model": "gpt-4.1-mini",
        "instructions": instructions,
        "input": [{"role": "user", "content": m} for m in messages],
    }
    expected = 3 + sum(4 + count_tokens(t, "gpt-4.1-mini") for t in messages)
    if instructions:
        expected += 4 + count_tokens(instructions, "gpt-4.1-mini")
    assert count_input_tokens(body) == expected == len(prompt_token_ids(body))


def test_schema_and_tools_come_first_and_count() -> None:
    """A json_schema format is a message before the instructions; changing it breaks the prefix."""
    body = {"model": "gpt-4.1-mini", "instructions": "Rules.", "input": "x"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    with_schema = {
        **body,
        "text": {"format": {"type": "json_schema", "name": "a", "schema": schema}},
    }
    assert count_input_tokens(with_schema) > count_input_tokens(body)
    other = {
        **with_schema,
        "text": {"format": {"type": "json_schema", "name": "b", "schema": schema}},
    }
    assert prompt_token_ids(with_schema)[:3] == prompt_token_ids(other)[:3]
    assert prompt_token_ids(with_schema)[:10] != prompt_token_ids(other)[:10]


def test_reasoning_effort_changes_the_prefix() -> None:
    """Changing the effort changes the first tokens (the cookbook's cache-breaker)."""
    low = {"model": "o4-mini", "input": "x", "reasoning": {"effort": "low"}}
    high = {"model": "o4-mini", "input": "x", "reasoning": {"effort": "high"}}
    assert count_input_tokens(low) == count_input_tokens(high)
    assert prompt_token_ids(low)[:2] != prompt_token_ids(high)[:2]


def test_bad_input_is_a_prompt_error() -> None:
    """Unknown roles and part types name the offending field."""
    with pytest.raises(PromptError) as caught:
        count_input_tokens({"model": "gpt-4.1", "input": [{"role": "robot", "content": "x"}]})
    assert caught.value.param == "input[0].role"
    with pytest.raises(PromptError):
        count_input_tokens(
            {"model": "gpt-4.1", "input": [{"role": "user", "content": [{"type": "audio"}]}]}
        )


def _request(key: int, budget: int | None, effort: str | None = None) -> GenerationRequest:
    return GenerationRequest("gpt-4.1-mini", key, budget, 1.0, 1.0, effort, False, None)


@settings(max_examples=40, deadline=None)
@given(
    key=st.integers(min_value=0, max_value=2**63), budget=st.integers(min_value=16, max_value=3000)
)
def test_generation_respects_the_budget(key: int, budget: int) -> None:
    """Output tokens never exceed max_output_tokens; the text is deterministic."""
    gen = generate(_request(key, budget))
    assert gen.output_tokens <= budget
    assert gen == generate(_request(key, budget))
    if not gen.incomplete:
        assert gen.text_tokens == count_tokens(gen.text, "gpt-4.1-mini")


def test_deltas_rebuild_the_text() -> None:
    """Stream deltas concatenate back to the text."""
    text = generate(_request(3, 300)).text
    assert "".join(deltas(text)) == text and len(deltas(text)) > 10


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=10_000), words=st.integers(min_value=1, max_value=30)
)
def test_schema_instances_validate(seed: int, words: int) -> None:
    """Instances of a schema with arrays, bounds, enums and nesting validate."""
    schema = copy.deepcopy(KEY_POINTS_SCHEMA)
    schema["properties"]["meta"] = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": -5, "maximum": -1},
            "share": {"type": "number", "minimum": 0.25, "maximum": 0.5, "multipleOf": 0.25},
            "kind": {"const": "news"},
            "flags": {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 1},
        },
        "required": ["n", "share", "kind", "flags"],
        "additionalProperties": False,
    }
    schema["required"].append("meta")
    rng = random.Random(seed)
    value = SchemaInstance(schema, rng, lambda n: " ".join(["word"] * n)).build(words)
    jsonschema.validate(value, schema)


def test_cli_help_has_an_example() -> None:
    """contentgen simulate --help documents the knobs and ends with an example."""
    result = CliRunner().invoke(app, ["simulate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example: contentgen simulate" in result.output
    for option in ("--rpm", "--tpm", "--latency-scale", "--fail-rate", "--cache-ttl-s", "--seed"):
        assert option in result.output


def test_cli_rejects_bad_values() -> None:
    """An invalid knob is one error line and exit code 2."""
    result = CliRunner().invoke(app, ["simulate", "--fail-rate", "3"])
    assert result.exit_code == 2
    assert "invalid simulator option" in result.output


def test_render_records_breakpoints_and_message_ends() -> None:
    """A breakpoint sits after its block's last token; a message ends before its end token."""
    body = {
        "model": "gpt-5.6-luna",
        "instructions": "Rules.",
        "input": [
            message("developer", text_block("Alpha beta.", breakpoint=True), text_block("Gamma")),
            message("user", text_block("Question?")),
        ],
    }
    prompt = render_prompt(body)
    n = {
        t: count_tokens(t, "gpt-5.6-luna") for t in ("Rules.", "Alpha beta.", "Gamma", "Question?")
    }
    instructions_end = 2 + 3 + n["Rules."]
    breakpoint_at = instructions_end + 1 + 3 + n["Alpha beta."]
    developer_end = breakpoint_at + n["Gamma"]
    user_end = developer_end + 1 + 3 + n["Question?"]
    [mark] = prompt.breakpoints
    assert (mark.position, mark.param) == (
        breakpoint_at,
        "input[0].content[0].prompt_cache_breakpoint",
    )
    assert prompt.messages == (
        MessageEnd(instructions_end, "developer"),
        MessageEnd(developer_end, "developer"),
        MessageEnd(user_end, "user"),
    )
    assert (prompt.developer_end, prompt.user_end) == (developer_end, user_end)
    assert all(prompt.ids[m.position] == -5 for m in prompt.messages)  # the end token follows
    assert len(prompt.ids) == user_end + 2


def test_a_follow_up_keeps_the_marks_of_the_stored_conversation() -> None:
    """Marks carried through previous_response_id land where the earlier turn had them."""
    first = {
        "model": "gpt-5.6-luna",
        "input": [message("user", text_block("One.", breakpoint=True))],
    }
    prompt = render_prompt(first)
    carried = prompt.carried(assistant_ids("Reply.", "gpt-5.6-luna"))
    follow = render_prompt({"model": "gpt-5.6-luna", "input": "Two."}, carried)
    [mark] = follow.breakpoints
    assert mark.position == prompt.breakpoints[0].position and mark.inherited
    assert [m.role for m in follow.messages] == ["user", "assistant", "user"]
    assert follow.messages[0].position == prompt.user_end
    assert follow.ids[: len(prompt.ids) - 1] == prompt.ids[:-1]
