"""The prompt-cache fields of a request, checked against the model's regime (API-NOTES §1.5).

``cache_request`` reads ``prompt_cache_retention``, ``prompt_cache_options`` and every
``prompt_cache_breakpoint`` and returns a ``CacheRequest`` or raises the API's 400:

- grid models (before GPT-5.6): ``prompt_cache_retention`` must be one of the policy's
  ``retention`` values (``unsupported_value`` otherwise; a value no model knows is
  ``invalid_value``); ``prompt_cache_options`` and any ``prompt_cache_breakpoint`` are
  ``unsupported_parameter`` naming the field (e.g. ``input[0].content[1].prompt_cache_breakpoint``).
- breakpoints models (GPT-5.6+): ``prompt_cache_retention`` is ``unsupported_parameter`` (they
  use ``prompt_cache_options.ttl``); ``prompt_cache_options`` is an object with optional
  ``mode`` (``implicit`` default, or ``explicit``), ``ttl`` (one of the policy's ``ttl``),
  ``prewarm`` (bool) and ``comparison_response_id`` (string, accepted and ignored); a breakpoint
  is ``{"mode": "explicit"}`` with an optional ``ttl``, on an ``input_text``, ``input_image`` or
  ``input_file`` block.

Error codes follow the API's usual ones; the exact bodies are UNCONFIRMED (API-NOTES §1.5 only
reports that a newer field sent to an older model is a 400).

A model with no policy in the price table is treated as a lenient grid model: 128-token grid
from 1,024 tokens, retention ``in_memory`` or ``24h`` (the simulator's behaviour before §1.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.money import CachePolicySpec, PriceTable, PromptCachePolicy, resolve_policy
from pipeline.simulator import apierrors
from pipeline.simulator.apierrors import SimAPIError
from pipeline.simulator.prompt import BREAKPOINT_PARTS, Breakpoint, RenderedPrompt

RETENTIONS = ("in_memory", "24h")
MODES = ("implicit", "explicit")
_OPTION_FIELDS = ("mode", "ttl", "prewarm", "comparison_response_id")
_BREAKPOINT_FIELDS = ("mode", "ttl")


def policy_for(
    prices: PriceTable | None, model: str, *, min_prefix: int = 1024, step: int = 128
) -> PromptCachePolicy:
    """The cache policy of ``model``; without one, a lenient grid (see the module docstring)."""
    if prices is not None and prices.has_policy(model):
        return prices.policy(model)
    spec = CachePolicySpec(
        regime="grid", min_prefix=min_prefix, step=step, retention=("in_memory", "24h")
    )
    return resolve_policy(model, spec, Decimal(1))


@dataclass(frozen=True)
class CacheRequest:
    """What a request asks of the prompt cache, validated for its model's ``policy``.

    Grid: ``retention`` as sent (None: the model's default). Breakpoints: ``mode``, ``ttl``
    (filled with their defaults), ``prewarm`` and the prompt's explicit ``breakpoints`` with
    each one's lifetime in seconds.
    """

    policy: PromptCachePolicy
    retention: str | None = None
    mode: str = "implicit"
    ttl: str | None = None
    prewarm: bool = False
    breakpoints: tuple[tuple[int, float], ...] = ()

    @property
    def explicit(self) -> bool:
        """True for the breakpoints regime (GPT-5.6+)."""
        return self.policy.explicit

    @property
    def lifetime_s(self) -> float:
        """How long an entry this request writes lives idle (breakpoints regime)."""
        return self.policy.lifetime_s(self.ttl)

    def options_echo(self) -> dict[str, Any] | None:
        """``prompt_cache_options`` as the response echoes it (the applied mode and ttl)."""
        if not self.explicit:
            return None
        return {"mode": self.mode, "ttl": self.ttl}

    def retention_echo(self) -> str | None:
        """``prompt_cache_retention`` as the response echoes it (None on breakpoints models).

        INFERENCE: a model that accepts only ``24h`` (gpt-5.5) echoes ``24h`` by default.
        """
        if self.explicit:
            return None
        if self.retention is not None:
            return self.retention
        return "24h" if self.policy.retention == ("24h",) else "in_memory"


def cache_request(
    body: dict[str, Any], prompt: RenderedPrompt, policy: PromptCachePolicy
) -> CacheRequest:
    """Check ``body``'s cache fields against ``policy``; raises ``SimAPIError`` (400)."""
    sent = [b for b in prompt.breakpoints if not b.inherited]
    retention = body.get("prompt_cache_retention")
    options = body.get("prompt_cache_options")
    if not policy.explicit:
        if options is not None:
            raise apierrors.unsupported_parameter("prompt_cache_options")
        if sent:
            raise apierrors.unsupported_parameter(sent[0].param)
        return CacheRequest(policy, retention=_retention(retention, policy))
    if retention is not None:
        raise SimAPIError(
            400,
            "Unsupported parameter: 'prompt_cache_retention' is not supported with this model. "
            "Use 'prompt_cache_options.ttl' instead.",
            param="prompt_cache_retention",
            code="unsupported_parameter",
        )
    mode, ttl, prewarm = _options(options, policy)
    default_s = policy.lifetime_s(ttl)
    marks: list[tuple[int, float]] = []
    for mark in prompt.breakpoints:
        own = _inherited_ttl(mark, policy) if mark.inherited else _breakpoint(mark, policy)
        marks.append((mark.position, policy.lifetime_s(own) if own else default_s))
    return CacheRequest(policy, mode=mode, ttl=ttl, prewarm=prewarm, breakpoints=tuple(marks))


def _retention(value: Any, policy: PromptCachePolicy) -> str | None:
    if value is None:
        return None
    if value not in RETENTIONS:
        raise apierrors.invalid_value("prompt_cache_retention", f"Invalid value: '{value}'.")
    if not policy.accepts_retention(value):
        supported = ", ".join(f"'{r}'" for r in policy.retention)
        raise SimAPIError(
            400,
            f"Unsupported value: 'prompt_cache_retention' does not support '{value}' with model "
            f"'{policy.model}'. Supported values are: {supported}.",
            param="prompt_cache_retention",
            code="unsupported_value",
        )
    return str(value)


def _unknown_field(param: str) -> SimAPIError:
    return SimAPIError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def _ttl(value: Any, param: str, policy: PromptCachePolicy) -> str:
    if not isinstance(value, str):
        raise apierrors.invalid_type(param, "a string")
    if value not in policy.ttl:
        supported = ", ".join(f"'{t}'" for t in policy.ttl)
        raise apierrors.invalid_value(
            param, f"Invalid value: '{value}'. Supported values are: {supported}."
        )
    return value


def _options(options: Any, policy: PromptCachePolicy) -> tuple[str, str, bool]:
    """Mode, ttl and prewarm from ``prompt_cache_options`` (defaults: implicit, 30m, false)."""
    default_ttl = policy.ttl[0] if policy.ttl else "30m"
    if options is None:
        return "implicit", default_ttl, False
    name = "prompt_cache_options"
    if not isinstance(options, dict):
        raise apierrors.invalid_type(name, "an object")
    for key in options:
        if key not in _OPTION_FIELDS:
            raise _unknown_field(f"{name}.{key}")
    mode = options.get("mode")
    if mode is None:
        mode = "implicit"
    elif mode not in MODES:
        raise apierrors.invalid_value(
            f"{name}.mode",
            f"Invalid value: '{mode}'. Supported values are: 'implicit' and 'explicit'.",
        )
    ttl = options.get("ttl")
    ttl = default_ttl if ttl is None else _ttl(ttl, f"{name}.ttl", policy)
    prewarm = options.get("prewarm")
    if prewarm is not None and not isinstance(prewarm, bool):
        raise apierrors.invalid_type(f"{name}.prewarm", "a boolean")
    comparison = options.get("comparison_response_id")
    if comparison is not None and not isinstance(comparison, str):
        raise apierrors.invalid_type(f"{name}.comparison_response_id", "a string")
    return str(mode), ttl, bool(prewarm)


def _breakpoint(mark: Breakpoint, policy: PromptCachePolicy) -> str | None:
    """Check one breakpoint's shape and block; returns its own ttl (None: the request's)."""
    param, spec = mark.param, mark.spec
    if not isinstance(spec, dict):
        raise apierrors.invalid_type(param, "an object")
    for key in spec:
        if key not in _BREAKPOINT_FIELDS:
            raise _unknown_field(f"{param}.{key}")
    if "mode" not in spec:
        raise apierrors.missing_parameter(f"{param}.mode")
    if spec["mode"] != "explicit":
        raise apierrors.invalid_value(
            f"{param}.mode", f"Invalid value: '{spec['mode']}'. Supported values are: 'explicit'."
        )
    if mark.kind not in BREAKPOINT_PARTS:
        # INFERENCE: only input text/image/file blocks carry the field in the SDK's types.
        raise _unknown_field(param)
    ttl = spec.get("ttl")
    return None if ttl is None else _ttl(ttl, f"{param}.ttl", policy)


def _inherited_ttl(mark: Breakpoint, policy: PromptCachePolicy) -> str | None:
    """The own ttl of a breakpoint from a stored conversation, when this model accepts it."""
    ttl = mark.spec.get("ttl") if isinstance(mark.spec, dict) else None
    return ttl if ttl in policy.ttl else None
