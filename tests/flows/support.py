"""Shared by the flow and browser tests: paths and a fake run function that writes real rows."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Article, Generation, Job
from pipeline.db.runs import close_run, open_run
from pipeline.run.runner import RunOptions

REPO = Path(__file__).resolve().parents[2]


class RowWritingRun:
    """Stands in for ``run_batch`` in flow tests: each chunk writes a run row and generations.

    ``per_chunk`` lists, per chunk, (task, status, input, cached, output, cost, list cost).
    """

    def __init__(self, url: str, per_chunk: list[list[tuple[Any, ...]]]) -> None:
        self.url = url
        self.per_chunk = per_chunk
        self.options: list[RunOptions] = []

    def __call__(self, index: int, options: RunOptions) -> dict[str, Any]:
        self.options.append(options)
        rows = self.per_chunk[index] if index < len(self.per_chunk) else []
        engine = make_engine(self.url)
        try:
            with session_factory(engine)() as session:
                run_id = open_run(
                    session,
                    kind=options.kind,
                    trigger=options.trigger,
                    flow_run_id=options.flow_run_id,
                    parameters=options.parameters,
                )
                for n, (task, status, tin, tcached, tout, cost, list_cost) in enumerate(rows):
                    article = Article(
                        source_id=f"r{run_id}-{n}", title="t", body="b", content_hash="h"
                    )
                    session.add(article)
                    session.flush()
                    job = Job(article_id=article.id, task=task, state="succeeded", content_hash="h")
                    session.add(job)
                    session.flush()
                    session.add(
                        Generation(
                            job_id=job.id,
                            run_id=run_id,
                            task=task,
                            status=status,
                            request_model="gpt-4.1-mini",
                            input_tokens=tin,
                            cached_tokens=tcached,
                            output_tokens=tout,
                            cost_usd=Decimal(cost),
                            list_cost_usd=Decimal(list_cost),
                        )
                    )
                session.commit()
                totals = close_run(session, run_id, state="finished")
        finally:
            engine.dispose()
        return {
            "run_id": run_id,
            "state": "finished",
            "stop_reason": None,
            "requests": totals.requests,
            "succeeded": totals.succeeded,
            "failed": totals.failed,
            "incomplete": totals.incomplete,
            "from_cache": totals.from_cache,
            "input_tokens": totals.input_tokens,
            "cached_tokens": totals.cached_tokens,
            "output_tokens": totals.output_tokens,
            "reasoning_tokens": totals.reasoning_tokens,
            "cost_usd": str(totals.cost_usd),
            "list_cost_usd": str(totals.list_cost_usd),
            "claimed": totals.requests,
            "released": 0,
            "lost_leases": 0,
        }


class RecordingPublisher:
    """Collects what a flow would publish as artifacts (progress: every move, in order)."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.markdowns: dict[str, str] = {}
        self.progresses: dict[str, list[tuple[float, str]]] = {}

    def table(self, key: str, rows: list[dict[str, Any]], description: str) -> None:
        assert description
        self.tables[key] = rows

    def markdown(self, key: str, text: str, description: str) -> None:
        assert description
        self.markdowns[key] = text

    def progress(self, key: str, percent: float, description: str) -> None:
        assert description
        self.progresses.setdefault(key, []).append((percent, description))
