"""What the simulated model writes: deterministic text, JSON and reasoning token counts.

A generation depends only on the request's generative fields and the simulator seed (through
``prompt.generation_key``), so the same request always gets the same answer, as a local response
cache expects. Lengths are natural fractions of ``max_output_tokens`` (40-70% of it for the
visible text); reasoning tokens come on top and count against the same budget.
"""

from __future__ import annotations

import json
import random
import re
from array import array
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from pipeline.prompts import encoding_for
from pipeline.simulator.following import ground, words_for
from pipeline.simulator.models import EFFORT_TOKENS
from pipeline.simulator.schema import SchemaInstance
from pipeline.simulator.vocabulary import WORDS

_DELTA = re.compile(r"\s*\S+")
_FOLLOW_SALT = 0x5EED_F011
_SENTENCE_WORDS = tuple(range(8, 21))
_PARAGRAPH_SENTENCES = (3, 4, 5, 6)


@dataclass(frozen=True)
class GenerationRequest:
    """The fields of a request that shape its output."""

    model: str
    key: int
    max_output_tokens: int | None
    temperature: float
    top_p: float
    effort: str | None
    summary: bool
    text_format: dict[str, Any] | None
    # Instruction following (``following``): the stated word limit, the article's facts.
    word_limit: int | None = None
    facts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """A finished generation: visible text, token counts and whether it hit the budget."""

    text: str
    text_tokens: int
    reasoning_tokens: int
    summary: str | None
    incomplete: bool
    has_message: bool

    @property
    def output_tokens(self) -> int:
        """Visible plus reasoning tokens (what ``usage.output_tokens`` reports)."""
        return self.text_tokens + self.reasoning_tokens


def deltas(text: str) -> list[str]:
    """``text`` split the way a stream sends it: one word (with its leading space) per delta."""
    parts = _DELTA.findall(text)
    consumed = sum(len(p) for p in parts)
    if consumed < len(text):
        parts.append(text[consumed:])
    return parts


def _pool(temperature: float, top_p: float) -> tuple[str, ...]:
    share = min(1.0, max(0.25, 0.25 + 0.375 * temperature)) * min(1.0, max(0.05, top_p))
    return WORDS[: max(20, int(len(WORDS) * share))]


def _draw(rng: random.Random, population: tuple[str, ...] | tuple[int, ...], k: int) -> list[Any]:
    """``k`` uniform picks from ``population``: one RNG call, not one per pick."""
    size = len(population)
    picks = itemgetter(*[i % size for i in array("H", rng.randbytes(2 * k))])(population)
    return list(picks) if k > 1 else [picks]


def prose(rng: random.Random, tokens: int, temperature: float = 1.0, top_p: float = 1.0) -> str:
    """About ``tokens`` tokens of sentences drawn from the vocabulary (about one token a word)."""
    words = _draw(rng, _pool(temperature, top_p), max(1, int(tokens * 0.93)))
    count = len(words)
    sentences: list[str] = []
    start = 0
    for length in _draw(rng, _SENTENCE_WORDS, count // 8 + 1):
        if start >= count:
            break
        sentence = " ".join(words[start : start + length])
        sentences.append(sentence[0].upper() + sentence[1:] + ".")
        start += length
    paragraphs: list[str] = []
    start = 0
    for length in _draw(rng, _PARAGRAPH_SENTENCES, len(sentences) // 3 + 1):
        if start >= len(sentences):
            break
        paragraphs.append(" ".join(sentences[start : start + length]))
        start += length
    return "\n\n".join(paragraphs)


def _json_text(request: GenerationRequest, rng: random.Random, target: int) -> str:
    fmt = request.text_format or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    if not isinstance(schema, dict):
        return json.dumps({"result": prose(rng, target)}, ensure_ascii=False)
    word_rng = random.Random(rng.getrandbits(64))
    pool = _pool(request.temperature, request.top_p)

    def words(count: int) -> str:
        return " ".join(word_rng.choices(pool, k=count))

    struct_seed = rng.getrandbits(64)
    probe = SchemaInstance(schema, random.Random(struct_seed), words)
    skeleton = json.dumps(probe.build(1), separators=(",", ":"), ensure_ascii=False)
    base = len(encoding_for(request.model).encode_ordinary(skeleton))
    per_string = (target - base) // max(1, probe.string_leaves) + 1
    final = SchemaInstance(schema, random.Random(struct_seed), words)
    return json.dumps(final.build(per_string), separators=(",", ":"), ensure_ascii=False)


def _reasoning_tokens(request: GenerationRequest, rng: random.Random) -> int:
    if request.effort is None:
        return 0
    low, high = EFFORT_TOKENS.get(request.effort, EFFORT_TOKENS["medium"])
    return rng.randint(low, high)


def generate(
    request: GenerationRequest,
    *,
    incomplete_rate: float = 0.0,
    force_incomplete: bool = False,
    default_tokens: tuple[int, int] = (150, 450),
    obey_rate: float = 1.0,
    hallucination_rate: float = 0.0,
) -> Generation:
    """The deterministic answer to ``request``.

    The visible text aims at 40-70% of ``max_output_tokens`` (or ``default_tokens`` without a
    budget). When reasoning plus text exceed the budget, or a seeded draw under
    ``incomplete_rate`` says so (only with a budget), the output is cut at exactly
    ``max_output_tokens`` tokens and marked incomplete. ``force_incomplete`` (a scripted fault)
    cuts at the budget, or at half the text without one. A stated word limit and the article's
    facts shape plain-text answers (``following``: ``obey_rate``, ``hallucination_rate``).
    """
    rng = random.Random(request.key)
    budget = request.max_output_tokens
    reasoning = _reasoning_tokens(request, rng)
    if budget is not None:
        target = max(1, int(budget * rng.uniform(0.4, 0.7)))
    else:
        target = rng.randint(*default_tokens)
    draw = rng.random()
    forced = force_incomplete or (budget is not None and draw < incomplete_rate)
    if forced and budget is not None:
        target = max(target, int((budget - min(reasoning, budget)) * 1.3) + 8)
    summary = prose(rng, rng.randint(30, 70)) if request.summary and reasoning else None
    structured = request.text_format and request.text_format.get("type") in (
        "json_schema",
        "json_object",
    )
    follow = random.Random(request.key ^ _FOLLOW_SALT)
    if request.word_limit is not None and not forced and not structured:
        words = words_for(request.word_limit, follow, obey_rate)
        target = max(1, round(words / 0.93))
        if budget is not None:
            target = min(target, max(1, budget - reasoning))
    if structured:
        text = _json_text(request, rng, target)
        if request.facts:
            text = ground(text, (), follow, 0.0)  # only the article's figures, none of its own
    else:
        text = prose(rng, target, request.temperature, request.top_p)
        if request.word_limit is not None or request.facts:
            text = ground(text, request.facts, follow, hallucination_rate)
    encoding = encoding_for(request.model)
    ids = encoding.encode_ordinary(text)
    cap = budget
    if forced and cap is None:
        cap = reasoning + max(1, len(ids) // 2)
    if cap is None or reasoning + len(ids) <= cap:
        return Generation(text, len(ids), reasoning, summary, False, True)
    if reasoning >= cap:
        return Generation("", 0, cap, summary, True, False)
    room = cap - reasoning
    return Generation(encoding.decode(ids[:room]), room, reasoning, summary, True, True)
