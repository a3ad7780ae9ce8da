"""Helpers for the task-chain tests: a chained config, an HTTP event log, per-article reads.

The chain tests run the engine for real (``tests.engine_support``: migrated database, the
simulator over HTTP, the real SDK); these helpers add what chains need to be observed: a
config where ``headline`` follows ``summary`` (and optionally ``social`` follows ``headline``),
the order in which requests left and responses came back, and generations grouped by article.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from sqlalchemy import Engine, select

from pipeline.db import queue
from pipeline.db.engine import session_factory
from pipeline.db.models import Generation, Job
from pipeline.intake.reader import ArticleIn
from pipeline.settings import Settings
from tests.engine_support import CONFIG_DIR

# The repository's summary and headline profiles, minus their `layout = "auto"` freedom: a
# chain test compares prompts across runs, so the layout must not change with the first chunk.
_PROFILES: dict[str, dict[str, Any]] = {
    "summary": {
        "model": "gpt-4.1-mini",
        "instructions_file": "prompts/summary.md",
        "contexts": ["style_guide", "section_brief"],
        "temperature": 0.3,
        "max_output_tokens": 300,
        "article_token_budget": 6000,
        "layout": "instructions_first",
        "job_template": "Write the summary for: {title}",
    },
    "headline": {
        "model": "gpt-4.1-mini",
        "instructions_file": "prompts/headline.md",
        "contexts": ["style_guide", "section_brief"],
        "temperature": 0.9,
        "top_p": 0.95,
        "max_output_tokens": 60,
        "article_token_budget": 6000,
        "layout": "instructions_first",
        "job_template": "Write the headline for the {section} desk.",
        "follows": "summary",
    },
}
_SOCIAL: dict[str, Any] = {
    "model": "gpt-4.1-mini",
    "instructions": "Write one social media post that teases the article in under 40 words.",
    "contexts": ["style_guide"],
    "temperature": 0.7,
    "max_output_tokens": 80,
    "layout": "instructions_first",
    "job_template": "Write the post for: {title}",
    "follows": "headline",
}
_CONTEXTS = """
[contexts.style_guide]
file = "contexts/style_guide.md"

[contexts.section_brief]
by_section = "contexts/sections/{section}.md"
fallback = "contexts/sections/general.md"
"""


def _toml_value(value: Any) -> str:
    # TOML basic strings, numbers, booleans and arrays of strings are written as in JSON.
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def profiles_toml(profiles: Mapping[str, Mapping[str, Any]]) -> str:
    """``profiles.toml`` text with the shared contexts and ``profiles`` (task -> fields)."""
    lines = [_CONTEXTS]
    for task, fields in profiles.items():
        lines.append(f"\n[profiles.{task}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in fields.items())
    return "\n".join(lines) + "\n"


def chain_config(
    tmp_path: Path,
    *,
    social: bool = False,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    name: str = "chain-config",
) -> Path:
    """A copy of config/ whose profiles are summary -> headline (-> social with ``social``).

    ``overrides`` maps a task to fields that replace or extend its profile (``None`` removes).
    """
    target = tmp_path / name
    shutil.copytree(CONFIG_DIR, target)
    profiles = {task: dict(fields) for task, fields in _PROFILES.items()}
    if social:
        profiles["social"] = dict(_SOCIAL)
    for task, changes in (overrides or {}).items():
        for key, value in changes.items():
            if value is None:
                profiles[task].pop(key, None)
            else:
                profiles[task][key] = value
    (target / "profiles.toml").write_text(profiles_toml(profiles), encoding="utf-8")
    return target


def enqueue_chain(
    engine: Engine,
    articles: Sequence[ArticleIn],
    tasks: Sequence[str] = ("summary", "headline"),
) -> None:
    """Enqueue ``articles`` as the CLI does for a chain: every follower starts ``waiting``, also
    one not named (a corrected article re-queues all of its jobs)."""
    waiting = {task: "waiting" for task in ("headline", "social")}
    with session_factory(engine)() as session:
        queue.enqueue(session, articles, list(tasks), start_states=waiting)


@dataclass(frozen=True)
class Event:
    """One request leaving the SDK or one response reaching it."""

    kind: str  # request | response
    job_id: int
    task: str
    body: dict[str, Any]


class EventLog:
    """An ``AsyncOpenAI`` whose HTTP client records requests and responses, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def _request(self, request: Any) -> None:
        if request.url.path.endswith("/responses"):
            body = json.loads(request.content)
            meta = body.get("metadata") or {}
            self.events.append(Event("request", int(meta["job_id"]), meta["task"], body))

    async def _response(self, response: Any) -> None:
        request = response.request
        if request.url.path.endswith("/responses") and response.status_code == 200:
            body = json.loads(request.content)
            meta = body.get("metadata") or {}
            self.events.append(Event("response", int(meta["job_id"]), meta["task"], body))

    def sdk(self, settings: Settings) -> openai.AsyncOpenAI:
        """The SDK client the production wiring would make, plus the recording hooks."""
        assert settings.openai_api_key is not None
        return openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            max_retries=0,
            timeout=settings.request_timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(
                event_hooks={"request": [self._request], "response": [self._response]}
            ),
        )

    def requests(self, task: str | None = None) -> list[Event]:
        """The requests sent (of ``task``), in order."""
        return [e for e in self.events if e.kind == "request" and task in (None, e.task)]

    def index(self, kind: str, job_id: int) -> int:
        """Position of the first ``kind`` event of ``job_id`` in the log."""
        return next(i for i, e in enumerate(self.events) if e.kind == kind and e.job_id == job_id)


def article_of_jobs(engine: Engine) -> dict[int, int]:
    """Job id -> article id."""
    with session_factory(engine)() as session:
        return {
            job_id: article_id
            for job_id, article_id in session.execute(select(Job.id, Job.article_id))
        }


def by_article(
    engine: Engine, task: str, *, status: str | None = "completed"
) -> dict[int, list[Generation]]:
    """Article id -> the generations of ``task`` (with ``status``; None: any), oldest first."""
    articles = article_of_jobs(engine)
    query = select(Generation).where(Generation.task == task).order_by(Generation.id)
    if status is not None:
        query = query.where(Generation.status == status)
    found: dict[int, list[Generation]] = {}
    with session_factory(engine)() as session:
        for g in session.scalars(query):
            found.setdefault(articles[g.job_id], []).append(g)
    return found


@dataclass(frozen=True)
class JobState:
    """A job's state as the chain tests look at it."""

    article_id: int
    task: str
    state: str
    wait_reason: str | None
    attempts: int


def job_states(engine: Engine) -> dict[tuple[int, str], JobState]:
    """(article id, task) -> the job's state and wait reason."""
    with session_factory(engine)() as session:
        rows = session.execute(
            select(Job.article_id, Job.task, Job.state, Job.wait_reason, Job.attempts)
        )
        return {(row[0], row[1]): JobState(*row) for row in rows}
