"""Where the flows publish their reports: Prefect artifacts (a list of records in tests).

Besides the report tables, a flow run keeps a progress artifact up to date (done of total over
all its chunks, refreshed from inside a chunk every ``PROGRESS_EVERY_S``) and publishes the
results it generated as a table an editor can open (``flows.reporting.results_table``: narrow
enough for a 1280 px window; the full texts are one `contentgen results show` away).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from flows.reporting import ResultRow
from pipeline.db import Article, Generation, Job
from pipeline.run import Progress

PROGRESS_EVERY_S = 5.0


class Publisher(Protocol):
    """Where a flow run's report goes."""

    def table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        """Publish a table."""

    def markdown(self, key: str, text: str, description: str) -> None:
        """Publish a Markdown document."""

    def progress(self, key: str, percent: float, description: str) -> UUID | None:
        """Create the progress artifact ``key``, or move it to ``percent`` (0-100); its id."""


class ArtifactPublisher:
    """Publishes artifacts on the current flow run; keyed, so the UI keeps their versions."""

    def __init__(self) -> None:
        self.progress_ids: dict[str, UUID] = {}

    def table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        """A table artifact."""
        create_table_artifact(table=rows, key=key, description=description)

    def markdown(self, key: str, text: str, description: str) -> None:
        """A Markdown artifact."""
        create_markdown_artifact(markdown=text, key=key, description=description)

    def progress(self, key: str, percent: float, description: str) -> UUID | None:
        """A progress artifact, created once and then updated in place."""
        artifact_id = self.progress_ids.get(key)
        if artifact_id is None:
            created = create_progress_artifact(  # type: ignore[call-arg]
                progress=percent, key=key, description=description, _sync=True
            )
            assert isinstance(created, UUID)
            artifact_id = self.progress_ids[key] = created
        else:
            update_progress(artifact_id, percent, description)
        return artifact_id


def update_progress(artifact_id: UUID, percent: float, description: str) -> None:
    """Move a progress artifact; synchronously even when called inside an event loop (a
    chunk's progress callback runs in the library's loop)."""
    update_progress_artifact(  # type: ignore[call-arg]
        artifact_id=artifact_id, progress=percent, description=description, _sync=True
    )


@dataclass(frozen=True)
class ChunkProgress:
    """What a chunk task needs to move the flow run's progress artifact (plain values)."""

    artifact_id: UUID
    total: int
    finished_before: int


def percent_of(finished: int, total: int) -> float:
    """Finished share of ``total`` in percent, 0-100 (100 when there was nothing to do)."""
    return 100.0 if total <= 0 else min(finished / total, 1.0) * 100.0


def progress_text(finished: int, total: int, failed: int = 0) -> str:
    """The progress artifact's description: ``120 of 1,000 done (3 failed)``."""
    return f"{finished:,} of {total:,} done" + (f" ({failed:,} failed)" if failed else "")


class FlowProgress:
    """The flow run's progress artifact: done of ``total`` over all its chunks."""

    def __init__(self, publish: Publisher, key: str) -> None:
        self.publish = publish
        self.key = key
        self.total = 0
        self.finished = 0
        self.failed = 0
        self.artifact_id: UUID | None = None

    def start(self, total: int) -> None:
        """Create the artifact at 0 % with the number of jobs the run may take."""
        self.total = total
        self.artifact_id = self.publish.progress(self.key, 0.0, progress_text(0, total))

    def chunk(self) -> ChunkProgress | None:
        """What the next chunk task needs to move the artifact while it runs."""
        if self.artifact_id is None:
            return None
        return ChunkProgress(self.artifact_id, self.total, self.finished)

    def chunk_done(self, summary: dict[str, Any]) -> None:
        """Count a finished chunk's results and move the artifact."""
        self.finished += int(summary.get("requests") or 0)
        self.failed += int(summary.get("failed") or 0) + int(summary.get("incomplete") or 0)
        self.total = max(self.total, self.finished)
        self._show(percent_of(self.finished, self.total))

    def end(self) -> None:
        """The run is over: 100 % (a stopped run ends where it stopped, said in the text)."""
        self.total = max(self.total, self.finished)
        self._show(100.0 if self.finished >= self.total else percent_of(self.finished, self.total))

    def _show(self, percent: float) -> None:
        self.publish.progress(
            self.key, percent, progress_text(self.finished, self.total, self.failed)
        )


def chunk_progress_updater(
    chunk: ChunkProgress,
    every_s: float = PROGRESS_EVERY_S,
    update: Callable[[UUID, float, str], None] = update_progress,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[Progress], None]:
    """A run's progress callback that moves the flow run's progress artifact now and then."""
    last = [clock()]

    def on_progress(p: Progress) -> None:
        now = clock()
        if now - last[0] < every_s:
            return
        last[0] = now
        finished = chunk.finished_before + p.finished_count
        total = max(chunk.total, finished)
        update(chunk.artifact_id, percent_of(finished, total), progress_text(finished, total))

    return on_progress


def flow_results(session: Session, run_ids: Sequence[int], limit: int = 1000) -> list[ResultRow]:
    """What the runs ``run_ids`` generated, newest first (at most ``limit`` rows)."""
    if not run_ids:
        return []
    query = (
        select(
            Article.source_id,
            Article.title,
            Generation.task,
            Generation.status,
            Generation.output_text,
            Generation.error,
            Generation.input_tokens,
            Generation.cached_tokens,
            Generation.output_tokens,
            Generation.cost_usd,
        )
        .join(Job, Job.id == Generation.job_id)
        .join(Article, Article.id == Job.article_id)
        .where(Generation.run_id.in_(list(run_ids)))
        .order_by(Generation.id.desc())
        .limit(limit)
    )
    return [ResultRow(**row._asdict()) for row in session.execute(query)]
