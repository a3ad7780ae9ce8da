"""Rendering a job into a request: static content first, then the article, then per-job parts.

The order comes from the profile (``parts``) or its layout. ``instructions_first`` shares the
task's instructions and contexts across all articles; ``article_first`` puts the contexts and
the article before the task's instructions, so several tasks of one article share the article
in the prompt cache. Over-long articles are trimmed to the profile's budget, and over-long
titles to ``TITLE_TOKEN_BUDGET``; that is recorded on the request, never silent.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache

from pipeline.prompts.articlejob import ArticleJob
from pipeline.prompts.profiles import DEFAULT_PARTS, Part, Profile
from pipeline.prompts.requests import (
    MESSAGE_OVERHEAD_TOKENS,
    Layout,
    RenderedRequest,
    Role,
    Segment,
    SegmentKind,
    digest,
    job_metadata,
)
from pipeline.prompts.tokens import count_tokens, fit

# Tokens a title may take in a prompt; a longer one is trimmed and the cut recorded.
TITLE_TOKEN_BUDGET = 256


@lru_cache(maxsize=1024)
def _static_segment(kind: SegmentKind, role: Role, text: str, model: str) -> Segment:
    # Instructions and contexts repeat in every request: tokenise and hash them once.
    return _segment(kind, role, text, model)


def segment(kind: SegmentKind, role: Role, text: str, model: str) -> Segment:
    """A prompt segment with its token count (incl. message overhead) and digest."""
    return _segment(kind, role, text, model)


def _segment(kind: SegmentKind, role: Role, text: str, model: str) -> Segment:
    return Segment(
        kind=kind,
        role=role,
        text=text,
        tokens=count_tokens(text, model) + MESSAGE_OVERHEAD_TOKENS,
        digest=digest(kind, role, text),
    )


def schema_text(profile: Profile) -> str | None:
    """The output format as the API places it before the instructions (canonical JSON)."""
    if profile.output_schema is None or profile.schema_in_prompt:
        return None
    fmt = {"type": "json_schema", "name": profile.schema_name}
    fmt_full = {**fmt, "schema": dict(profile.output_schema), "strict": True}
    return json.dumps(fmt_full, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _article_segment(job: ArticleJob, body: str, body_tokens: int, model: str) -> Segment:
    # The body was just tokenised to fit its budget; count only the short header again.
    # (Joining the two can differ from a full re-count by a token at the seam: immaterial.)
    header = article_text(job, "")
    text = header + body
    return Segment(
        kind="article",
        role="user",
        text=text,
        tokens=count_tokens(header, model) + body_tokens + MESSAGE_OVERHEAD_TOKENS,
        digest=digest("article", "user", text),
    )


def format_segment(profile: Profile) -> Segment:
    """The pseudo-segment for what precedes the messages: model, output schema, effort.

    The schema is part of the prompt (and of its cached prefix), so it carries its tokens.
    """
    schema = schema_text(profile)
    tokens = 0 if schema is None else count_tokens(schema, profile.model) + MESSAGE_OVERHEAD_TOKENS
    key = f"{profile.model}|{schema or ''}|{profile.reasoning_effort or ''}"
    return Segment(kind="format", role="developer", text="", tokens=tokens, digest=digest(key))


def article_text(job: ArticleJob, body: str) -> str:
    """The article as the model sees it."""
    header = f"Title: {job.title}"
    if job.section:
        header += f"\nSection: {job.section}"
    return f"{header}\n\n{body}"


def job_text(job: ArticleJob, profile: Profile) -> str:
    """The per-job part, from the profile's ``job_template``."""
    values = {
        "title": job.title,
        "section": job.section or "general",
        "url": job.url or "",
        "published_at": job.published_at.isoformat() if job.published_at else "",
        "source_id": job.source_id,
        "task": job.task,
    }
    return profile.job_template.format(**values)


def parts_for(profile: Profile, layout: Layout) -> tuple[Part, ...]:
    """The prompt parts in order: the profile's explicit ``parts``, else the layout's default."""
    return profile.parts if profile.parts is not None else DEFAULT_PARTS[layout]


def _short_title(job: ArticleJob, model: str) -> tuple[ArticleJob, dict[str, int]]:
    """``job`` with its title cut to ``TITLE_TOKEN_BUDGET`` tokens, and what was cut
    (``title_tokens_removed``): a title a million characters long is trimmed like a body, not
    sent whole. (Intake caps the other free-text fields, URL and section, already.)"""
    title = job.title
    # Tokens never outnumber UTF-8 bytes: a short title needs no tokenising.
    if len(title) <= TITLE_TOKEN_BUDGET // 4 or len(title.encode()) <= TITLE_TOKEN_BUDGET:
        return job, {}
    cut, _, removed = fit(title, TITLE_TOKEN_BUDGET, model)
    if not removed:
        return job, {}
    return replace(job, title=cut), {"title_tokens_removed": removed}


def render(
    job: ArticleJob,
    profile: Profile,
    layout: Layout,
    *,
    article_budget: int | None = None,
) -> RenderedRequest:
    """Turn ``job`` into a request for ``profile`` laid out as ``layout``.

    ``article_budget`` overrides the profile's article token budget (chains trim with it).
    """
    model = profile.model
    job, trimmed = _short_title(job, model)
    budget = profile.article_token_budget if article_budget is None else article_budget
    body, body_tokens, removed = fit(job.body, budget, model)
    if removed:
        trimmed["article_tokens_removed"] = removed
    segments: list[Segment] = [format_segment(profile)]
    for part in parts_for(profile, layout):
        if part == "instructions":
            segments.append(
                _static_segment("instructions", "developer", profile.instructions_text, model)
            )
        elif part == "contexts":
            for ctx in profile.contexts:
                text = ctx.for_section(job.section)
                if text is not None:
                    segments.append(_static_segment("context", "developer", text, model))
        elif part == "article":
            segments.append(_article_segment(job, body, body_tokens, model))
        else:
            segments.append(_segment("job", "user", job_text(job, profile), model))
    return RenderedRequest(
        job_id=job.id,
        article_id=job.article_id,
        task=job.task,
        profile=profile,
        layout=layout,
        segments=tuple(segments),
        trimmed=trimmed or None,
        metadata=job_metadata(job),
        content_hash=job.content_hash,
    )
