"""Validating a ``POST /v1/responses`` body and building Response objects (API-NOTES §2).

``prepare`` turns a JSON body into a ``Prepared`` request or raises the API's 400; the
``*_object`` functions build the JSON the SDK parses (ids ``resp_``/``msg_``/``rs_``, echoed
parameters, output items, usage with ``cached_tokens`` and ``cache_write_tokens``). The
prompt-cache fields are checked per model regime in ``cacheoptions``; a ``prewarm`` request
(GPT-5.6+) answers ``completed`` with no output.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import PricingError
from pipeline.money import PriceTable, Tier, Usage
from pipeline.simulator import apierrors
from pipeline.simulator.apierrors import SimAPIError
from pipeline.simulator.cacheoptions import CacheRequest, cache_request, policy_for
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.following import article_facts, schema_asked, word_limit
from pipeline.simulator.models import default_effort, is_reasoning_model, sampling_allowed
from pipeline.simulator.prompt import (
    History,
    PromptError,
    RenderedPrompt,
    generation_key,
    render_prompt,
)
from pipeline.simulator.ratelimit import prompt_charge
from pipeline.simulator.text import Generation, GenerationRequest

MIN_OUTPUT_TOKENS = 16
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_SUMMARIES = ("auto", "concise", "detailed")
_SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast", "ultrafast")


def new_id(prefix: str) -> str:
    """An id like the API's: ``resp_``, ``msg_``, ``rs_`` + 48 hex digits."""
    return prefix + secrets.token_hex(24)


@dataclass(frozen=True)
class Prepared:
    """A validated request: its prompt, budget, tier, cache fields and generation inputs."""

    body: dict[str, Any]
    model: str
    tier: Tier
    effort: str | None
    summary: str | None
    prompt: RenderedPrompt
    generation: GenerationRequest
    max_output_tokens: int | None
    stream: bool
    store: bool
    cache: CacheRequest

    @property
    def prewarm(self) -> bool:
        """True for ``prompt_cache_options.prewarm``: prepare the cache, generate nothing."""
        return self.cache.prewarm

    @property
    def input_tokens(self) -> int:
        """``usage.input_tokens`` of this request."""
        return len(self.prompt.ids)

    @property
    def service_tier(self) -> str:
        """The tier the answer reports (auto/default/omitted -> ``default``)."""
        return "flex" if self.tier == "flex" else "default"

    def estimate(self, config: SimulatorConfig) -> int:
        """Tokens taken from the TPM bucket: the prompt's charge (``ratelimit.prompt_charge``)
        plus max_output_tokens (or ``config.default_output_estimate``)."""
        budget = self.max_output_tokens
        if budget is None:
            budget = config.default_output_estimate
        return prompt_charge(self.prompt.ids, self.model, config) + budget


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise apierrors.invalid_type(name, "a decimal")
    if not low <= value <= high:
        raise apierrors.invalid_value(
            name, f"Invalid '{name}': expected a value between {low:g} and {high:g}."
        )
    return float(value)


def _max_output_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise apierrors.invalid_type("max_output_tokens", "an integer")
    if value < MIN_OUTPUT_TOKENS:
        raise apierrors.below_minimum("max_output_tokens", MIN_OUTPUT_TOKENS, value)
    return value


def _reasoning(body: dict[str, Any], model: str) -> tuple[str | None, str | None]:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return default_effort(model), None
    if not isinstance(reasoning, dict):
        raise apierrors.invalid_type("reasoning", "an object")
    effort, summary = reasoning.get("effort"), reasoning.get("summary")
    if effort is not None and effort not in _EFFORTS:
        raise apierrors.invalid_value("reasoning.effort", f"Invalid value: '{effort}'.")
    if summary is not None and summary not in _SUMMARIES:
        raise apierrors.invalid_value("reasoning.summary", f"Invalid value: '{summary}'.")
    if not is_reasoning_model(model):
        if effort is not None:
            # Wording UNCONFIRMED (API-NOTES §4: reasoning on a non-reasoning model).
            raise apierrors.unsupported_parameter("reasoning.effort")
        return None, None
    return effort or default_effort(model), summary


def _metadata(body: dict[str, Any]) -> None:
    metadata = body.get("metadata")
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise apierrors.invalid_type("metadata", "an object")
    if len(metadata) > 16:
        raise apierrors.invalid_value(
            "metadata",
            "Invalid 'metadata': too many properties. Expected an object with at most 16 "
            f"properties, but got {len(metadata)} instead.",
        )
    for key, value in metadata.items():
        if len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise apierrors.invalid_value(
                f"metadata.{key}",
                "Invalid 'metadata': keys are at most 64 characters and values strings of at "
                "most 512 characters.",
            )


def _text_format(body: dict[str, Any]) -> dict[str, Any] | None:
    text = body.get("text")
    if text is None:
        return None
    if not isinstance(text, dict):
        raise apierrors.invalid_type("text", "an object")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_schema", "json_object"):
        raise apierrors.invalid_value("text.format.type", "Invalid value for 'text.format.type'.")
    if fmt["type"] == "json_schema":
        for field in ("name", "schema"):
            if fmt.get(field) is None:
                raise apierrors.missing_parameter(f"text.format.{field}")
        if not isinstance(fmt["schema"], dict):
            raise apierrors.invalid_type("text.format.schema", "an object")
    return fmt if fmt["type"] != "text" else None


def _tier(body: dict[str, Any], model: str, prices: PriceTable) -> Tier:
    tier = body.get("service_tier")
    if tier is None:
        return "standard"
    if tier not in _SERVICE_TIERS:
        raise apierrors.invalid_value("service_tier", f"Invalid value: '{tier}'.")
    if tier != "flex":
        return "standard"
    if _has_flex(prices, model):
        return "flex"
    # Wording UNCONFIRMED: flex is offered for a few models only (API-NOTES §8).
    raise apierrors.invalid_value(
        "service_tier", f"Flex processing is not available for model '{model}'."
    )


def _has_flex(prices: PriceTable, model: str) -> bool:
    try:
        prices.price(model, "flex")
    except PricingError:
        return False
    return True


def _asked_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """A JSON Schema asked for in words, as the format the simulated model answers in."""
    schema = schema_asked(body)
    return None if schema is None else {"type": "json_schema", "name": "asked", "schema": schema}


def prepare(
    body: Any,
    prices: PriceTable,
    seed: int,
    history: Callable[[str], Sequence[int] | History | None],
) -> Prepared:
    """Validate ``body`` like the API and render its prompt.

    ``history(response_id)`` returns a stored conversation (None when unknown or not stored).
    Raises ``SimAPIError`` with the API's 400 body.
    """
    if not isinstance(body, dict):
        raise apierrors.invalid_json()
    model = body.get("model")
    if not model:
        raise apierrors.missing_parameter("model")
    if not isinstance(model, str):
        raise apierrors.invalid_type("model", "a string")
    if not prices.knows(model):
        raise apierrors.model_not_found(model)
    max_output = _max_output_tokens(body)
    effort, summary = _reasoning(body, model)
    temperature = _number(body, "temperature", 0, 2)
    top_p = _number(body, "top_p", 0, 1)
    for name, value in (("temperature", temperature), ("top_p", top_p)):
        if value is not None and not sampling_allowed(model, effort):
            raise apierrors.unsupported_parameter(name)
    _metadata(body)
    fmt = _text_format(body)
    tier = _tier(body, model, prices)
    previous: Sequence[int] | History = ()
    previous_id = body.get("previous_response_id")
    if previous_id is not None:
        found = history(str(previous_id))
        if found is None:
            raise apierrors.previous_response_not_found(str(previous_id))
        previous = found
    try:
        prompt = render_prompt(body, previous)
    except PromptError as exc:
        raise SimAPIError(400, str(exc), param=exc.param, code="invalid_value") from exc
    cache = cache_request(body, prompt, policy_for(prices, model))
    generation = GenerationRequest(
        model=model,
        key=generation_key(body, seed, prompt.ids),
        max_output_tokens=max_output,
        temperature=1.0 if temperature is None else temperature,
        top_p=1.0 if top_p is None else top_p,
        effort=effort if effort != "none" else None,
        summary=summary is not None,
        text_format=fmt or _asked_format(body),
        word_limit=word_limit(body),
        facts=article_facts(body),
    )
    return Prepared(
        body=body,
        model=model,
        tier=tier,
        effort=effort,
        summary=summary,
        prompt=prompt,
        generation=generation,
        max_output_tokens=max_output,
        stream=bool(body.get("stream")),
        store=body.get("store", True) is not False,
        cache=cache,
    )


def usage_object(usage: Usage) -> dict[str, Any]:
    """``usage`` with the inclusive ``input_tokens`` and both input details (§1.2, §1.5)."""
    details = {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens}
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": details,
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def reasoning_item(item_id: str, summary: str | None) -> dict[str, Any]:
    """A reasoning output item (summary text only when the request asked for a summary)."""
    parts = [{"type": "summary_text", "text": summary}] if summary else []
    return {"id": item_id, "type": "reasoning", "summary": parts}


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    """An assistant message with one ``output_text`` part."""
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
        "role": "assistant",
    }


@dataclass(frozen=True)
class OutputIds:
    """Ids of one response and its output items."""

    response: str
    reasoning: str
    message: str

    @classmethod
    def new(cls) -> OutputIds:
        """Fresh random ids."""
        return cls(new_id("resp_"), new_id("rs_"), new_id("msg_"))


def output_items(prep: Prepared, gen: Generation, ids: OutputIds) -> list[dict[str, Any]]:
    """The output list: reasoning item first for reasoning models, then the message (a
    prewarm has none)."""
    items: list[dict[str, Any]] = []
    if prep.prewarm:
        return items
    if prep.generation.effort is not None:
        items.append(reasoning_item(ids.reasoning, gen.summary if prep.summary else None))
    if gen.has_message:
        items.append(
            message_item(ids.message, gen.text, "incomplete" if gen.incomplete else "completed")
        )
    return items


def response_object(
    prep: Prepared,
    response_id: str,
    created_at: int,
    *,
    status: str,
    output: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    completed_at: int | None = None,
    error: dict[str, Any] | None = None,
    service_tier: str | None = None,
) -> dict[str, Any]:
    """A Response object echoing the request's parameters with the API's defaults filled."""
    body = prep.body
    fmt = prep.generation.text_format
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "billing": {"payer": "developer"},
        "completed_at": completed_at,
        "error": error,
        "frequency_penalty": 0.0,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": prep.max_output_tokens,
        "max_tool_calls": body.get("max_tool_calls"),
        "model": prep.model,
        "output": output if output is not None else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "presence_penalty": 0.0,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_options": prep.cache.options_echo(),
        "prompt_cache_retention": prep.cache.retention_echo(),
        "reasoning": {"effort": prep.effort, "summary": prep.summary},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": service_tier or prep.service_tier,
        "store": prep.store,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": fmt or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs", 0),
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
