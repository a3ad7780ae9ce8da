"""``contentgen profiles check``: each profile's model, cache regime and shared prefixes.

For every profile: the model's prompt-cache regime and what the request will carry (lifetime,
explicit breakpoints or routing keys), and, per article section, the static prefix every
request of that task and section shares (output format, instructions, shared contexts) against
the model's minimum, with the padding verdict of ``planning.advice`` for the expected number of
requests. Nothing is sent and nothing is padded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.money import PromptCachePolicy
from pipeline.planning.advice import PrefixAdvice, prefix_advice
from pipeline.planning.shape import lifetime_for
from pipeline.prompts import ArticleJob, Layout, Profile, RenderedRequest, render

GENERAL = "general"


@dataclass(frozen=True)
class ProfileCheck:
    """One profile's cache set-up and its short shared prefixes."""

    task: str
    model: str
    regime: str
    lifetime: str | None
    static_tokens: dict[str, int]
    advice: list[PrefixAdvice]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "task": self.task,
            "model": self.model,
            "regime": self.regime,
            "lifetime": self.lifetime,
            "static_prefix_tokens": dict(self.static_tokens),
            "short_prefixes": [a.as_dict() for a in self.advice],
        }


def sections_of(profile: Profile) -> list[str | None]:
    """The sections whose briefs differ for ``profile`` (None: one prompt for every section)."""
    names: set[str] = set()
    for ctx in profile.contexts:
        names.update(ctx.by_section)
    return [*sorted(names), None] if names else [None]


def _sample_job(index: int, task: str, section: str | None) -> ArticleJob:
    return ArticleJob(
        id=index,
        task=task,
        attempts=0,
        batch_label=None,
        article_id=index,
        source_id=f"check-{index}",
        title=f"Sample {index}",
        body=f"Sample article {index}.",
        section=section,
        url=None,
        published_at=dt.datetime(2026, 1, 1),
        metadata=None,
    )


def _static_tokens(request: RenderedRequest) -> int:
    total = 0
    for segment in request.segments:
        if segment.kind not in ("format", "instructions", "context"):
            break
        total += segment.tokens
    return total


def check_profiles(
    profiles: Mapping[str, Profile],
    policies: Mapping[str, PromptCachePolicy],
    requests_per_section: Mapping[tuple[str, str | None], int],
    default_requests: int = 100,
) -> list[ProfileCheck]:
    """Check every profile; ``requests_per_section`` maps (task, section) to queued jobs.

    A (task, section) with no count gets ``default_requests``. Profiles are rendered
    instructions-first unless their layout says otherwise (the static part is what is shared).
    """
    checks = []
    next_id = 1
    for task, profile in sorted(profiles.items()):
        policy = policies[profile.model]
        layout: Layout = (
            "article_first" if profile.layout == "article_first" else "instructions_first"
        )
        requests: list[RenderedRequest] = []
        static: dict[str, int] = {}
        for section in sections_of(profile):
            count = requests_per_section.get((task, section), default_requests)
            if count <= 0:
                continue
            batch = [_sample_job(next_id + i, task, section) for i in range(count)]
            next_id += count
            rendered = [render(job, profile, layout) for job in batch]
            static[section or GENERAL] = _static_tokens(rendered[0])
            requests.extend(rendered)
        checks.append(
            ProfileCheck(
                task=task,
                model=profile.model,
                regime=policy.regime,
                lifetime=lifetime_for(profile, policy),
                static_tokens=static,
                advice=prefix_advice(requests, policies),
            )
        )
    return checks
