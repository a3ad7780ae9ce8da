"""The values that flow from rendering to planning to execution.

A ``RenderedRequest`` is one job turned into an API request: an ordered tuple of
``Segment``s (the prompt, static content first) plus the profile's settings. Segments are
what the planner's prefix tree is built from, so each carries its token count and a digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.prompts.articlejob import ArticleJob
from pipeline.prompts.profiles import Profile

SegmentKind = Literal["format", "instructions", "context", "article", "history", "job"]
Role = Literal["developer", "user", "assistant"]
Layout = Literal["instructions_first", "article_first"]

# Token accounting of the message-array form: every message costs its text's tokens plus a
# small fixed overhead (role and separators), and each request a little more. The simulator
# bills with the same numbers, so forecasts and limiter estimates match its usage.
MESSAGE_OVERHEAD_TOKENS = 4
REQUEST_OVERHEAD_TOKENS = 3


def digest(*parts: str) -> str:
    """A short stable hash of ``parts`` (hex, 32 chars)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class Segment:
    """One message of the prompt: its role, text, token count (incl. overhead) and digest.

    ``kind == "format"`` is a pseudo-segment with no message: the output schema and model,
    which the API places before everything else, so requests that differ there share nothing.
    """

    kind: SegmentKind
    role: Role
    text: str
    tokens: int
    digest: str

    @property
    def is_message(self) -> bool:
        """False for the ``format`` pseudo-segment."""
        return self.kind != "format"


@dataclass(frozen=True)
class CacheFields:
    """How one request asks for prompt caching; which fields apply depends on the model's regime.

    Grid models (before GPT-5.6): ``retention`` is sent as ``prompt_cache_retention``.
    Breakpoint models (GPT-5.6+): with ``explicit``, messages are sent as ``input_text`` blocks,
    a ``prompt_cache_breakpoint`` closes each segment whose index is in ``breakpoints``, and
    ``prompt_cache_options`` says ``mode: "explicit"`` (per-job text nobody reuses is never
    written) with ``ttl``; ``prewarm`` sends only the prefix up to the last breakpoint, to be
    written to the cache without generating anything.
    """

    retention: str | None = None
    explicit: bool = False
    breakpoints: tuple[int, ...] = ()
    ttl: str | None = None
    prewarm: bool = False


_BREAKPOINT = {"mode": "explicit"}


@dataclass(frozen=True)
class RenderedRequest:
    """A job rendered for its profile, ready to be planned and sent."""

    job_id: int
    article_id: int
    task: str
    profile: Profile
    layout: Layout
    segments: tuple[Segment, ...]
    trimmed: dict[str, int] | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # The article's content hash the request was rendered from (``ArticleJob.content_hash``).
    content_hash: str | None = None
    # A chained request: the generation of the parent it continues (a grader grades it).
    parent_generation_id: int | None = None

    @property
    def model(self) -> str:
        """The model the request goes to."""
        return self.profile.model

    @property
    def source_text(self) -> str | None:
        """The article as the model was given it (title, section, body as trimmed), or None
        when the request does not carry it (a chain through ``previous_response_id``)."""
        for s in self.segments:
            if s.kind == "article":
                return s.text
        return None

    @property
    def prompt_tokens(self) -> int:
        """Estimated input tokens, as the API will count them."""
        return REQUEST_OVERHEAD_TOKENS + sum(s.tokens for s in self.segments)

    @property
    def estimated_tokens(self) -> int:
        """What the request weighs against a tokens-per-minute limit (input + output cap)."""
        return self.prompt_tokens + self.profile.max_output_tokens

    def messages(self) -> list[dict[str, str]]:
        """The ``input`` message array."""
        return [{"role": s.role, "content": s.text} for s in self.segments if s.is_message]

    def block_messages(
        self, breakpoints: tuple[int, ...] = (), upto: int | None = None
    ) -> list[Any]:
        """The ``input`` array as ``input_text`` blocks, breakpoints after the given segments.

        ``breakpoints`` and ``upto`` are segment indices; ``upto`` cuts the prompt after that
        segment (a prewarm). Assistant turns keep plain text: a breakpoint needs ``input_text``.
        """
        out: list[Any] = []
        last = len(self.segments) - 1 if upto is None else upto
        for index, s in enumerate(self.segments[: last + 1]):
            if not s.is_message:
                continue
            if s.role == "assistant":
                out.append({"role": s.role, "content": s.text})
                continue
            block: dict[str, Any] = {"type": "input_text", "text": s.text}
            if index in breakpoints:
                block["prompt_cache_breakpoint"] = dict(_BREAKPOINT)
            out.append({"role": s.role, "content": [block]})
        return out

    def body(
        self, *, prompt_cache_key: str | None = None, cache: CacheFields | None = None
    ) -> dict[str, Any]:
        """The ``POST /v1/responses`` parameters; fields a profile leaves out stay out.

        ``cache`` shapes the prompt-cache fields for the model's regime (see ``CacheFields``).
        """
        p = self.profile
        cache = cache or CacheFields()
        if cache.explicit:
            upto = max(cache.breakpoints) if cache.prewarm and cache.breakpoints else None
            messages: list[Any] = self.block_messages(cache.breakpoints, upto)
        else:
            messages = self.messages()
        body: dict[str, Any] = {
            "model": p.model,
            "input": messages,
            "max_output_tokens": p.max_output_tokens,
            "store": p.store,
        }
        if not p.is_reasoning:
            if p.temperature is not None:
                body["temperature"] = p.temperature
            if p.top_p is not None:
                body["top_p"] = p.top_p
        else:
            reasoning: dict[str, str] = {}
            if p.reasoning_effort is not None:
                reasoning["effort"] = p.reasoning_effort
            if p.reasoning_summary is not None:
                reasoning["summary"] = p.reasoning_summary
            if reasoning:
                body["reasoning"] = reasoning
        if p.output_schema is not None and not p.schema_in_prompt:
            body["text"] = {
                "format": {
                    "type": "json_schema",
                    "name": p.schema_name,
                    "schema": dict(p.output_schema),
                    "strict": True,
                }
            }
        if p.service_tier is not None:
            body["service_tier"] = p.service_tier
        if self.previous_response_id is not None:
            body["previous_response_id"] = self.previous_response_id
        if prompt_cache_key is not None:
            body["prompt_cache_key"] = prompt_cache_key
        if cache.retention is not None:
            body["prompt_cache_retention"] = cache.retention
        if cache.explicit:
            options: dict[str, Any] = {"mode": "explicit"}
            if cache.ttl is not None:
                options["ttl"] = cache.ttl
            if cache.prewarm:
                options["prewarm"] = True
            body["prompt_cache_options"] = options
        if self.metadata:
            body["metadata"] = dict(self.metadata)
        return body


# Request fields that change neither the prompt nor the output: left out of the response
# cache key so a re-run or a duplicate request with another job id still hits.
_NOT_IN_CACHE_KEY = (
    "metadata",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
    "stream",
    "store",
    "service_tier",
)
# The metadata entry that counts a job's regenerations (`contentgen jobs regenerate`). Unlike
# the rest of the metadata it is part of the response-cache key, so a regenerated job is
# answered by the API again; a request without it keeps the key it always had.
REGENERATION_METADATA = "contentgen_regeneration"
# v2: the key of a request is stored under its scope (endpoint and account, see
# ``pipeline.client.cache.CacheScope``); v1 entries, stored without one, read as misses.
CACHE_KEY_VERSION = "v2"


def _plain_content(content: Any) -> Any:
    """One ``input_text`` block (with or without a breakpoint) is the same prompt as its text."""
    if isinstance(content, list) and len(content) == 1:
        block = content[0]
        if isinstance(block, dict) and block.get("type") == "input_text":
            return block.get("text")
    return content


def canonical_request(body: dict[str, Any]) -> str:
    """The canonical JSON of a request for the response cache (sorted keys, compact).

    Prompt-cache fields are left out, and a message sent as one ``input_text`` block counts as
    its text, so where the planner put breakpoints never changes the key: a re-run of one job
    still finds the answer its first run paid for. A regenerated job's regeneration count
    (``REGENERATION_METADATA``) is kept: regenerating asks for a new answer.
    """
    kept = {k: v for k, v in body.items() if k not in _NOT_IN_CACHE_KEY}
    regeneration = (body.get("metadata") or {}).get(REGENERATION_METADATA)
    if regeneration:
        kept[REGENERATION_METADATA] = regeneration
    messages = kept.get("input")
    if isinstance(messages, list):
        kept["input"] = [
            {**m, "content": _plain_content(m.get("content"))} if isinstance(m, dict) else m
            for m in messages
        ]
    return json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_metadata(job: ArticleJob, **extra: str) -> dict[str, str]:
    """The request metadata of ``job``: its id and task, its regeneration count when non-zero."""
    metadata = {"job_id": str(job.id), "task": job.task, **extra}
    if job.regenerations:
        metadata[REGENERATION_METADATA] = str(job.regenerations)
    return metadata


def response_cache_key(body: dict[str, Any]) -> str:
    """Version tag plus the hash of the canonical request; a new canonical form means a new tag.

    This is the request's part of the key: the response cache stores it under its scope
    (``CacheScope.prefix``), so the same request sent to another server or as another account
    is another entry.
    """
    return f"{CACHE_KEY_VERSION}:{hashlib.sha256(canonical_request(body).encode()).hexdigest()}"
