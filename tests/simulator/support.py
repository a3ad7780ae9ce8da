"""Helpers the simulator tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai

from pipeline.money.pricing import Tier, Usage, load_pricing
from pipeline.simulator import SimulatorServer, prompt_token_ids
from pipeline.simulator.testing import sync_client

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
KEY_POINTS_SCHEMA: dict[str, Any] = json.loads((CONFIG_DIR / "schemas/key_points.json").read_text())
PRICES = load_pricing(CONFIG_DIR / "pricing.toml")

# About 1,800 tokens of stable text: long enough for the 1024-token caching minimum.
LONG_INSTRUCTIONS = "You are the night editor of a regional newspaper. " + " ".join(
    f"Rule {i}: keep sentence {i} short, factual and attributed to a named source."
    for i in range(1, 100)
)


def sdk(server: SimulatorServer, **options: Any) -> openai.OpenAI:
    """A synchronous SDK client for ``server`` (no retries unless asked)."""
    return sync_client(server, **options)


def admin(server: SimulatorServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Call a ``/_sim/`` hook over HTTP."""
    with httpx.Client(base_url=server.root_url) as http:
        return http.request(method, path, **kwargs)


def usage_of(response: Any) -> Usage:
    """The SDK response's usage as a pricing ``Usage``."""
    u = response.usage
    return Usage(
        u.input_tokens,
        u.input_tokens_details.cached_tokens,
        u.output_tokens,
        u.output_tokens_details.reasoning_tokens,
        u.input_tokens_details.cache_write_tokens,
    )


def words(count: int, word: str = "word") -> str:
    """Text of exactly ``count`` o200k tokens (``word`` then `` word`` x count-1)."""
    return " ".join([word] * count)


def text_block(text: str, *, breakpoint: bool = False) -> dict[str, Any]:
    """An ``input_text`` block, with ``prompt_cache_breakpoint: {"mode": "explicit"}`` if asked."""
    block: dict[str, Any] = {"type": "input_text", "text": text}
    if breakpoint:
        block["prompt_cache_breakpoint"] = {"mode": "explicit"}
    return block


def message(role: str, *blocks: dict[str, Any]) -> dict[str, Any]:
    """An input message made of ``input_text`` blocks."""
    return {"role": role, "content": list(blocks)}


def ledger_cost(
    server: SimulatorServer, model: str | None = None, tier: Tier = "standard"
) -> Decimal:
    """A cost from the ledger (total, or one model and tier)."""
    data = server.ledger()
    if model is None:
        return Decimal(data["totals"]["cost_usd"])
    return Decimal(data["models"][model][tier]["cost_usd"])


def shared_prefix(a: dict[str, Any], b: dict[str, Any]) -> int:
    """How many leading prompt token ids two request bodies share."""
    x, y = prompt_token_ids(a), prompt_token_ids(b)
    return next(
        (i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y))
    )
