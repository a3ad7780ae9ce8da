"""Task chains: a task that follows another is sent as the next turn of the same conversation.

With the default ``chain_via = "history"`` (stateless, works with ``store=False``) the child's
prompt is the parent's prompt exactly as it was sent, then the parent's answer as an assistant
message, then the child's instructions and per-job part. The parent's whole prompt is thus the
child's prefix, and the article is served from the prompt cache on the second turn. With
``chain_via = "previous_response_id"`` (needs ``store = true``) the API holds the earlier turn
and the request carries only the new one.

Context management, when the child's prompt would pass the profile's ``input_token_budget``:
first earlier turns are dropped, oldest first (assistant answers before the parent's; the
parent's own answer is always kept), then the article is trimmed to fit (never below
``MIN_ARTICLE_TOKENS``). Either changes the prefix, so the trimmed request misses the cache; the
generation records what was trimmed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from pipeline.prompts.articlejob import ArticleJob
from pipeline.prompts.profiles import Profile
from pipeline.prompts.rendering import article_text, format_segment, job_text, render, segment
from pipeline.prompts.requests import (
    MESSAGE_OVERHEAD_TOKENS,
    REQUEST_OVERHEAD_TOKENS,
    Layout,
    RenderedRequest,
    Segment,
    job_metadata,
)
from pipeline.prompts.tokens import count_tokens

MIN_ARTICLE_TOKENS = 64


@dataclass(frozen=True)
class ParentOutput:
    """What the parent step produced for one article: its answer, ids and cache key."""

    job_id: int
    task: str
    answer: str
    response_id: str | None
    cache_key: str | None
    generation_id: int | None = None


@dataclass(frozen=True)
class ChainedRequest:
    """A child request and the cache key its parent used (so it lands on the same machine)."""

    request: RenderedRequest
    parent_cache_key: str | None
    parent_prompt_tokens: int


def _tokens(segments: list[Segment]) -> int:
    return REQUEST_OVERHEAD_TOKENS + sum(s.tokens for s in segments)


def _turn(profile: Profile, job: ArticleJob) -> list[Segment]:
    model = profile.model
    return [
        segment("instructions", "developer", profile.instructions_text, model),
        segment("job", "user", job_text(job, profile), model),
    ]


def _sent_prompt(
    job: ArticleJob,
    steps: Sequence[tuple[Profile, Layout, ParentOutput]],
    article_budget: int | None = None,
) -> tuple[RenderedRequest, list[Segment]]:
    """The root step's plain render and the message segments the last step was sent with."""
    root_profile, root_layout, root_out = steps[0]
    root_job = replace(job, id=root_out.job_id, task=root_out.task)
    root = render(root_job, root_profile, root_layout, article_budget=article_budget)
    messages = [s for s in root.segments if s.is_message]
    for (_, _, before), (step_profile, _, step_out) in pairwise(steps):
        messages.append(segment("history", "assistant", before.answer, step_profile.model))
        messages.extend(_turn(step_profile, replace(job, id=step_out.job_id, task=step_out.task)))
    return root, messages


def render_child(
    job: ArticleJob,
    profile: Profile,
    parent_profile: Profile,
    parent_layout: Layout,
    parent: ParentOutput,
    *,
    ancestors: Sequence[tuple[Profile, Layout, ParentOutput]] = (),
) -> ChainedRequest:
    """Render ``job`` as the turn after ``parent`` (see the module docstring).

    ``ancestors``: the steps before the parent, oldest first, when the parent follows a task
    itself (its prompt as sent was their conversation, then its own turn).
    """
    steps = [*ancestors, (parent_profile, parent_layout, parent)]
    root, earlier = _sent_prompt(job, steps)
    parent_prompt_tokens = (
        REQUEST_OVERHEAD_TOKENS + root.segments[0].tokens + sum(s.tokens for s in earlier)
    )
    if profile.chain_via == "previous_response_id" and parent.response_id:
        request = RenderedRequest(
            job_id=job.id,
            article_id=job.article_id,
            task=job.task,
            profile=profile,
            layout=parent_layout,
            segments=(format_segment(profile), *_turn(profile, job)),
            previous_response_id=parent.response_id,
            metadata=job_metadata(job),
            content_hash=job.content_hash,
            parent_generation_id=parent.generation_id,
        )
        return ChainedRequest(request, parent.cache_key, parent_prompt_tokens)
    answer = segment("history", "assistant", parent.answer, profile.model)
    trimmed: dict[str, int] = dict(root.trimmed or {})
    segments = [format_segment(profile), *earlier, answer, *_turn(profile, job)]
    over = _tokens(segments) - profile.input_token_budget
    if over > 0:
        # 1. Earlier turns, oldest first (the parent's answer to its own parent, and so on).
        dropped = 0
        for old in [s for s in earlier if s.kind == "history"]:
            if over <= 0:
                break
            segments.remove(old)
            over -= old.tokens
            dropped += 1
        if dropped:
            trimmed["history_turns_dropped"] = dropped
    if over > 0:
        # 2. The article's body, re-rendered with a smaller budget (the segment also holds the
        # title/section header and the message overhead, which stay).
        article = next(s for s in segments if s.kind == "article")
        root_profile = steps[0][0]
        header = count_tokens(article_text(job, ""), root_profile.model) + MESSAGE_OVERHEAD_TOKENS
        body = article.tokens - header
        budget = max(MIN_ARTICLE_TOKENS, body - over)
        if budget < body:
            shorter, _ = _sent_prompt(job, steps, article_budget=budget)
            new_article = next(s for s in shorter.segments if s.kind == "article")
            segments[segments.index(article)] = new_article
            trimmed["article_tokens_removed"] = trimmed.get("article_tokens_removed", 0) + (
                article.tokens - new_article.tokens
            )
    request = RenderedRequest(
        job_id=job.id,
        article_id=job.article_id,
        task=job.task,
        profile=profile,
        layout=parent_layout,
        segments=tuple(segments),
        trimmed=trimmed or None,
        metadata=job_metadata(job, follows=parent.task),
        content_hash=job.content_hash,
        parent_generation_id=parent.generation_id,
    )
    return ChainedRequest(request, parent.cache_key, parent_prompt_tokens)


def follow_up(request: RenderedRequest, answer: str, message: str, *, why: str) -> RenderedRequest:
    """``request`` continued by one more turn: its ``answer`` (as the assistant's) and
    ``message`` (the user's), e.g. what a check found wrong or an editor's rejection note.

    The original prompt stays the prefix, so it is read from the prompt cache where it is
    still there; ``why`` labels the turn in the request metadata (``contentgen_follow_up``).
    """
    model = request.model
    turn = (
        segment("history", "assistant", answer, model),
        segment("job", "user", message, model),
    )
    return replace(
        request,
        segments=(*request.segments, *turn),
        metadata={**request.metadata, "contentgen_follow_up": why},
    )


def followers_of(profiles: Mapping[str, Profile]) -> dict[str, tuple[str, ...]]:
    """Task -> the tasks that follow it."""
    found: dict[str, list[str]] = {}
    for task, profile in profiles.items():
        if profile.follows is not None:
            found.setdefault(profile.follows, []).append(task)
    return {task: tuple(sorted(children)) for task, children in found.items()}
