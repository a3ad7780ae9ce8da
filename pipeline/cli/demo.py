"""``contentgen demo``: the whole pipeline offline, on the bundled sample articles.

Creates a fresh SQLite database, enqueues ``samples/articles.jsonl`` for every enabled task,
starts the Responses API simulator in-process (with a binding rate limit and a few injected
faults, so retries and the limiter are exercised), runs the engine against it through the
real SDK, and returns the run summary next to what the simulator billed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from pipeline.db import make_engine, queue, session_factory, sync_prices, upgrade
from pipeline.intake import read_chunks
from pipeline.money import load_pricing
from pipeline.prompts import load_profiles
from pipeline.reports import CostReport, ReportFilter, cost_report
from pipeline.review import state_counts
from pipeline.run import Progress, RunOptions, RunSummary, run_batch
from pipeline.settings import Settings

if TYPE_CHECKING:
    from pipeline.simulator import SimulatorConfig

# Shipped inside the package (pipeline/data/samples links to the checkout's samples/).
SAMPLES = Path(str(resources.files("pipeline").joinpath("data", "samples", "articles.jsonl")))


@dataclass(frozen=True)
class DemoResult:
    """The run, its per-task report, and the simulator's bill for comparison."""

    database_url: str
    enqueued: int
    summary: RunSummary
    report: CostReport
    billed_usd: Decimal
    ledger: dict[str, Any]
    # Current outputs per review state (pending, flagged, auto...): what waits for an editor.
    review_states: dict[str, int] = field(default_factory=dict)

    @property
    def bill_matches(self) -> bool:
        """The pipeline's recorded cost equals what the simulator billed, exactly."""
        return self.billed_usd == self.summary.totals.cost_usd


def run_demo(
    settings: Settings,
    *,
    database: Path,
    articles: Path = SAMPLES,
    tasks: list[str] | None = None,
    simulator: SimulatorConfig | None = None,
    progress: Any = None,
) -> DemoResult:
    """Run the offline demo into a fresh SQLite file at ``database``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    upgrade(url)
    profiles = load_profiles(settings.config_dir)
    # Every enabled task (a grader is off until named); a chained task waits for its parent.
    tasks = tasks or [task for task, p in profiles.items() if p.enabled]
    waiting = {task: "waiting" for task, p in profiles.items() if p.follows}
    engine = make_engine(url)
    sessions = session_factory(engine)
    enqueued = 0
    with sessions() as session:
        sync_prices(session, load_pricing(settings.config_dir / "pricing.toml"))
        for chunk in read_chunks(articles):
            enqueued += queue.enqueue(session, chunk.articles, tasks, start_states=waiting).accepted
    # Imported here: every other command starts faster without the simulator's web stack.
    from pipeline.simulator import (
        REHEARSAL_HALLUCINATION_RATE,
        REHEARSAL_OBEY_RATE,
        SimulatorConfig,
        SimulatorServer,
    )

    sim_config = simulator or SimulatorConfig(
        latency_scale=0.05,
        fail_rate=0.02,
        drop_rate=0.01,
        tpm=400_000,
        rpm=2_000,
        obey_rate=REHEARSAL_OBEY_RATE,
        hallucination_rate=REHEARSAL_HALLUCINATION_RATE,
    )
    with (
        SimulatorServer(sim_config) as sim,
        tempfile.TemporaryDirectory(prefix="contentgen-demo-cache-") as cache_dir,
    ):
        run_settings = settings.model_copy(
            update={
                "database_url": url,
                "cache_dir": Path(cache_dir),
                "openai_base_url": sim.base_url,
                "openai_api_key": SecretStr("sk-simulator-demo"),
                "tpm_limit": settings.tpm_limit or sim_config.tpm,
                "rpm_limit": settings.rpm_limit or sim_config.rpm,
            }
        )
        summary = run_batch(run_settings, RunOptions(kind="demo"), progress=progress)
        ledger = sim.ledger()
    with sessions() as session:
        report = cost_report(session, "task", ReportFilter(run_id=summary.run_id))
        review_states = state_counts(session)
    engine.dispose()
    return DemoResult(
        database_url=url,
        enqueued=enqueued,
        summary=summary,
        report=report,
        billed_usd=Decimal(ledger["totals"]["cost_usd"]),
        ledger=ledger,
        review_states=review_states,
    )


def progress_type() -> type[Progress]:
    """The progress value handed to ``progress`` callbacks."""
    return Progress
