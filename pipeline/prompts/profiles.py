"""Task profiles: the request settings for each task, read from ``config/profiles.toml``.

A profile names its model, instructions (inline or a file under config/), sampling (factual vs
creative), reasoning effort for reasoning models, an optional JSON-schema output, the token
budgets, and the shared contexts it includes (a style guide, a per-section brief...). Loading
reads every referenced file once, so rendering never touches the disk.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.checks import CheckSet, ChecksSpec, GraderSpec, banned_phrases
from pipeline.errors import ConfigError, TemplateError
from pipeline.prompts.configfiles import load_context, load_schema, read_text
from pipeline.prompts.contexts import Context, ContextSpec
from pipeline.tomlfile import load_model

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
Layout = Literal["auto", "instructions_first", "article_first"]
Part = Literal["instructions", "contexts", "article", "job"]
# How long the provider keeps a prompt prefix: "auto" asks for the longest the model accepts
# (24h on grid models that allow it, 30m on breakpoint models), "default" sends no field.
PromptCacheLifetime = Literal["auto", "default", "in_memory", "24h", "30m"]
# The prompt_cache_key of GPT-5.6+ requests, where it only labels usage: per run, per batch
# label, or none. (Before GPT-5.6 the key routes requests and the planner chooses it.)
AccountingKey = Literal["run", "batch", "none"]
# Who signs an output off: an editor (it starts `pending`), or nobody (`auto`).
ReviewMode = Literal["editor", "none"]
# `summary@3f2a9c1`: a task and the first characters of its profile version.
SHORT_VERSION = 7
# How a chained task asks for JSON in words (``Profile.schema_in_prompt``).
SCHEMA_IN_PROMPT = "Answer with one JSON object, and nothing else, that matches this JSON Schema:"
# Values that differ per job: they may only appear in the per-job part.
JOB_FIELDS = ("title", "section", "url", "published_at", "source_id", "task")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    """o-series and the gpt-5 family reject temperature/top_p and take reasoning effort."""
    return model.startswith(_REASONING_PREFIXES)


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot be rendered with ``str.format`` and the JOB_FIELDS, or None.

    Checked when profiles.toml is loaded: rendering happens mid-run, after other requests of
    the run were paid for, so a lone brace must never get that far.
    """
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"{exc} (write {{{{ or }}}} for a literal brace)"
    roots = {re.split(r"[.\[]", name, maxsplit=1)[0] for name in names}
    unknown = roots - set(JOB_FIELDS)
    if unknown:
        return f"uses unknown field(s) {sorted(unknown)}; known: {list(JOB_FIELDS)}"
    try:
        template.format(**dict.fromkeys(JOB_FIELDS, "x"))
    except (ValueError, LookupError, AttributeError, TypeError) as exc:
        return f"cannot be formatted: {exc}"
    return None


class CachePolicy(BaseModel):
    """Whether responses of this profile go to the local response cache, and for how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    ttl_s: int | None = Field(default=30 * 24 * 3600, ge=1)


class ProfileSpec(BaseModel):
    """One profile as written in profiles.toml (paths relative to the config folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1)
    instructions: str | None = None
    instructions_file: Path | None = None
    contexts: list[str] = Field(default_factory=list)
    job_template: str = Field(
        default="Task: {task}. Article title: {title}.",
        description="The per-job part, rendered last; may use " + ", ".join(JOB_FIELDS),
    )
    parts: list[Part] | None = Field(
        default=None, description="Explicit order of the prompt parts; default from `layout`."
    )
    layout: Layout = "auto"
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_output_tokens: int = Field(default=512, ge=16)
    reasoning_effort: ReasoningEffort | None = None
    reasoning_summary: Literal["auto", "concise", "detailed"] | None = None
    output_schema_file: Path | None = None
    schema_name: str = Field(default="output", pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    article_token_budget: int = Field(default=8000, ge=64)
    input_token_budget: int = Field(default=100_000, ge=256)
    stream: bool = False
    store: bool = False
    service_tier: Literal["auto", "default", "flex"] | None = None
    cache: CachePolicy = Field(default_factory=CachePolicy)
    prompt_cache_lifetime: PromptCacheLifetime = Field(
        default="auto", description="Prompt-cache lifetime asked of the provider."
    )
    accounting_key: AccountingKey = Field(
        default="run", description="prompt_cache_key on GPT-5.6+ models (accounting only)."
    )
    follows: str | None = Field(default=None, description="Task whose output this one continues.")
    chain_via: Literal["history", "previous_response_id"] = "history"
    checks: ChecksSpec | None = Field(default=None, description="Checks of every output.")
    review: ReviewMode = Field(default="editor", description="'none': outputs need no sign-off.")
    enabled: bool = Field(
        default=True, description="false: enqueued only when named (`--tasks`), e.g. a grader."
    )
    grader: GraderSpec | None = Field(
        default=None, description="This task grades the task it follows."
    )

    @field_validator("job_template")
    @classmethod
    def _formattable(cls, template: str) -> str:
        problem = template_problem(template)
        if problem is not None:
            raise ValueError(problem)
        return template

    @model_validator(mode="after")
    def _consistent(self) -> ProfileSpec:
        if (self.instructions is None) == (self.instructions_file is None):
            raise ValueError("set exactly one of 'instructions' or 'instructions_file'")
        if is_reasoning_model(self.model):
            if self.temperature is not None or self.top_p is not None:
                raise ValueError(
                    f"{self.model} is a reasoning model: it rejects temperature/top_p; "
                    "use reasoning_effort"
                )
        elif self.reasoning_effort is not None or self.reasoning_summary is not None:
            raise ValueError(f"{self.model} is not a reasoning model: remove reasoning_*")
        if self.chain_via == "previous_response_id" and not self.store:
            raise ValueError("chain_via = 'previous_response_id' needs store = true")
        if self.grader is not None:
            if self.follows is None:
                raise ValueError("a grader follows the task it grades: set 'follows'")
            if self.output_schema_file is None:
                raise ValueError("a grader answers in JSON: set 'output_schema_file'")
        return self


class ProfilesFile(BaseModel):
    """The content of ``config/profiles.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contexts: dict[str, ContextSpec] = Field(default_factory=dict)
    profiles: dict[str, ProfileSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Profile:
    """A loaded profile: everything needed to render and send a task's requests."""

    task: str
    model: str
    instructions: str
    contexts: tuple[Context, ...]
    job_template: str
    parts: tuple[Part, ...] | None
    layout: Layout
    temperature: float | None
    top_p: float | None
    max_output_tokens: int
    reasoning_effort: ReasoningEffort | None
    reasoning_summary: str | None
    output_schema: Mapping[str, Any] | None
    schema_name: str
    article_token_budget: int
    input_token_budget: int
    stream: bool
    store: bool
    service_tier: str | None
    cache: CachePolicy
    follows: str | None
    chain_via: str
    prompt_cache_lifetime: PromptCacheLifetime = "auto"
    accounting_key: AccountingKey = "run"
    checks: CheckSet | None = None
    review: ReviewMode = "editor"
    enabled: bool = True
    grader: GraderSpec | None = None

    @property
    def is_reasoning(self) -> bool:
        """True for o-series and gpt-5 family models."""
        return is_reasoning_model(self.model)

    @property
    def schema_in_prompt(self) -> bool:
        """A chained task's output schema goes in its instructions, not ``text.format``.

        The API puts a structured-output schema before everything else in the prompt, so a
        follower sending one would share no prefix with its parent and read nothing of the
        parent's prompt (the article) from the cache. It asks for the JSON in words instead,
        and its answer is validated against the schema all the same.
        """
        return self.output_schema is not None and self.follows is not None

    @property
    def instructions_text(self) -> str:
        """The instructions as sent: with the JSON Schema spelled out when ``schema_in_prompt``."""
        if not self.schema_in_prompt:
            return self.instructions
        schema = json.dumps(self.output_schema, sort_keys=True, ensure_ascii=False)
        return f"{self.instructions.rstrip()}\n\n{SCHEMA_IN_PROMPT}\n{schema}"

    def definition(self) -> dict[str, Any]:
        """Everything that shapes this task's requests and judges its outputs: the texts
        (instructions, contexts, job template), the model, sampling or reasoning settings, the
        budgets, the output schema, the chain and the checks. The profile version hashes it.

        Left out, because they change how a request travels or is billed, never what it asks:
        streaming, ``store``, the service tier (so realtime, flex and batch share a version),
        the response and prompt cache settings; and ``review`` and ``enabled``.
        """
        return {
            "task": self.task,
            "model": self.model,
            "instructions": self.instructions,
            "contexts": [
                {
                    "name": c.name,
                    "text": c.text,
                    "by_section": dict(sorted(c.by_section.items())),
                    "fallback": c.fallback,
                }
                for c in self.contexts
            ],
            "job_template": self.job_template,
            "parts": list(self.parts) if self.parts is not None else None,
            "layout": self.layout,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_output_tokens": self.max_output_tokens,
            "reasoning_effort": self.reasoning_effort,
            "reasoning_summary": self.reasoning_summary,
            "output_schema": dict(self.output_schema) if self.output_schema is not None else None,
            "schema_name": self.schema_name,
            "article_token_budget": self.article_token_budget,
            "input_token_budget": self.input_token_budget,
            "follows": self.follows,
            "chain_via": self.chain_via,
            "checks": self.checks.definition() if self.checks is not None else None,
            "grader": self.grader.model_dump() if self.grader is not None else None,
        }

    @cached_property
    def version(self) -> str:
        """The profile version: SHA-256 of ``definition()`` as canonical JSON (64 hex)."""
        canonical = json.dumps(
            self.definition(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def version_label(self) -> str:
        """``summary@3f2a9c1``: how people see the version."""
        return version_label(self.task, self.version)


def version_label(task: str, version: str | None) -> str:
    """``task@<first 7 characters of version>`` (``task@?`` for outputs stored before versions)."""
    return f"{task}@{version[:SHORT_VERSION] if version else '?'}"


def check_parts(task: str, parts: tuple[Part, ...], instructions: str) -> None:
    """Refuse layouts that put per-job values before shared content (they defeat caching)."""
    used = set(_PLACEHOLDER.findall(instructions)) & set(JOB_FIELDS)
    if used:
        raise TemplateError(
            f"profile {task!r}: instructions use per-job value(s) {sorted(used)}; "
            "move them to job_template so the shared prefix stays identical"
        )
    if "job" in parts and parts[-1] != "job":
        raise TemplateError(f"profile {task!r}: the per-job part must come last, got {list(parts)}")
    if (
        "article" in parts
        and "contexts" in parts
        and parts.index("article") < parts.index("contexts")
    ):
        raise TemplateError(
            f"profile {task!r}: the article comes before the shared contexts in {list(parts)}"
        )
    if len(set(parts)) != len(parts) or "article" not in parts:
        raise TemplateError(f"profile {task!r}: parts must name 'article' once each: {list(parts)}")


def _load_profile(
    config_dir: Path, file: Path, task: str, spec: ProfileSpec, contexts: Mapping[str, Context]
) -> Profile:
    where = f"{file}: profiles.{task}"
    missing = [name for name in spec.contexts if name not in contexts]
    if missing:
        raise ConfigError(f"{where}.contexts: unknown context(s) {missing}")
    instructions = spec.instructions
    if spec.instructions_file is not None:
        instructions = read_text(config_dir / spec.instructions_file, where)
    assert instructions is not None
    schema: dict[str, Any] | None = None
    if spec.output_schema_file is not None:
        schema = load_schema(config_dir / spec.output_schema_file, f"{where}.output_schema_file")
    parts = tuple(spec.parts) if spec.parts is not None else None
    checks = None
    if spec.checks is not None:
        phrases = None
        if spec.checks.banned_file is not None:
            banned = read_text(config_dir / spec.checks.banned_file, f"{where}.checks.banned_file")
            phrases = banned_phrases(banned)
        checks = CheckSet.from_spec(spec.checks, phrases)
    if spec.grader is not None:
        assert schema is not None  # ProfileSpec requires it
        missing_criteria = [
            c for c in spec.grader.criteria if c not in schema.get("properties", {})
        ]
        if missing_criteria:
            raise ConfigError(
                f"{where}.grader.criteria: {missing_criteria} are not properties of "
                f"{spec.output_schema_file}"
            )
    try:
        for candidate in [parts] if parts else [DEFAULT_PARTS[lay] for lay in LAYOUTS]:
            check_parts(task, candidate, instructions)
    except TemplateError as exc:
        raise TemplateError(f"{file}: {exc}") from exc
    return Profile(
        task=task,
        model=spec.model,
        instructions=instructions,
        contexts=tuple(contexts[name] for name in spec.contexts),
        job_template=spec.job_template,
        parts=parts,
        layout=spec.layout,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_output_tokens=spec.max_output_tokens,
        reasoning_effort=spec.reasoning_effort,
        reasoning_summary=spec.reasoning_summary,
        output_schema=schema,
        schema_name=spec.schema_name,
        article_token_budget=spec.article_token_budget,
        input_token_budget=spec.input_token_budget,
        stream=spec.stream,
        store=spec.store,
        service_tier=spec.service_tier,
        cache=spec.cache,
        follows=spec.follows,
        chain_via=spec.chain_via,
        prompt_cache_lifetime=spec.prompt_cache_lifetime,
        accounting_key=spec.accounting_key,
        checks=checks,
        review=spec.review,
        enabled=spec.enabled,
        grader=spec.grader,
    )


LAYOUTS: tuple[Layout, ...] = ("instructions_first", "article_first")
DEFAULT_PARTS: dict[str, tuple[Part, ...]] = {
    "instructions_first": ("instructions", "contexts", "article", "job"),
    "article_first": ("contexts", "article", "instructions", "job"),
}


def load_profiles(config_dir: Path, filename: str = "profiles.toml") -> dict[str, Profile]:
    """Read and validate ``profiles.toml`` and every file it names; keyed by task."""
    file = config_dir / filename
    spec = load_model(file, ProfilesFile)
    contexts = {
        name: load_context(config_dir, file, name, ctx) for name, ctx in spec.contexts.items()
    }
    profiles = {
        task: _load_profile(config_dir, file, task, p, contexts)
        for task, p in spec.profiles.items()
    }
    for task, profile in profiles.items():
        if profile.follows is not None and profile.follows not in profiles:
            raise ConfigError(f"{file}: profiles.{task}.follows: unknown task {profile.follows!r}")
        seen = [task]
        parent = profile.follows
        while parent is not None:
            if parent in seen:
                chain = " -> ".join([*seen, parent])
                raise ConfigError(f"{file}: profiles.{task}.follows: a cycle ({chain})")
            seen.append(parent)
            parent = profiles[parent].follows
    return profiles
