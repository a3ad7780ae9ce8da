"""A generated newsroom workload for the benchmarks: articles across sections, and a config.

Deterministic for a seed. Profiles: ``summary`` (factual, temperature 0.3) and ``headline``
(creative, temperature 0.9) on one model, both with a long shared style guide and a
per-section brief, as a real newsroom would set them up. With ``tasks=4`` two more profiles,
``key_points`` and ``fact_check``, join them on the same model and contexts, all four with
``layout = "auto"``: the shipped config's shape, where laying the article out first lets the
four tasks of one article share it in the prompt cache.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

SECTIONS = ("politics", "business", "sport", "science", "culture")
_WORDS = [
    "council",
    "minister",
    "budget",
    "vote",
    "parliament",
    "election",
    "coalition",
    "policy",
    "reform",
    "tax",
    "market",
    "shares",
    "investors",
    "profit",
    "quarter",
    "growth",
    "inflation",
    "bank",
    "rate",
    "exports",
    "league",
    "match",
    "goal",
    "season",
    "coach",
    "striker",
    "final",
    "injury",
    "researchers",
    "study",
    "climate",
    "ocean",
    "species",
    "telescope",
    "vaccine",
    "trial",
    "data",
    "museum",
    "festival",
    "novel",
    "director",
    "premiere",
    "gallery",
    "audience",
    "critics",
    "city",
    "residents",
    "plan",
    "report",
    "officials",
    "announced",
    "said",
    "according",
    "yesterday",
    "week",
    "month",
    "year",
    "new",
    "first",
    "major",
    "local",
    "national",
    "international",
    "public",
    "private",
    "government",
    "company",
    "team",
    "players",
    "results",
    "evidence",
    "experts",
    "analysis",
    "record",
    "increase",
    "decline",
    "agreement",
]


def _prose(rng: random.Random, words: int) -> str:
    sentences = []
    count = 0
    while count < words:
        n = rng.randint(8, 22)
        sentence = " ".join(rng.choice(_WORDS) for _ in range(n))
        sentences.append(sentence.capitalize() + ".")
        count += n
    paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
    return "\n\n".join(paragraphs)


@dataclass(frozen=True)
class Workload:
    """Where the generated files are."""

    config_dir: Path
    articles: Path
    count: int


def write_config(
    root: Path,
    *,
    model: str,
    rng: random.Random,
    service_tier: str | None = None,
    chain: bool = False,
    tasks: int = 2,
) -> Path:
    """A config dir: a ~1,500-token style guide, ~250-token section briefs, two (or four)
    profiles."""
    config = root / "config"
    (config / "contexts" / "sections").mkdir(parents=True, exist_ok=True)
    (config / "prompts").mkdir(exist_ok=True)
    (config / "contexts" / "style_guide.md").write_text(
        "# House style guide\n\n" + _prose(rng, 1150), encoding="utf-8"
    )
    for section in (*SECTIONS, "general"):
        (config / "contexts" / "sections" / f"{section}.md").write_text(
            f"# Brief for the {section} desk\n\n" + _prose(rng, 190), encoding="utf-8"
        )
    (config / "prompts" / "summary.md").write_text(
        "Summarise the article in three factual sentences. " + _prose(rng, 40), encoding="utf-8"
    )
    (config / "prompts" / "headline.md").write_text(
        "Write one headline of at most twelve words. " + _prose(rng, 30), encoding="utf-8"
    )
    (config / "prompts" / "key_points.md").write_text(
        "List the article's key points, one a line. " + _prose(rng, 35), encoding="utf-8"
    )
    (config / "prompts" / "fact_check.md").write_text(
        "List each checkable claim and whether the article supports it. " + _prose(rng, 35),
        encoding="utf-8",
    )
    tier = f'service_tier = "{service_tier}"\n' if service_tier else ""
    # Reasoning models take an effort, not a temperature: the lowest, as a newsroom would
    # for summaries and headlines (at the default effort they spend the output cap thinking).
    reasoning = model.startswith(("gpt-5", "o"))
    # gpt-5.1 and later default to effort "none"; the older ones think at "medium" by default.
    effort = 'reasoning_effort = "minimal"\n' if model.startswith(("gpt-5-", "o")) else ""
    sampling_summary = effort if reasoning else "temperature = 0.3\n"
    sampling_headline = effort if reasoning else "temperature = 0.9\ntop_p = 0.95\n"
    headline_cap = 120 if effort else 40  # room for the reasoning tokens before the text
    follows = 'follows = "summary"\n' if chain else ""
    (config / "profiles.toml").write_text(
        f"""
[contexts.style_guide]
file = "contexts/style_guide.md"

[contexts.section_brief]
by_section = "contexts/sections/{{section}}.md"
fallback = "contexts/sections/general.md"

[profiles.summary]
model = "{model}"
instructions_file = "prompts/summary.md"
contexts = ["style_guide", "section_brief"]
{sampling_summary}max_output_tokens = 200
job_template = "Summary for: {{title}}"
{tier}
[profiles.headline]
model = "{model}"
instructions_file = "prompts/headline.md"
contexts = ["style_guide", "section_brief"]
{sampling_headline}max_output_tokens = {headline_cap}
job_template = "Headline for the {{section}} desk."
{tier}{follows}"""
        + (_more_profiles(model, sampling_summary, tier) if tasks == 4 else ""),
        encoding="utf-8",
    )
    shutil.copy(Path(__file__).resolve().parents[1] / "config" / "pricing.toml", config)
    return config


def _more_profiles(model: str, sampling: str, tier: str) -> str:
    """``key_points`` and ``fact_check``: two more tasks on the same model and contexts."""
    return f"""
[profiles.key_points]
model = "{model}"
instructions_file = "prompts/key_points.md"
contexts = ["style_guide", "section_brief"]
{sampling}max_output_tokens = 160
job_template = "Key points of: {{title}}"
{tier}
[profiles.fact_check]
model = "{model}"
instructions_file = "prompts/fact_check.md"
contexts = ["style_guide", "section_brief"]
{sampling}max_output_tokens = 160
job_template = "Check the claims of: {{title}}"
{tier}"""


def generate(
    root: Path,
    n_articles: int,
    *,
    model: str = "gpt-4.1-mini",
    seed: int = 7,
    service_tier: str | None = None,
    chain: bool = False,
    tasks: int = 2,
) -> Workload:
    """Write a config dir and an articles JSONL of ``n_articles`` under ``root``."""
    if tasks not in (2, 4):
        raise ValueError(f"tasks must be 2 or 4, got {tasks}")
    rng = random.Random(seed)
    config = write_config(
        root, model=model, rng=rng, service_tier=service_tier, chain=chain, tasks=tasks
    )
    path = root / "articles.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n_articles):
            section = SECTIONS[i % len(SECTIONS)]
            row = {
                "id": f"bench-{i:06d}",
                "title": _prose(rng, 9).rstrip("."),
                "body": _prose(rng, rng.randint(350, 650)),
                "section": section,
            }
            fh.write(json.dumps(row) + "\n")
    return Workload(config, path, n_articles)
