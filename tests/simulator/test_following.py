"""How the simulated model follows a newsroom's prompt: word limits, corrections, facts and a
JSON Schema asked for in words."""

from __future__ import annotations

import json
import random

from pipeline.checks import unsupported
from pipeline.prompts import SCHEMA_IN_PROMPT
from pipeline.simulator.following import article_facts, ground, schema_asked, word_limit
from pipeline.simulator.text import GenerationRequest, generate

ARTICLE = (
    "Title: Council approves four-day week trial for 1,200 staff\n\n"
    "Harwick council voted 31 to 12 on Tuesday to let 1,200 staff work a four-day week "
    "from 1 March, said its leader, Dana Okafor."
)
STYLE = "Headlines: at most 12 words. Summaries: under 70 words. " * 40  # a long guide


def body(*messages: tuple[str, str]) -> dict[str, object]:
    return {"input": [{"role": role, "content": text} for role, text in messages]}


def test_the_limit_comes_from_the_task_not_the_style_guide_and_a_correction_wins() -> None:
    """The shortest developer message stating a limit is the task's; a later user turn after
    an answer overrides it."""
    first = body(
        ("developer", "Write one headline of at most 12 words."),
        ("developer", STYLE),
        ("user", ARTICLE),
    )
    assert word_limit(first) == 12
    summary = body(("developer", STYLE), ("developer", "no more than 70 words"), ("user", "x"))
    assert word_limit(summary) == 70
    fact_check = body(("developer", "List every claim."), ("developer", STYLE), ("user", "x"))
    assert word_limit(fact_check) is None  # the style guide's limits are for other tasks
    corrected = body(
        *[(m["role"], m["content"]) for m in first["input"]],  # type: ignore[attr-defined]
        ("assistant", "A much too long headline " * 3),
        ("user", "Rewrite it in at most 5 words."),
    )
    assert word_limit(corrected) == 5
    assert word_limit(body(("user", "no limit here"))) is None


def request(key: int, limit: int | None, facts: tuple[str, ...] = ()) -> GenerationRequest:
    return GenerationRequest(
        model="gpt-4.1-mini",
        key=key,
        max_output_tokens=300,
        temperature=0.3,
        top_p=1.0,
        effort=None,
        summary=False,
        text_format=None,
        word_limit=limit,
        facts=facts,
    )


def test_answers_keep_the_limit_at_the_obey_rate() -> None:
    """With obey_rate 1 every answer is within the limit; with 0 none is."""
    for key in range(40):
        kept = generate(request(key, 12), obey_rate=1.0).text
        broken = generate(request(key, 12), obey_rate=0.0).text
        assert len(kept.split()) <= 12 < len(broken.split())


def test_facts_come_from_the_article_and_a_hallucination_changes_one_figure() -> None:
    """Grounded answers use the article's names and figures; at rate 1 one figure differs."""
    facts = article_facts(body(("developer", "x"), ("user", ARTICLE)))
    assert {"1,200", "31", "12", "Okafor"} <= set(facts)
    source = ARTICLE
    honest = [generate(request(k, 40, facts), hallucination_rate=0.0).text for k in range(30)]
    assert all(unsupported(text, source) == [] for text in honest)
    rng = random.Random(3)
    changed = ground("one two three four five six seven", ("1,200",), rng, hallucination_rate=1.0)
    assert "1,200" not in changed and unsupported(changed, source)


def test_a_schema_asked_in_words_is_answered_in_json() -> None:
    """The turn that asks for JSON in words gets JSON of that schema, not prose."""
    schema = {
        "type": "object",
        "properties": {"accurate": {"type": "boolean"}},
        "required": ["accurate"],
        "additionalProperties": False,
    }
    asked = body(
        ("user", ARTICLE), ("developer", f"Grade it.\n\n{SCHEMA_IN_PROMPT}\n{json.dumps(schema)}")
    )
    assert schema_asked(asked) == schema
    answered = body(*[(m["role"], m["content"]) for m in asked["input"]], ("assistant", "{}"))  # type: ignore[attr-defined]
    assert schema_asked(answered) is None
    fmt = {"type": "json_schema", "name": "asked", "schema": schema}
    text = generate(GenerationRequest("gpt-4.1-mini", 7, 200, 0.0, 1.0, None, False, fmt)).text
    assert set(json.loads(text)) == {"accurate"}
