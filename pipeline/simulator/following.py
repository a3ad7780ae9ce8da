"""How the simulated model follows a newsroom's prompt, roughly: word limits and facts.

A rehearsal of checks needs answers that behave like a model's: mostly within the word limit
the instructions state, sometimes over it, corrected when told; facts copied from the article,
now and then one changed. So:

- **Word limit**: ``at most N words`` / ``no more than N words`` / ``under N words`` in the
  latest user turn after an answer (a correction) wins; else the shortest developer message of
  at most 1,500 characters that states one (a task's instructions; a style guide around them
  states limits for other tasks). With
  ``obey_rate`` the answer keeps within it (60-100% of N), else it runs 10-60% over.
- **JSON asked in words**: a turn that says ``SCHEMA_IN_PROMPT`` and gives a JSON Schema
  (a chained task's, ``Profile.schema_in_prompt``) is answered with JSON of that schema.
- **Facts**: names and figures of the article (the user message that starts with ``Title:``)
  are written into plain-text answers, and the vocabulary's own number words are left out, so
  every figure comes from the article; with ``hallucination_rate`` one copied figure is changed.

Deterministic: every draw comes from the answer's seed.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from pipeline.checks import names, numbers
from pipeline.prompts import SCHEMA_IN_PROMPT

_LIMIT = re.compile(
    r"\b(?:at most|no more than|not more than|up to|under|maximum of)\s+(\d{1,4})\s+words\b",
    re.IGNORECASE,
)
_VOCABULARY_NUMBERS = re.compile(r"\b(?:[Tt]wo|[Tt]hree)\b")
_FACTS_PER_WORDS = 12
# A task's instructions are short; a long developer text stating limits is a style guide,
# whose limits are for other tasks.
_INSTRUCTIONS_CHARS = 1500
_MAX_FACTS = 40


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    items = body.get("input")
    if isinstance(items, str):
        return [("user", items)]
    if not isinstance(items, list):
        return []
    return [
        (str(m.get("role", "user")), _text(m.get("content"))) for m in items if isinstance(m, dict)
    ]


def word_limit(body: dict[str, Any]) -> int | None:
    """The word limit the answer is asked to keep (see the module docstring), or None."""
    messages = _messages(body)
    last_answer = max(
        (i for i, (role, _) in enumerate(messages) if role == "assistant"), default=-1
    )
    for role, text in reversed(messages[last_answer + 1 :]):
        if role == "user" and (found := _LIMIT.findall(text)):
            return int(found[-1])
    stated = [
        (len(text), int(found[0]))
        for role, text in messages
        if role in ("developer", "system")
        and len(text) <= _INSTRUCTIONS_CHARS
        and (found := _LIMIT.findall(text))
    ]
    return min(stated)[1] if stated else None


def article_facts(body: dict[str, Any]) -> tuple[str, ...]:
    """Names and figures of the article in the request, in order, once each (at most 40)."""
    for role, text in _messages(body):
        if role == "user" and text.startswith("Title:"):
            return _facts(text)
    return ()


@lru_cache(maxsize=256)
def _facts(text: str) -> tuple[str, ...]:
    found = [n.text for n in numbers(text) if any(c.isdigit() for c in n.text)]
    found += names(text)
    return tuple(dict.fromkeys(found))[:_MAX_FACTS]


def words_for(limit: int, rng: random.Random, obey_rate: float) -> int:
    """How many words an answer under ``limit`` has: mostly within it, sometimes over."""
    if rng.random() < obey_rate:
        return max(1, int(limit * rng.uniform(0.6, 1.0)))
    return int(limit * rng.uniform(1.1, 1.6)) + 1


def _altered(fact: str, rng: random.Random) -> str:
    digits = [i for i, c in enumerate(fact) if c.isdigit()]
    if not digits:
        return fact
    i = digits[-1]
    return fact[:i] + str((int(fact[i]) + rng.randint(1, 8)) % 10) + fact[i + 1 :]


def ground(text: str, facts: Sequence[str], rng: random.Random, hallucination_rate: float) -> str:
    """``text`` with some words replaced by the article's facts (one maybe changed)."""
    text = _VOCABULARY_NUMBERS.sub("several", text)
    if not facts:
        return text
    words = text.split(" ")
    count = min(len(facts), max(1, len(words) // _FACTS_PER_WORDS))
    chosen = rng.sample(list(facts), count)
    if rng.random() < hallucination_rate:
        figures = [i for i, f in enumerate(chosen) if any(c.isdigit() for c in f)]
        if figures:
            i = rng.choice(figures)
            chosen[i] = _altered(chosen[i], rng)
    for fact in chosen:
        at = rng.randrange(len(words))
        word = words[at]
        tail = word[len(word.rstrip(".,\n")) :]
        words[at] = fact + tail
    return " ".join(words)


def schema_asked(body: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema the latest turn asks for in words, or None."""
    for role, text in reversed(_messages(body)):
        if role == "assistant":
            return None
        at = text.rfind(SCHEMA_IN_PROMPT)
        if at >= 0:
            rest = text[at + len(SCHEMA_IN_PROMPT) :].lstrip()
            try:
                schema, _ = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                return None
            return schema if isinstance(schema, dict) else None
    return None
