"""What the desk reads: the queue (flagged first, then pending, by batch, section, task and
run, with counts) and one article with its current outputs, their checks, grades and cost.

Rows come from ``v_current_outputs`` (migration 0007), as ``contentgen review list`` reads
them, joined with the article for its section and text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from pipeline.db import CURRENT_OUTPUTS, OUTPUTS, SCALE, Article
from pipeline.errors import InputError
from pipeline.review import TO_REVIEW, Grade, Output, grades

_NAMES = [f.name for f in fields(Output)]
_C = CURRENT_OUTPUTS.c
# Flagged first, then pending, then whatever else was asked for.
_RANK = case((_C.review_state == "flagged", 0), (_C.review_state == "pending", 1), else_=2)
PAGE = 200


@dataclass(frozen=True)
class QueueFilter:
    """Which current outputs the queue shows (every filter given must match)."""

    states: tuple[str, ...] = TO_REVIEW
    batch: str | None = None
    section: str | None = None
    task: str | None = None
    runs: tuple[int, ...] = ()

    @classmethod
    def parse(cls, params: Any) -> QueueFilter:
        """From a page's query string (``batch``, ``section``, ``task``, ``run``: ids with
        commas, ``state``: flagged, pending or waiting)."""

        def text(key: str) -> str | None:
            value = str(params.get(key) or "").strip()
            return value[:200] or None

        runs: list[int] = []
        for part in (text("run") or "").split(","):
            if part.strip():
                if not part.strip().isdigit():
                    raise InputError(f"run: not a run id: {part.strip()[:40]!r}")
                runs.append(int(part))
        state = text("state")
        states = (state,) if state in TO_REVIEW else TO_REVIEW
        return cls(states, text("batch"), text("section"), text("task"), tuple(runs))

    def query(self) -> str:
        """The query string that names this filter ('' for none)."""
        pairs = {
            "batch": self.batch,
            "section": self.section,
            "task": self.task,
            "run": ",".join(str(r) for r in self.runs) or None,
            "state": self.states[0] if len(self.states) == 1 else None,
        }
        return urlencode({k: v for k, v in pairs.items() if v})


def _filtered(query: Select[Any], flt: QueueFilter, *, states: bool = True) -> Select[Any]:
    query = query.join(Article, Article.id == _C.article_id).where(_C.status == "completed")
    if states:
        query = query.where(_C.review_state.in_(flt.states))
    if flt.batch:
        query = query.where(_C.batch_label == flt.batch)
    if flt.section:
        query = query.where(Article.section == flt.section)
    if flt.task:
        query = query.where(_C.task == flt.task)
    if flt.runs:
        query = query.where(_C.run_id.in_(flt.runs))
    return query


@dataclass(frozen=True)
class QueueItem:
    """One output waiting in the queue, with its article's section."""

    output: Output
    section: str | None
    cost_usd: Decimal


def _cost(e10: int | None) -> Decimal:
    return Decimal(int(e10 or 0)).scaleb(-SCALE)


def queue_items(session: Session, flt: QueueFilter, limit: int = PAGE) -> list[QueueItem]:
    """Waiting outputs: flagged first, then pending, by article and task."""
    query = select(*(_C[n] for n in _NAMES), Article.section, _C.cost_usd_e10)
    query = _filtered(query, flt).order_by(_RANK, _C.article_id, _C.task).limit(limit)
    return [
        QueueItem(Output(*row[: len(_NAMES)]), row[-2], _cost(row[-1]))
        for row in session.execute(query)
    ]


@dataclass(frozen=True)
class QueueCounts:
    """How many current outputs wait, by state and by task, and on how many articles."""

    by_state: dict[str, int]
    by_task: dict[str, int]
    articles: int

    @property
    def waiting(self) -> int:
        """Flagged and pending together."""
        return sum(self.by_state.get(s, 0) for s in TO_REVIEW)

    @property
    def flagged(self) -> int:
        """Flagged by a check or the grader."""
        return self.by_state.get("flagged", 0)

    def line(self) -> str:
        """``412 to review, 23 flagged``."""
        return f"{self.waiting:,} to review, {self.flagged:,} flagged"


def queue_counts(session: Session, flt: QueueFilter) -> QueueCounts:
    """Counts for the queue's header (states counted with every other filter applied)."""
    by_state = {
        str(state): int(n)
        for state, n in session.execute(
            _filtered(select(_C.review_state, func.count()), flt, states=False).group_by(
                _C.review_state
            )
        )
    }
    by_task = {
        str(task): int(n)
        for task, n in session.execute(
            _filtered(select(_C.task, func.count()), flt).group_by(_C.task).order_by(_C.task)
        )
    }
    articles = session.scalar(_filtered(select(func.count(func.distinct(_C.article_id))), flt))
    return QueueCounts(by_state, by_task, int(articles or 0))


def queue_articles(session: Session, flt: QueueFilter) -> list[int]:
    """Article ids in queue order (an article's place is its most urgent waiting output)."""
    rank = func.min(_RANK)
    query = _filtered(select(_C.article_id, rank), flt).group_by(_C.article_id)
    return [aid for aid, _ in session.execute(query.order_by(rank, _C.article_id))]


def neighbours(order: list[int], current: int) -> tuple[int | None, int | None]:
    """The articles before and after ``current`` in queue order; once ``current`` has left
    the queue, the next one is the queue's first."""
    if current not in order:
        return None, (order[0] if order else None)
    at = order.index(current)
    before = order[at - 1] if at > 0 else None
    after = order[at + 1] if at + 1 < len(order) else None
    return before, after


def filter_choices(session: Session) -> dict[str, list[str]]:
    """The batch labels, sections and tasks there are current outputs for (filter menus)."""
    base = select(_C.batch_label, Article.section, _C.task).join(
        Article, Article.id == _C.article_id
    )
    rows = session.execute(base.where(_C.status == "completed").distinct()).all()

    def values(i: int) -> list[str]:
        return sorted({str(r[i]) for r in rows if r[i]})

    return {"batch": values(0), "section": values(1), "task": values(2)}


@dataclass(frozen=True)
class Shown:
    """One output on the article page: the output, its cost and grades."""

    output: Output
    cost_usd: Decimal
    grades: list[Grade]

    @property
    def waiting(self) -> bool:
        """Still waits for an editor."""
        return self.output.review_state in TO_REVIEW


@dataclass(frozen=True)
class ArticlePage:
    """An article with its current outputs, in task order."""

    article: Article
    outputs: list[Shown]

    @property
    def waiting(self) -> list[Shown]:
        """The outputs still waiting for an editor."""
        return [s for s in self.outputs if s.waiting]


def article_page(session: Session, article_id: int) -> ArticlePage:
    """The article and its current completed outputs; ``InputError`` when there is none."""
    article = session.get(Article, article_id)
    if article is None:
        raise InputError(f"no article {article_id}")
    query = (
        select(*(_C[n] for n in _NAMES), _C.cost_usd_e10)
        .where(_C.article_id == article_id, _C.status == "completed")
        .order_by(_C.task)
    )
    shown = []
    for row in session.execute(query):
        output = Output(*row[: len(_NAMES)])
        shown.append(Shown(output, _cost(row[-1]), grades(session, output.generation_id)))
    return ArticlePage(article, shown)


def run_counts(session: Session, run_ids: Iterable[int]) -> QueueCounts:
    """What the runs ``run_ids`` left for editors (the nightly flow's message)."""
    runs = tuple(run_ids)
    if not runs:
        return QueueCounts({}, {}, 0)
    return queue_counts(session, QueueFilter(runs=runs))


def job_outputs(session: Session, generation_id: int) -> list[Output]:
    """Every output of the job ``generation_id`` belongs to, oldest first (its history across
    versions and corrections)."""
    v = OUTPUTS.c
    job_id = session.scalar(select(v.job_id).where(v.generation_id == generation_id))
    if job_id is None:
        raise InputError(f"no output with generation id {generation_id}")
    query = select(*(v[n] for n in _NAMES)).where(v.job_id == job_id).order_by(v.generation_id)
    return [Output(*row) for row in session.execute(query)]
