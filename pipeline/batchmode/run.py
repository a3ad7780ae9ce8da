"""``contentgen run --mode batch`` and ``contentgen batches``: the library entry points.

``run_batch_mode`` opens a run, first re-attaches to every open batch (polling those in
flight, finishing half-submitted ones, recording ended ones), then claims the queued jobs and
submits them, then follows all open batches until they end (or returns at once without
``wait``: a later run, or ``contentgen batches poll``, carries on). The results are recorded
under this run. Stopping (SIGINT/SIGTERM, ``stop``) only stops waiting: batches keep running
at the provider and their jobs stay leased to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import openai

from pipeline.batchmode import items, store
from pipeline.batchmode.context import BatchContext
from pipeline.batchmode.poll import follow
from pipeline.batchmode.remote import BatchAPI, OpenAIBatchAPI
from pipeline.batchmode.submit import Submitted, submit_queued
from pipeline.client import RetryPolicy, make_sdk_client
from pipeline.db import RunTotals, close_run, jobs, leases, open_run, record_versions
from pipeline.errors import InputError, PricingError
from pipeline.planning import offers
from pipeline.run import Config, RunOptions, expects_followers, load_config, version_rows
from pipeline.settings import Settings

# Jobs claimed per chunk of a Batch API file (they wait in the batch anyway).
BATCH_CHUNK = 500


@dataclass(frozen=True)
class BatchRunSummary:
    """What a batch-mode run did, with its recorded totals read from the database."""

    run_id: int
    state: str
    stop_reason: str | None
    reattached: int
    submitted: Submitted
    counts: dict[str, int]
    open_batches: int
    totals: RunTotals
    wall_s: float

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON and the CLI."""
        t = self.totals
        return {
            "run_id": self.run_id,
            "mode": "batch",
            "state": self.state,
            "stop_reason": self.stop_reason,
            "claimed": self.submitted.claimed,
            "batches_submitted": self.counts.get("submitted", 0),
            "files_uploaded": self.counts.get("uploaded", 0),
            "batches_reattached": self.reattached,
            "batches_split": self.counts.get("split", 0),
            "batches_open": self.open_batches,
            "recorded": self.counts.get("recorded", 0),
            "failed_lines": self.counts.get("failed", 0),
            "requeued": self.counts.get("requeued", 0),
            # Lines of batches that ended early (expired, cancelled, failed) recorded at batch
            # price, and the lines of expired batches sent again in a new batch.
            "salvaged_lines": self.counts.get("salvaged", 0),
            "resubmitted": self.counts.get("resubmitted", 0),
            "input_tokens": t.input_tokens,
            "cached_tokens": t.cached_tokens,
            "cache_write_tokens": t.cache_write_tokens,
            "output_tokens": t.output_tokens,
            "cost_usd": str(t.cost_usd),
            "list_cost_usd": str(t.list_cost_usd),
            "forecast_cost_usd": str(self.submitted.forecast_usd),
            "wall_s": round(self.wall_s, 2),
        }


@dataclass
class BatchMode:
    """A batch-mode run in progress (``stop`` ends its waiting)."""

    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None

    def stop(self, reason: str = "stopped") -> None:
        """Stop waiting for batches (they keep running at the provider)."""
        self.reason = self.reason or reason
        self.stop_event.set()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)


def _batch_api(settings: Settings) -> tuple[BatchAPI, openai.AsyncOpenAI]:
    sdk = make_sdk_client(settings)
    secrets = [settings.openai_api_key.get_secret_value()] if settings.openai_api_key else []
    return OpenAIBatchAPI(sdk, retry=RetryPolicy(), secrets=secrets), sdk


def _check_prices(config: Config, tasks: tuple[str, ...] | None) -> None:
    models = {p.model for t, p in config.profiles.items() if tasks is None or t in tasks}
    missing = sorted(m for m in models if not offers(config.prices, m, "batch"))
    if missing:
        raise PricingError(f"no batch price for model(s) {missing} in config/pricing.toml")


async def run_batch_mode_async(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    api: BatchAPI | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    wait: bool = True,
    submit: bool = True,
    on_start: Callable[[BatchMode], None] | None = None,
) -> BatchRunSummary:
    """Re-attach to open batches, submit the queued jobs (``submit``), follow until done.

    ``api`` and ``sleep`` are for tests (the simulator's Batch API, a sleep that moves its
    clock); by default the configured OpenAI endpoint and a real, interruptible sleep.
    """
    options = options or RunOptions()
    if options.budget_usd is not None:
        raise InputError("--budget-usd applies to realtime and flex runs; see the batch forecast")
    started = time.monotonic()
    config = load_config(settings)
    if submit:
        _check_prices(config, options.tasks)
    sdk = None
    if api is None:
        api, sdk = _batch_api(settings)
    mode = BatchMode()
    if on_start is not None:
        on_start(mode)
    follows = {t: p.follows for t, p in config.profiles.items() if p.follows}
    with config.sessions() as session:
        leases.requeue_expired(session, max_attempts=settings.max_attempts)
        if follows:
            jobs.release_ready_followers(session, follows)
        record_versions(session, version_rows(config.profiles))
        run_id = open_run(
            session,
            kind=options.kind,
            trigger=options.trigger,
            mode="batch",
            worker=socket.gethostname(),
            flow_run_id=options.flow_run_id,
            batch_label=options.batch_label,
            parameters=options.parameters,
        )
        reattached = len(store.open_rows(session))
    worker = f"{socket.gethostname()}:{os.getpid()}:run{run_id}"
    ctx = BatchContext(
        settings=settings,
        profiles=BatchContext.batch_profiles(config.profiles, config.prices),
        prices=config.prices,
        sessions=config.sessions,
        api=api,
        run_id=run_id,
        sleep=sleep or mode.sleep,
        chained=expects_followers(config.sessions, config.profiles),
    )
    submitted = Submitted()
    still_open = 0
    try:
        await follow(ctx, worker, wait=False)
        remaining = options.limit
        while True:
            claimed = 0
            if submit and not mode.stop_event.is_set():
                round_ = await submit_queued(
                    ctx,
                    owner=worker,
                    worker=worker,
                    limit=remaining,
                    tasks=options.tasks,
                    batch_label=options.batch_label,
                    chunk_size=options.chunk_size or settings.claim_chunk or BATCH_CHUNK,
                )
                submitted.add(round_)
                claimed = round_.claimed
                remaining = None if remaining is None else remaining - claimed
            still_open = await follow(ctx, worker, wait=wait, stop=mode.stop_event)
            # Chained tasks are queued as their parents are recorded: submit them next round.
            again = ctx.chained and claimed and not still_open and remaining != 0
            if not (submit and wait and again) or mode.stop_event.is_set():
                break
    finally:
        reason = mode.reason or ("batches in flight" if still_open else None)
        ratio = (
            submitted.expected_cached / submitted.prompt_tokens if submitted.prompt_tokens else 0.0
        )
        with config.sessions() as session:
            totals = close_run(
                session,
                run_id,
                state="stopped" if reason else "finished",
                stop_reason=reason,
                forecast_cost_usd=submitted.forecast_usd if submit else None,
                forecast_cached_ratio=ratio if submit else None,
            )
        if sdk is not None:
            await sdk.close()
    return BatchRunSummary(
        run_id=run_id,
        state="stopped" if reason else "finished",
        stop_reason=reason,
        reattached=reattached,
        submitted=submitted,
        counts=dict(ctx.counts),
        open_batches=still_open,
        totals=totals,
        wall_s=time.monotonic() - started,
    )


def run_batch_mode(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    wait: bool = True,
    submit: bool = True,
    handle_signals: bool = False,
) -> BatchRunSummary:
    """The synchronous entry point (CLI, flows); SIGINT/SIGTERM stop waiting when asked."""

    def install(mode: BatchMode) -> None:
        if not handle_signals:
            return
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, mode.stop, f"signal {sig.name}")

    return asyncio.run(
        run_batch_mode_async(settings, options, wait=wait, submit=submit, on_start=install)
    )


def list_batches(
    settings: Settings, *, limit: int = 50, open_only: bool = False
) -> list[store.BatchRow]:
    """The newest batches (``contentgen batches``)."""
    config = load_config(settings)
    with config.sessions() as session:
        return store.list_rows(session, limit=limit, open_only=open_only)


async def cancel_batch_async(
    settings: Settings, key: str, *, api: BatchAPI | None = None
) -> store.BatchRow:
    """Cancel a batch by local id or provider id.

    At the provider it goes through ``cancelling`` to ``cancelled``; the next run (or
    ``contentgen batches poll``) records what finished and returns the rest to the queue. A
    batch not submitted yet is closed at once and its jobs go back to the queue.
    """
    config = load_config(settings)
    with config.sessions() as session:
        row = store.find_row(session, key)
    if row is None:
        raise InputError(f"no batch {key!r} (see `contentgen batches`)")
    if row.ingested_at is not None:
        raise InputError(f"batch {key} has ended ({row.status}); nothing to cancel")
    if row.batch_id is None:
        reason = f"batch {row.id} cancelled before it was submitted"
        worker = f"{socket.gethostname()}:{os.getpid()}:cancel"
        with config.sessions() as session:
            if not store.take(session, row.id, worker, store.hold_s(settings)):
                raise InputError(f"batch {key} is being submitted right now; try again shortly")
            for item in items.items(session, row.id):
                items.requeue(session, row, item, reason, max_attempts=settings.max_attempts)
            store.update_row(session, row.id, status="cancelled")
            return store.close(session, store.get_row(session, row.id), error=reason)
    sdk = None
    if api is None:
        api, sdk = _batch_api(settings)
    try:
        remote = await api.cancel(row.batch_id)
    finally:
        if sdk is not None:
            await sdk.close()
    with config.sessions() as session:
        return store.update_row(session, row.id, status=remote.status)


def cancel_batch(settings: Settings, key: str) -> store.BatchRow:
    """Synchronous ``cancel_batch_async``."""
    return asyncio.run(cancel_batch_async(settings, key))


def batch_costs(rows: list[store.BatchRow]) -> tuple[Decimal, Decimal]:
    """Total cost and list cost of ``rows``."""
    return sum((r.cost_usd for r in rows), Decimal(0)), sum(
        (r.list_cost_usd for r in rows), Decimal(0)
    )
