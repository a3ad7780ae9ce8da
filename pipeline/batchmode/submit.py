"""Submitting: claim queued jobs, render and plan them as realtime does, upload, create.

Claimed jobs are rendered and planned chunk by chunk exactly as the realtime runner does
(same layouts, planner order and ``prompt_cache_key``s), written as one JSONL file per model
and split under the per-file limits. Each file then goes through ``push``, which stores every
id the moment it exists: batch row, items and the jobs' leases first (nothing uploaded yet),
then the input file id, then the batch id. ``push`` is also how a restarted run finishes a
row that a crash left half-way; with ``resumed`` it first asks the API whether the step was
done after all (file by name, batch by the ``contentgen_ref`` in its metadata).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from pipeline.batchmode import items, store
from pipeline.batchmode.context import (
    BatchContext,
    line_of,
    lines_of,
    planned_rpm,
    render_jobs,
)
from pipeline.batchmode.files import Line, custom_id, jsonl, split
from pipeline.db import ClaimedJob, jobs
from pipeline.money import cost_usd
from pipeline.planning import (
    choose_layouts,
    follow_parents,
    loads_of,
    plan,
    request_key,
    without_prewarms,
)
from pipeline.prompts import Layout

log = logging.getLogger("contentgen.batch")


@dataclass
class Submitted:
    """What claiming and submitting did."""

    claimed: int = 0
    batches: int = 0
    forecast_usd: Decimal = Decimal(0)
    expected_cached: int = 0
    prompt_tokens: int = 0

    def add(self, other: Submitted) -> None:
        """Count another round of submitting in (chained tasks are submitted in rounds)."""
        self.claimed += other.claimed
        self.batches += other.batches
        self.forecast_usd += other.forecast_usd
        self.expected_cached += other.expected_cached
        self.prompt_tokens += other.prompt_tokens


def _epoch(at: dt.datetime) -> int:
    return int(at.replace(tzinfo=dt.UTC).timestamp())


async def push(
    ctx: BatchContext, row: store.BatchRow, lines: Sequence[Line] | None = None, *, resumed: bool
) -> store.BatchRow:
    """Upload the row's input file and create its batch, storing each id as it comes.

    The caller holds the row (``store.take``). ``lines`` are the row's lines (rendered again
    from its items when None).
    """
    since = _epoch(row.created_at)
    if row.input_file_id is None:
        file_id = await ctx.api.find_file(row.filename, since=since) if resumed else None
        if file_id is None:
            if lines is None:
                with ctx.sessions() as session:
                    pending = items.items(session, row.id)
                lines = lines_of(ctx, pending)
            if not lines:
                with ctx.sessions() as session:
                    return store.close(session, row, error="no request left to send")
            file_id = await ctx.api.upload(row.filename, jsonl(lines))
            ctx.count("uploaded")
        with ctx.sessions() as session:
            row = store.update_row(session, row.id, input_file_id=file_id, status="uploaded")
    if row.batch_id is None:
        assert row.input_file_id is not None
        remote = await ctx.api.find_batch(row.ref, since=since) if resumed else None
        if remote is None:
            metadata = {"contentgen_ref": row.ref, "contentgen_batch": str(row.id)}
            remote = await ctx.api.create(row.input_file_id, metadata)
        expires = (
            None
            if remote.expires_at is None
            else dt.datetime.fromtimestamp(remote.expires_at, dt.UTC).replace(tzinfo=None)
        )
        with ctx.sessions() as session:
            row = store.update_row(
                session, row.id, batch_id=remote.id, status=remote.status, expires_at=expires
            )
        ctx.count("submitted")
        log.info(
            "batch %s (%s, %d requests) submitted as %s", row.id, row.model, row.requests, remote.id
        )
    return row


async def _open(ctx: BatchContext, model: str, lines: list[Line], owner: str, worker: str) -> int:
    """Store a new batch of ``lines`` (taking their jobs from ``owner``) and push it."""
    settings = ctx.settings
    with ctx.sessions() as session:
        created = store.create(
            session,
            model=model,
            lines=lines,
            from_owner=owner,
            lease_h=settings.batch_lease_h,
            run_id=ctx.run_id,
            worker=worker,
            ttl_s=store.hold_s(settings),
        )
    if created is None:
        return 0
    row, kept = created
    try:
        await push(ctx, row, kept, resumed=False)
    finally:
        with ctx.sessions() as session:
            store.let_go(session, row.id, worker)
    return 1


def _layout(ctx: BatchContext, layouts: dict[str, Layout], job: ClaimedJob) -> Layout:
    """A job's layout: its task's, or for a chained task its parent's (as the runner does)."""
    return layouts[ctx.profiles[job.task].follows or job.task]


async def submit_queued(
    ctx: BatchContext,
    *,
    owner: str,
    worker: str,
    limit: int | None,
    tasks: tuple[str, ...] | None,
    batch_label: str | None,
    chunk_size: int,
) -> Submitted:
    """Claim up to ``limit`` queued jobs as ``owner`` and submit them as batches.

    Jobs claimed but not yet in a stored batch are released if anything fails.
    """
    settings = ctx.settings
    out = Submitted()
    buffers: dict[str, list[Line]] = {}
    layouts: dict[str, Layout] | None = None
    warm: frozenset[str] = frozenset()
    remaining = limit
    try:
        while remaining is None or remaining > 0:
            n = chunk_size if remaining is None else min(chunk_size, remaining)
            with ctx.sessions() as session:
                claimed = jobs.claim(
                    session,
                    owner,
                    n,
                    lease_s=settings.lease_s,
                    tasks=tasks,
                    batch_label=batch_label,
                    count_attempt=True,
                )
            if not claimed:
                break
            out.claimed += len(claimed)
            if remaining is not None:
                remaining -= len(claimed)
            policies = {p.model: ctx.prices.policy(p.model) for p in ctx.profiles.values()}
            if layouts is None:
                layouts = choose_layouts(claimed, ctx.profiles, policies=policies)
            requests, chained = render_jobs(ctx, claimed, partial(_layout, ctx, layouts))
            # Planned as ``Runner._render_chunk`` plans a chunk, so the cache keys are the same.
            chunk_plan = plan(
                requests,
                planned_rpm=planned_rpm(settings, requests),
                warm=warm,
                expect_more=ctx.chained or len(claimed) >= chunk_size,
                policies=policies,
            )
            if chained:
                explicit = frozenset(m for m, p in policies.items() if p.explicit)
                chunk_plan = follow_parents(chunk_plan, chained, explicit)
            # A batch runs its lines in no set order: no prewarms (the static part of each
            # line carries its own breakpoint), and no waits.
            chunk_plan = without_prewarms(chunk_plan)
            warm = warm | chunk_plan.warmed
            out.expected_cached += chunk_plan.expected_cached_tokens
            out.prompt_tokens += chunk_plan.prompt_tokens
            for model, load in loads_of(chunk_plan).items():
                out.forecast_usd += cost_usd(load.usage, ctx.prices.price(model, "batch"))
            attempts = {job.id: job.attempts for job in claimed}
            for planned in chunk_plan.requests:
                r = planned.request
                attempt = attempts[r.job_id]
                policy = policies[r.model]
                key = request_key(planned, policy, ctx.run_id, batch_label)
                line = line_of(r, custom_id(r.job_id, attempt), attempt, key, policy)
                buffers.setdefault(r.model, []).append(line)
            for model in sorted(buffers):
                parts = split(
                    buffers[model],
                    max_requests=settings.batch_max_requests,
                    max_bytes=settings.batch_max_bytes,
                )
                for part in parts[:-1]:
                    out.batches += await _open(ctx, model, part, owner, worker)
                buffers[model] = parts[-1] if parts else []
            waiting = [line.job_id for lines in buffers.values() for line in lines]
            with ctx.sessions() as session:
                jobs.extend_leases(session, waiting, owner, settings.lease_s)
        for model in sorted(buffers):
            if buffers[model]:
                out.batches += await _open(ctx, model, buffers[model], owner, worker)
                buffers[model] = []
    finally:
        unsent = [line.job_id for lines in buffers.values() for line in lines]
        if unsent:
            with ctx.sessions() as session:
                jobs.release(session, unsent, owner, attempt_counted=True)
    return out
