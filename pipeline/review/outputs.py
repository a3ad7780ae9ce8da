"""Outputs as an editor sees them: found by reference, listed by state, with their history.

An output is named by its generation id (``1234``) or by ``ARTICLE:TASK`` (the article's
external id and the task: its current output). Rows come from the views ``v_outputs`` and
``v_current_outputs`` (migration 0007), so the CLI, a desk page and any SQL client agree on
every state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from pipeline.db import CURRENT_OUTPUTS, OUTPUTS, Generation, Review
from pipeline.errors import InputError

# What `contentgen review list` shows without --state: what waits for an editor.
TO_REVIEW = ("flagged", "pending")


@dataclass(frozen=True)
class Output:
    """One generation with what an editor needs: text, provenance, checks, state, decision."""

    generation_id: int
    job_id: int
    article_id: int
    source_id: str
    title: str
    url: str | None
    task: str
    version: str
    profile_version: str | None
    model: str
    service_tier: str | None
    status: str
    output_text: str | None
    checks: list[dict[str, Any]] | None
    review_state: str | None
    decision: str | None
    editor: str | None
    note: str | None
    edited_text: str | None
    decided_at: dt.datetime | None
    final_text: str | None
    digital_source_type: str
    superseded: bool
    created_at: dt.datetime
    batch_label: str | None
    job_state: str

    @property
    def ref(self) -> str:
        """``ARTICLE:TASK``, the name people use."""
        return f"{self.source_id}:{self.task}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (times as ISO 8601, UTC)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("decided_at", "created_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["superseded"] = bool(self.superseded)
        return data


_NAMES = [f.name for f in fields(Output)]


def _select(view: Any) -> Select[Any]:
    return select(*(view.c[name] for name in _NAMES))


@dataclass(frozen=True)
class ReviewFilter:
    """Which current outputs to list (every filter given must match)."""

    states: tuple[str, ...] = TO_REVIEW
    tasks: tuple[str, ...] = ()
    articles: tuple[str, ...] = ()
    batch_label: str | None = None
    limit: int | None = None


def list_outputs(session: Session, flt: ReviewFilter) -> list[Output]:
    """Current completed outputs in ``flt.states``, by article and task."""
    c = CURRENT_OUTPUTS.c
    query = _select(CURRENT_OUTPUTS).where(c.status == "completed")
    if flt.states:
        query = query.where(c.review_state.in_(flt.states))
    if flt.tasks:
        query = query.where(c.task.in_(flt.tasks))
    if flt.articles:
        query = query.where(c.source_id.in_(flt.articles))
    if flt.batch_label is not None:
        query = query.where(c.batch_label == flt.batch_label)
    query = query.order_by(c.article_id, c.task).limit(flt.limit)
    return [Output(*row) for row in session.execute(query)]


def find(session: Session, ref: str) -> Output:
    """The output ``ref`` names (see the module docstring); ``InputError`` when there is none."""
    text = ref.strip()
    if text.isdigit():
        row = session.execute(_select(OUTPUTS).where(OUTPUTS.c.generation_id == int(text))).first()
        if row is None:
            raise InputError(f"no output with generation id {text}")
        return Output(*row)
    article, sep, task = text.rpartition(":")
    if not sep or not article or not task:
        raise InputError(f"{ref!r}: name an output by its generation id or as ARTICLE:TASK")
    c = CURRENT_OUTPUTS.c
    row = session.execute(
        _select(CURRENT_OUTPUTS).where(c.source_id == article, c.task == task)
    ).first()
    if row is None:
        raise InputError(f"no current output for article {article!r} and task {task!r}")
    return Output(*row)


def current_generation(session: Session, job_id: int) -> int | None:
    """The generation id of the job's current output (None: it has none)."""
    c = CURRENT_OUTPUTS.c
    return session.scalar(select(c.generation_id).where(c.job_id == job_id))


@dataclass(frozen=True)
class Decision:
    """One row of an output's review history."""

    id: int
    editor: str
    decision: str
    note: str | None
    edited_text: str | None
    regenerate: bool
    created_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["created_at"] = self.created_at.isoformat()
        return data


def history(session: Session, generation_id: int) -> list[Decision]:
    """Every decision on a generation, oldest first."""
    rows = session.execute(
        select(
            Review.id,
            Review.editor,
            Review.decision,
            Review.note,
            Review.edited_text,
            Review.regenerate,
            Review.created_at,
        )
        .where(Review.generation_id == generation_id)
        .order_by(Review.id)
    )
    return [Decision(*row) for row in rows]


@dataclass(frozen=True)
class Grade:
    """A grader's verdict on an output: its criteria and whether it flagged the output."""

    generation_id: int
    task: str
    flagged: bool
    checks: list[dict[str, Any]]
    created_at: dt.datetime


def grades(session: Session, generation_id: int) -> list[Grade]:
    """The completed grades of a generation, oldest first (the newest one counts)."""
    rows = session.execute(
        select(
            Generation.id,
            Generation.task,
            Generation.flagged,
            Generation.checks,
            Generation.created_at,
        )
        .where(Generation.graded_generation_id == generation_id, Generation.status == "completed")
        .order_by(Generation.id)
    )
    return [Grade(gid, task, bool(flag), checks or [], at) for gid, task, flag, checks, at in rows]


def refs(values: Sequence[str]) -> list[str]:
    """Output references from the command line, in order, once each."""
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))
