"""Helpers the engine's end-to-end tests share: queue, simulator, settings and database reads.

The engine runs for real: jobs in a migrated database (the ``database_url`` fixture), the
Responses API simulator over HTTP on a free port, the real ``openai`` SDK, and ``run_batch`` or
``run_batch_async`` with a client stack from ``build_client_stack``. Nothing of the pipeline is
patched; a test observes it through the database, the simulator's ledger and (where it needs
the exact request bodies) an HTTP event hook on the SDK's own client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from pydantic import SecretStr
from sqlalchemy import JSON, Engine, String, Text, select, update
from sqlalchemy.orm import Session

from pipeline.client.retry import RetryPolicy
from pipeline.client.wiring import build_client_stack
from pipeline.db import leases, queue
from pipeline.db.engine import session_factory
from pipeline.db.models import Base, Generation, Job, Run, utcnow
from pipeline.intake.reader import ArticleIn, read_chunks
from pipeline.run.runner import RunOptions, RunSummary, run_batch_async
from pipeline.settings import Settings
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.server import SimulatorServer

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "config"
SAMPLES = REPO_ROOT / "samples" / "articles.jsonl"
KEY_POINTS_SCHEMA: dict[str, Any] = json.loads(
    (CONFIG_DIR / "schemas" / "key_points.json").read_text(encoding="utf-8")
)
API_KEY = "sk-test"


# -- the queue ------------------------------------------------------------------------------


@functools.cache
def sample_articles() -> tuple[ArticleIn, ...]:
    """The bundled sample articles, read once."""
    return tuple(a for chunk in read_chunks(SAMPLES) for a in chunk.articles)


def seed(
    engine: Engine,
    tasks: Sequence[str],
    n: int = 3,
    *,
    start: int = 0,
    articles: Sequence[ArticleIn] | None = None,
    priority: int = 0,
) -> list[int]:
    """Enqueue ``n`` sample articles (from ``start``) for ``tasks``; the new jobs' ids."""
    chosen = list(articles) if articles is not None else list(sample_articles()[start : start + n])
    with session_factory(engine)() as session:
        before = set(session.scalars(select(Job.id)))
        queue.enqueue(session, chosen, list(tasks), priority=priority)
        return sorted(set(session.scalars(select(Job.id))) - before)


def requeue_succeeded(engine: Engine) -> int:
    """Put every succeeded job back in the queue with fresh attempts (as an operator would)."""
    with session_factory(engine)() as session:
        result = session.execute(
            update(Job).where(Job.state == "succeeded").values(state="queued", attempts=0)
        )
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def expire_leases(engine: Engine, *, max_attempts: int = 5) -> int:
    """What a later worker does once the dead worker's leases have run out (an hour from now)."""
    with session_factory(engine)() as session:
        future = utcnow() + dt.timedelta(hours=1)
        return leases.requeue_expired(session, max_attempts=max_attempts, now=future)


# -- the simulator, settings and runs --------------------------------------------------------


@contextmanager
def simulator(**overrides: Any) -> Iterator[SimulatorServer]:
    """An in-process simulator on a free port, no latency unless asked; stopped afterwards.

    It prices with the repository's config/pricing.toml, whatever config a test runs with.
    """
    defaults = {"latency_scale": 0.0, "pricing_path": CONFIG_DIR / "pricing.toml"}
    server = SimulatorServer(SimulatorConfig(**{**defaults, **overrides}))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def engine_settings(
    database_url: str,
    sim: SimulatorServer,
    tmp_path: Path,
    *,
    config_dir: Path = CONFIG_DIR,
    **updates: Any,
) -> Settings:
    """Settings for a run against ``sim``: private response cache in ``tmp_path``, key sk-test."""
    return Settings(
        database_url=database_url,
        config_dir=config_dir,
        cache_dir=tmp_path / "response-cache",
        openai_base_url=sim.base_url,
        openai_api_key=SecretStr(API_KEY),
        **updates,
    )


def fast_retry() -> RetryPolicy:
    """The production retry policy with short backoffs (server hints are still honoured)."""
    return RetryPolicy(base_s=0.01, max_backoff_s=0.05)


class RequestLog:
    """An ``AsyncOpenAI`` whose HTTP client records every request body it sends."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def _record(self, request: Any) -> None:
        if request.url.path.endswith("/responses"):
            self.bodies.append(json.loads(request.content))

    def sdk(self, settings: Settings) -> openai.AsyncOpenAI:
        """The SDK client the production wiring would make, plus the recording hook."""
        assert settings.openai_api_key is not None
        return openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            max_retries=0,
            timeout=settings.request_timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [self._record]}),
        )


def run_engine(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    retry: RetryPolicy | None = None,
    sdk: openai.AsyncOpenAI | None = None,
) -> RunSummary:
    """``run_batch_async`` through ``build_client_stack`` (fast retries by default)."""
    stack = build_client_stack(settings, sdk=sdk, retry=retry or fast_retry())
    return asyncio.run(run_batch_async(settings, options, stack=stack))


def config_with(tmp_path: Path, profiles_toml: str, pricing_toml: str = "") -> Path:
    """A copy of config/ with TOML appended to its profiles.toml (and pricing.toml)."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    for name, extra in (("profiles.toml", profiles_toml), ("pricing.toml", pricing_toml)):
        with (target / name).open("a", encoding="utf-8") as fh:
            fh.write("\n" + extra)
    return target


# -- reading the database --------------------------------------------------------------------


@dataclass(frozen=True)
class JobRow:
    """A job as the tests look at it."""

    id: int
    task: str
    state: str
    attempts: int
    lease_owner: str | None
    last_error: str | None


def job_rows(engine: Engine) -> list[JobRow]:
    """Every job, by id."""
    with Session(engine) as session:
        rows = session.execute(
            select(
                Job.id, Job.task, Job.state, Job.attempts, Job.lease_owner, Job.last_error
            ).order_by(Job.id)
        )
        return [JobRow(*row) for row in rows]


def states(engine: Engine) -> Counter[str]:
    """How many jobs are in each state."""
    return Counter(row.state for row in job_rows(engine))


def generations(engine: Engine, run_id: int | None = None) -> list[Generation]:
    """Every generation (of one run), by id, detached from its session."""
    query = select(Generation).order_by(Generation.id)
    if run_id is not None:
        query = query.where(Generation.run_id == run_id)
    with session_factory(engine)() as session:
        return list(session.scalars(query))


def completed_per_job(engine: Engine) -> Counter[int]:
    """How many completed generations each job has (jobs with none are absent)."""
    return Counter(g.job_id for g in generations(engine) if g.status == "completed")


def run_row(engine: Engine, run_id: int) -> Run:
    """A run row, detached."""
    with session_factory(engine)() as session:
        run = session.get(Run, run_id)
        assert run is not None, f"no run {run_id}"
        return run


def run_rows(engine: Engine) -> list[Run]:
    """Every run row, by id."""
    with session_factory(engine)() as session:
        return list(session.scalars(select(Run).order_by(Run.id)))


def recorded_cost(engine: Engine) -> Decimal:
    """The sum of every generation's cost."""
    return sum((g.cost_usd for g in generations(engine)), Decimal(0))


def texts_containing(engine: Engine, needle: str) -> list[str]:
    """``table.column#id`` of every text or JSON value in the database that contains ``needle``."""
    found = []
    with Session(engine) as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            for row in session.execute(select(table)).mappings():
                for column in columns:
                    value = row[column.name]
                    text = value if isinstance(value, str) else json.dumps(value)
                    if value is not None and needle in text:
                        found.append(f"{table.name}.{column.name}#{row['id']}")
    return found


# -- reading the simulator -------------------------------------------------------------------


def ledger_requests(sim: SimulatorServer) -> dict[str, int]:
    """Requests the simulator saw, by outcome (completed, incomplete, 429, 4xx, 5xx, ...)."""
    counts: dict[str, int] = sim.ledger()["totals"]["requests"]
    return counts


def billed_usd(sim: SimulatorServer) -> Decimal:
    """Everything the simulator billed."""
    return Decimal(sim.ledger()["totals"]["cost_usd"])


# -- worker processes ------------------------------------------------------------------------

# A worker as production runs one: ``run_batch`` with signal handling, in its own process.
# It prints the run summary as JSON when it ends.
WORKER_SCRIPT = """
import json, sys
from pathlib import Path
from pydantic import SecretStr
from pipeline.run.runner import RunOptions, run_batch
from pipeline.settings import Settings

args = json.loads(sys.argv[1])
settings = Settings(
    database_url=args["database_url"],
    config_dir=Path(args["config_dir"]),
    cache_dir=Path(args["cache_dir"]),
    openai_base_url=args["base_url"],
    openai_api_key=SecretStr(args["api_key"]),
)
options = RunOptions(concurrency=args["concurrency"], chunk_size=args["chunk_size"])
summary = run_batch(settings, options, handle_signals=True)
print(json.dumps(summary.as_dict()))
"""


@contextmanager
def worker(
    settings: Settings,
    *,
    concurrency: int = 2,
    chunk_size: int | None = None,
    wrapper: Sequence[str] = (),
) -> Iterator[subprocess.Popen[str]]:
    """A worker process running ``run_batch`` on ``settings``; killed if still alive at exit.

    ``wrapper`` runs it under another command (``unshare --pid --fork``: a container's own pid
    namespace on the same host name)."""
    assert settings.openai_api_key is not None
    args = {
        "database_url": settings.database_url,
        "config_dir": str(settings.config_dir),
        "cache_dir": str(settings.cache_dir),
        "base_url": settings.openai_base_url,
        "api_key": settings.openai_api_key.get_secret_value(),
        "concurrency": concurrency,
        "chunk_size": chunk_size,
    }
    proc = subprocess.Popen(
        [*wrapper, sys.executable, "-c", WORKER_SCRIPT, json.dumps(args)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> dict[str, Any]:
    """Wait for a worker to exit by itself; its summary (fails with its stderr otherwise)."""
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, f"worker exited {proc.returncode}:\n{err[-3000:]}"
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def wait_until(
    condition: Callable[[], bool], *, proc: subprocess.Popen[str], timeout_s: float = 30.0
) -> None:
    """Poll ``condition`` until it holds; fail if it does not in time or ``proc`` dies first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"worker ended early ({proc.returncode}):\n{err[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)
