"""Model families: which models reason, their default effort and which sampling fields they take."""

from __future__ import annotations

import re

from pipeline.money import base_model_name

_REASONING = re.compile(r"^(o1|o3|o4|gpt-5)")
# gpt-5.1 and later default to effort "none", where temperature/top_p are accepted (§4).
_EFFORT_NONE_DEFAULT = re.compile(r"^gpt-5\.\d")

# Reasoning tokens drawn per effort (inclusive range), before any max_output_tokens cut.
EFFORT_TOKENS: dict[str, tuple[int, int]] = {
    "none": (0, 0),
    "minimal": (0, 64),
    "low": (64, 200),
    "medium": (200, 640),
    "high": (640, 1800),
    "xhigh": (1500, 4000),
    "max": (3000, 8000),
}


def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 family models emit a reasoning item and reasoning tokens."""
    return bool(_REASONING.match(base_model_name(model)))


def default_effort(model: str) -> str | None:
    """The effort a reasoning model uses when the request names none (None: not a reasoner)."""
    if not is_reasoning_model(model):
        return None
    return "none" if _EFFORT_NONE_DEFAULT.match(base_model_name(model)) else "medium"


def sampling_allowed(model: str, effort: str | None) -> bool:
    """True when temperature/top_p are accepted: non-reasoning models, or effort ``none``."""
    return not is_reasoning_model(model) or effort == "none"
