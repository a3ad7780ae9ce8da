"""Task profiles: the request settings for each task, read from ``config/profiles.toml``.

A profile names its model, instructions (inline or a file under config/), sampling (factual vs
creative), reasoning effort for reasoning models, an optional JSON-schema output, the token
budgets, and the shared contexts it includes (a style guide, a per-section brief...). Loading
reads every referenced file once, so rendering never touches the disk.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.errors import ConfigError, TemplateError
from pipeline.tomlfile import decode_utf8, load_model

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]
Layout = Literal["auto", "instructions_first", "article_first"]
Part = Literal["instructions", "contexts", "article", "job"]
# How long the provider keeps a prompt prefix: "auto" asks for the longest the model accepts
# (24h on grid models that allow it, 30m on breakpoint models), "default" sends no field.
PromptCacheLifetime = Literal["auto", "default", "in_memory", "24h", "30m"]
# The prompt_cache_key of GPT-5.6+ requests, where it only labels usage: per run, per batch
# label, or none. (Before GPT-5.6 the key routes requests and the planner chooses it.)
AccountingKey = Literal["run", "batch", "none"]
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


class ContextSpec(BaseModel):
    """A shared document: one file for everyone, or one file per article section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    by_section: str | None = Field(
        default=None, description="Path pattern with {section}, e.g. contexts/sections/{section}.md"
    )
    fallback: Path | None = Field(default=None, description="Used when a section has no file.")

    @model_validator(mode="after")
    def _one_source(self) -> ContextSpec:
        if (self.file is None) == (self.by_section is None):
            raise ValueError("set exactly one of 'file' or 'by_section'")
        if self.by_section is not None and "{section}" not in self.by_section:
            raise ValueError("'by_section' must contain {section}")
        return self


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
        return self


class ProfilesFile(BaseModel):
    """The content of ``config/profiles.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contexts: dict[str, ContextSpec] = Field(default_factory=dict)
    profiles: dict[str, ProfileSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Context:
    """A loaded shared document: the same text for all, or a text per section."""

    name: str
    text: str | None = None
    by_section: Mapping[str, str] = field(default_factory=dict)
    fallback: str | None = None

    def for_section(self, section: str | None) -> str | None:
        """The text an article of ``section`` gets (None when nothing applies)."""
        if self.text is not None:
            return self.text
        if section is not None and section in self.by_section:
            return self.by_section[section]
        return self.fallback


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

    @property
    def is_reasoning(self) -> bool:
        """True for o-series and gpt-5 family models."""
        return is_reasoning_model(self.model)


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


def _read_text(path: Path, where: str) -> str:
    """A file named by profiles.toml (at ``where``); errors name both."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{where}: file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return decode_utf8(path, data)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (named by {where})") from exc.__cause__


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _load_schema(path: Path, where: str) -> dict[str, Any]:
    """An output schema file: a JSON object that is a valid JSON Schema."""
    text = _read_text(path, where)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: line {exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"{path}: output schema must be a JSON object (got {_json_type(schema)})")
    # An invalid schema would only show when the first paid response is checked against it.
    # (jsonschema is imported here: a config without schemas does not pay for it at start-up.)
    from jsonschema import exceptions as schema_exceptions
    from jsonschema import validators

    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_exceptions.SchemaError as exc:
        raise ConfigError(
            f"{path}: output schema is invalid at {exc.json_path}: {exc.message}"
        ) from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply") from exc
    return schema


def _load_context(config_dir: Path, file: Path, name: str, spec: ContextSpec) -> Context:
    where = f"{file}: contexts.{name}"
    if spec.file is not None:
        return Context(name, text=_read_text(config_dir / spec.file, where))
    assert spec.by_section is not None
    pattern = Path(spec.by_section)
    folder = config_dir / pattern.parent
    prefix, _, suffix = pattern.name.partition("{section}")
    texts = {
        p.name[len(prefix) : len(p.name) - len(suffix)]: _read_text(p, where)
        for p in sorted(folder.glob(f"{prefix}*{suffix}"))
    }
    fallback = None if spec.fallback is None else _read_text(config_dir / spec.fallback, where)
    return Context(name, by_section=texts, fallback=fallback)


def _load_profile(
    config_dir: Path, file: Path, task: str, spec: ProfileSpec, contexts: Mapping[str, Context]
) -> Profile:
    where = f"{file}: profiles.{task}"
    missing = [name for name in spec.contexts if name not in contexts]
    if missing:
        raise ConfigError(f"{where}.contexts: unknown context(s) {missing}")
    instructions = spec.instructions
    if spec.instructions_file is not None:
        instructions = _read_text(config_dir / spec.instructions_file, where)
    assert instructions is not None
    schema: dict[str, Any] | None = None
    if spec.output_schema_file is not None:
        schema = _load_schema(config_dir / spec.output_schema_file, f"{where}.output_schema_file")
    parts = tuple(spec.parts) if spec.parts is not None else None
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
        name: _load_context(config_dir, file, name, ctx) for name, ctx in spec.contexts.items()
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
