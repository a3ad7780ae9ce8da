"""The nightly and ad-hoc flows: chunks of the queue through the library's ``run_batch``.

Each flow is thin: it turns its typed parameters into ``RunOptions`` chunk by chunk
(``flows.chunks``), runs every chunk as one Prefect task (``generate_chunk``: one ``run_batch``
call, asyncio inside, hundreds of requests), keeps a progress artifact moving while it runs,
and publishes a per-profile table, a Markdown summary and the results table; the flow run ends
with a state message that says the outcome (``1,000 generated, 0 failed, $0.42``); the
nightly run's message and summary also link to its queue on the review desk (``412 to review,
23 flagged: http://...``).
Every run row it creates carries the flow-run id, so the database leads back to the Prefect run
and the flow-run name (``adhoc-<batch label>``, ``nightly-<date>``) leads to the batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError
from prefect.runtime import flow_run
from prefect.states import Completed

from flows.artifacts import (
    ArtifactPublisher,
    ChunkProgress,
    FlowProgress,
    Publisher,
    chunk_progress_updater,
    flow_results,
)
from flows.chunks import RunChunk, RunContext, TokenGate, chunk_options, run_chunks
from flows.gate import DEFAULT_TOKEN_LIMIT, open_token_gate
from flows.parameters import BatchParameters
from flows.reporting import (
    SHOW_HINT,
    by_profile,
    outcome_message,
    results_table,
    review_link,
    run_markdown,
    table,
)
from pipeline.alerts import alerts_config, flow_run_ids, notify_runs
from pipeline.db import check_label, make_engine, queued_count, session_factory
from pipeline.errors import RunStopped
from pipeline.run import (
    DryRunReport,
    Progress,
    RunOptions,
    choose_pace,
    dry_run,
    forecast_markdown,
    run_batch,
)
from pipeline.settings import Settings, get_settings

PROGRESS_LOG_INTERVAL_S = 15.0


def trigger_of(deployment_id: object | None, auto_scheduled: bool | None) -> str:
    """The run row's trigger: ``schedule``, ``manual`` (UI or API run of a deployment), ``api``.

    Prefect's open-source server records no user, so a Custom run from the UI and a
    ``run_deployment`` call both read as ``manual``.
    """
    if deployment_id is None:
        return "api"
    return "schedule" if auto_scheduled else "manual"


def current_context(kind: str) -> RunContext:
    """Kind, trigger and flow-run id of the flow run this is called in."""
    ctx = FlowRunContext.get()
    run = ctx.flow_run if ctx is not None else None
    if run is None:
        return RunContext(kind=kind, trigger="api")
    return RunContext(
        kind=kind,
        trigger=trigger_of(run.deployment_id, run.auto_scheduled),
        flow_run_id=str(run.id),
    )


def _label_of(batch: object) -> str | None:
    if isinstance(batch, BatchParameters):
        return batch.batch_label
    if isinstance(batch, dict):
        label = batch.get("batch_label")
        return str(label) if label else None
    return None


def adhoc_run_name() -> str:
    """``adhoc-<batch label>`` (``adhoc-all`` without a label): the run name leads to the batch."""
    return f"adhoc-{_label_of(flow_run.parameters.get('batch')) or 'all'}"


def nightly_run_name() -> str:
    """``nightly-<day>``: the scheduled day in the schedule's time zone (``settings.timezone``)."""
    scheduled = flow_run.scheduled_start_time
    day = scheduled.astimezone(ZoneInfo(get_settings().timezone)).date()
    return f"nightly-{day.isoformat()}"


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a flow or task run; this module's logger outside one.

    ``generate_chunk.fn(...)`` (tests, scripts) runs outside any run context, where Prefect's
    ``get_run_logger()`` raises instead of logging.
    """
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _progress_logger(index: int, chunk: ChunkProgress | None) -> Callable[[Progress], None]:
    logger = _logger()
    last = [time.monotonic()]
    artifact = None if chunk is None else chunk_progress_updater(chunk)

    def log_progress(p: Progress) -> None:
        if artifact is not None:
            artifact(p)
        now = time.monotonic()
        if now - last[0] < PROGRESS_LOG_INTERVAL_S:
            return
        last[0] = now
        logger.info("chunk %d: %s", index, p.view().line())

    return log_progress


@task(name="generate-chunk", task_run_name="chunk-{index}", cache_policy=NO_CACHE, retries=0)
def generate_chunk(
    index: int, options: RunOptions, progress: ChunkProgress | None = None
) -> dict[str, Any]:
    """Generate one chunk of jobs: one library run, its requests sent concurrently.

    No task retries: the library retries API calls, and a job whose run died goes back to the
    queue when its lease expires. ``progress`` moves the flow run's progress artifact.
    """
    settings = get_settings()
    summary = run_batch(settings, options, progress=_progress_logger(index, progress)).as_dict()
    _logger().info(
        "chunk %d: run %s, %s requests (%s failed), cached %.1f%%, $%s, %s",
        index,
        summary["run_id"],
        summary["requests"],
        summary["failed"],
        summary["cached_ratio"] * 100,
        summary["cost_usd"],
        summary["state"],
    )
    return summary


def queued_total(settings: Settings, batch: BatchParameters) -> int:
    """The queued jobs a run of ``batch`` may take (its limit applied), counted at its start.

    A batch label no job carries is a mistyped one: ``InputError`` listing the known labels,
    so the flow run fails instead of completing a run that did nothing.
    """
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            check_label(session, batch.batch_label, option="batch_label")
            queued = queued_count(session, tasks=batch.tasks, batch_label=batch.batch_label)
    finally:
        engine.dispose()
    return queued if batch.limit is None else min(queued, batch.limit)


def forecast(settings: Settings, batch: BatchParameters, context: RunContext) -> DryRunReport:
    """The library's dry run (``contentgen run --dry-run``): forecast only, nothing changes."""
    options = chunk_options(batch, context, index=0, limit=batch.limit, budget_usd=batch.budget_usd)
    return dry_run(settings, options)


def desk_review(settings: Settings, run_ids: list[int], batch_label: str | None) -> dict[str, Any]:
    """What the nightly run left for editors, and its queue on the review desk."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            return review_link(session, settings.desk_url, run_ids, batch_label)
    finally:
        engine.dispose()


def publish_run(settings: Settings, kind: str, outcome: dict[str, Any], publish: Publisher) -> None:
    """Publish the per-profile table, the Markdown summary and the results of a flow run."""
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            rows = by_profile(session, outcome["run_ids"])
            results = flow_results(session, outcome["run_ids"])
    finally:
        engine.dispose()
    title = f"ContentGen {kind} run"
    publish.table(
        f"{kind}-cost-by-profile",
        table(rows, "profile"),
        f"{title}: requests, tokens, cached %, cost and savings against list price per profile.",
    )
    publish.markdown(f"{kind}-run-summary", run_markdown(title, outcome, rows), f"{title} summary")
    publish.table(
        f"{kind}-results",
        results_table(results),
        f"{title}: what was generated, newest first; {SHOW_HINT}.",
    )


def execute_batch(
    settings: Settings,
    batch: BatchParameters,
    context: RunContext,
    *,
    run_chunk: RunChunk,
    publish: Publisher,
    gate: TokenGate | None = None,
    progress: FlowProgress | None = None,
) -> dict[str, Any]:
    """Run ``batch`` chunk by chunk (or only forecast it), publish the report, return totals.

    ``progress`` (made here from ``publish`` when not given) is the progress artifact, moved
    after every chunk; the flow hands it to the chunk tasks too, which move it while they run.
    """
    total = queued_total(settings, batch)  # refuses a label no job carries
    if batch.dry_run:
        report = forecast(settings, batch, context)
        title = f"ContentGen {context.kind} forecast (dry run)"
        publish.markdown(
            f"{context.kind}-forecast",
            forecast_markdown(report, title),
            "Forecast of cost and cache hits per task; nothing was sent.",
        )
        return {"dry_run": True, **report.as_dict()}
    progress = progress or FlowProgress(publish, f"{context.kind}-progress")
    progress.start(total)
    # One pacing decision for the whole flow run (a nightly run paces itself when it pays).
    whole = chunk_options(batch, context, index=0, limit=batch.limit, budget_usd=batch.budget_usd)
    pacing = choose_pace(settings, whole)

    def tracked(index: int, options: RunOptions) -> dict[str, Any]:
        summary = run_chunk(index, options)
        progress.chunk_done(summary)
        return summary

    chunks = run_chunks(
        batch,
        context,
        tracked,
        chunk_size=settings.flow_chunk_size,
        gate=gate,
        paced_rpm=pacing.paced_rpm,
    )
    progress.end()
    outcome = chunks.as_dict()
    outcome["pacing"] = pacing.line()
    outcome["flow_run_id"] = context.flow_run_id
    if context.kind == "nightly":
        outcome["review"] = desk_review(settings, outcome["run_ids"], batch.batch_label)
    publish_run(settings, context.kind, outcome, publish)
    fatal = next((c["fatal"] for c in chunks.chunks if c.get("fatal")), None)
    if fatal:
        # The flow run fails with the reason; unsent jobs are still queued, untouched.
        raise RunStopped(f"run stopped: {fatal}")
    outcome["message"] = outcome_message(outcome, batch.batch_label)
    return outcome


def send_alerts(settings: Settings, context: RunContext, error: BaseException | None) -> None:
    """Alert on the flow run's run rows (config/alerts.toml), once per event; never raises.

    ``error``: what ended the flow run early (a fatal stop's line goes into the alert).
    """
    if context.flow_run_id is None:
        return
    try:
        run_ids = flow_run_ids(settings, context.flow_run_id)
    except Exception as exc:  # an alert must never change the flow run's outcome
        _logger().warning("alerts not evaluated: %s", exc)
        return
    details = {}
    if error is not None and run_ids:
        details[run_ids[-1]] = str(error).removeprefix("run stopped: ")
    for sent in notify_runs(settings, run_ids, details=details):
        _logger().info("alert %s", sent.line())


def _run_flow(kind: str, batch: BatchParameters) -> State[dict[str, Any]]:
    context = current_context(kind)
    settings = get_settings()
    alerts_config(settings)  # a wrong alerts.toml fails the flow run before anything is sent
    # The shared token limit's name is infrastructure, not a choice for the form.
    gate = None if batch.dry_run else open_token_gate(DEFAULT_TOKEN_LIMIT)
    publish = ArtifactPublisher()
    progress = FlowProgress(publish, f"{kind}-progress")
    error: BaseException | None = None
    try:
        result = execute_batch(
            settings,
            batch,
            context,
            run_chunk=lambda index, options: generate_chunk(index, options, progress.chunk()),
            publish=publish,
            gate=gate,
            progress=progress,
        )
    except BaseException as exc:
        error = exc
        raise
    finally:
        if not batch.dry_run:
            send_alerts(settings, context, error)
    message = result.get("message") or "dry run: forecast published, nothing sent"
    return Completed(message=str(message), data=result)


@flow(name="contentgen-adhoc", flow_run_name=adhoc_run_name, persist_result=False)
def adhoc_batch(batch: BatchParameters = BatchParameters()) -> State[dict[str, Any]]:
    """Generate queued jobs now: pick tasks, a batch label, a limit, a budget.

    Args:
        batch: What to generate and how hard to drive the API.
    """
    return _run_flow("adhoc", batch)


@flow(name="contentgen-nightly", flow_run_name=nightly_run_name, persist_result=False)
def nightly_run(batch: BatchParameters = BatchParameters()) -> State[dict[str, Any]]:
    """The nightly run: generate every queued job (or what ``batch`` selects).

    Args:
        batch: What to generate and how hard to drive the API.
    """
    return _run_flow("nightly", batch)
