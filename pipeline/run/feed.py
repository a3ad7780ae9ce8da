"""The feed of a run: claim a chunk, render it, plan it, hand it to the dispatcher; repeat.

Claims are small (a chunk is a few times the concurrency), so the queue is shared fairly with
other runners and a stop hands little back. Each chunk is planned for the prompt cache on the
run's ``KeyBook``: articles go to cache keys by the rate each key will really carry in any
minute of the run, as the limiter will send it (a first minute with the full bucket's burst,
then the steady rate; a paced run at its pace), so a small run gets no more keys than it needs
and a fast one no key past what it takes. The forecast of each request is kept, so the live
projection prices the jobs not done yet by their plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal

from pipeline.db import Claim, ClaimedJob, jobs, queue, utcnow
from pipeline.errors import DatabaseError
from pipeline.planning import (
    KeyBook,
    Plan,
    SendSchedule,
    choose_layouts,
    follow_parents,
    for_mode,
    forecast_costs,
    plan,
)
from pipeline.prompts import ChainedRequest, Layout, Profile, RenderedRequest
from pipeline.run.config import runnable_tasks
from pipeline.run.context import RunContext
from pipeline.run.rendering import render_jobs

log = logging.getLogger("contentgen.run")
DEFAULT_PLANNED_RPM = 600.0


class Feed:
    """Claims, renders and plans chunks while the dispatcher runs low (see the module doc)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def claim(self, n: int) -> Claim:
        """Claim up to ``n`` queued jobs for this run (on the database thread)."""
        ctx = self.ctx
        with ctx.config.sessions() as session:
            return jobs.claim_leases(
                session,
                ctx.st.owner,
                n,
                lease_s=ctx.settings.lease_s,
                tasks=runnable_tasks(ctx.options.tasks, ctx.config.profiles),
                batch_label=ctx.options.batch_label,
            )

    def next_due_s(self) -> float | None:
        """Seconds until the next queued job held back by ``not_before`` (``jobs requeue
        --stagger``) may be claimed; None when no job waits for a time."""
        ctx = self.ctx
        with ctx.config.sessions() as session:
            at = queue.next_not_before(
                session,
                tasks=runnable_tasks(ctx.options.tasks, ctx.config.profiles),
                batch_label=ctx.options.batch_label,
            )
        return None if at is None else max(0.0, (at - utcnow()).total_seconds())

    def planned_rpm(self, requests: list[RenderedRequest]) -> float:
        """The steady send rate the plan can expect: per model its RPM or TPM over request
        size as the server counts it (the learnt factor), summed; the pace when paced."""
        if self.ctx.paced_rpm is not None:
            return self.ctx.paced_rpm
        rates = []
        for model in {r.model for r in requests}:
            rpm, tpm = self.ctx.stack.limiter.limits(model)
            rate = float(rpm or DEFAULT_PLANNED_RPM)
            sizes = [r.estimated_tokens for r in requests if r.model == model]
            if tpm:
                factor = self.ctx.stack.limiter.for_model(model).token_factor
                rate = min(rate, tpm / max(factor * sum(sizes) / len(sizes), 1.0))
            rates.append(rate)
        return sum(rates) if rates else DEFAULT_PLANNED_RPM

    def key_book(self, requests: list[RenderedRequest]) -> KeyBook:
        """The run's key book, made with the first chunk: the limiter starts with a full
        minute's allowance, so the first minute may carry a burst of one more minute's worth
        (a paced run has none); keys start at the rates learnt on this account."""
        st = self.ctx.st
        if st.book is None:
            steady = self.planned_rpm(requests)
            burst = 0.0 if self.ctx.paced_rpm is not None else steady
            policies = self.ctx.config.policies
            st.book = KeyBook(
                SendSchedule(steady, burst),
                ceilings={m: p.key_rpm for m, p in policies.items()},
                rates=st.key_rates,
                recent=st.recent_keys,
                now=time.monotonic(),
            )
        return st.book

    def render_chunk(self, claimed: list[ClaimedJob]) -> tuple[list[RenderedRequest], Plan]:
        """Render and plan one claimed chunk; the plan's expectations add to the run's."""
        ctx = self.ctx
        profiles = for_mode(ctx.config.profiles, ctx.config.prices, ctx.options.mode)
        st = ctx.st
        policies = ctx.config.policies
        if st.layouts is None:
            st.layouts = choose_layouts(claimed, profiles, policies=policies)
        requests, chained = self._render_jobs(claimed, profiles, st.layouts)
        book = self.key_book(requests) if requests else None
        chunk_plan = plan(
            requests,
            planned_rpm=self.planned_rpm(requests) if requests else DEFAULT_PLANNED_RPM,
            warm=st.warm,
            policies=policies,
            machines=ctx.settings.cache_machines,
            book=book,
        )
        if chained:
            explicit = frozenset(m for m, p in policies.items() if p.explicit)
            chunk_plan = follow_parents(chunk_plan, chained, explicit)
        st.warm = st.warm | chunk_plan.warmed
        st.expected_cached += chunk_plan.expected_cached_tokens
        st.prompt_tokens += chunk_plan.prompt_tokens
        costs = forecast_costs(chunk_plan, ctx.config.prices, history=st.outputs, bills=st.bills)
        st.forecast_usd += sum(costs.values(), Decimal(0))
        ctx.progress.planned(costs, sum(r.estimated_tokens for r in requests))
        return requests, chunk_plan

    def _render_jobs(
        self,
        claimed: list[ClaimedJob],
        profiles: dict[str, Profile],
        layouts: dict[str, Layout],
    ) -> tuple[list[RenderedRequest], dict[int, ChainedRequest]]:
        """Render each job; a chained task becomes the next turn after its parent's output."""
        return render_jobs(
            self.ctx.config.sessions, claimed, profiles, lambda _job, task: layouts[task]
        )

    async def run(self) -> None:
        """Claim, render and plan chunks while the dispatcher runs low, until the queue is empty."""
        ctx = self.ctx
        st = ctx.st
        dispatcher = ctx.dispatcher
        chunk = ctx.chunk_size
        remaining = ctx.options.limit
        low_water = max(ctx.concurrency * 2, chunk // 2)
        try:
            while not ctx.stop_event.is_set():
                if dispatcher.pending > low_water:
                    await asyncio.sleep(0.02)
                    continue
                n = chunk if remaining is None else min(chunk, remaining)
                if n <= 0:
                    break
                # Looked at before claiming: a result committed while the claim runs may have
                # sent its job (or its followers) back to the queue after the claim looked.
                more_may_come = ctx.recorder_().busy or bool(
                    ctx.chained and (dispatcher.in_flight or dispatcher.pending)
                )
                try:
                    claim: Claim = await ctx.db_call(self.claim, n)
                except DatabaseError as exc:
                    ctx.db_down(exc)
                    break
                claimed = claim.jobs
                st.tokens.update(claim.tokens)  # each result is fenced by its claim's token
                st.suspects |= claim.suspects
                if not claimed:
                    if more_may_come:
                        # A result being recorded may send its job back to the queue, and a
                        # parent still running may queue its followers when it finishes.
                        await asyncio.sleep(0.05)
                        continue
                    # A staggered requeue: wait for the next job's time (a stop ends the wait).
                    try:
                        wait_s = await ctx.db_call(self.next_due_s)
                    except DatabaseError as exc:
                        ctx.db_down(exc)
                        break
                    if wait_s is None:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ctx.stop_event.wait(), min(wait_s + 0.05, 5.0))
                    continue
                st.held.update(job.id for job in claimed)
                ctx.budgets.note(claimed)
                st.claimed += len(claimed)
                if remaining is not None:
                    remaining -= len(claimed)
                ctx.progress.queued_seen(len(claimed))
                requests, chunk_plan = await asyncio.to_thread(self.render_chunk, claimed)
                if ctx.shared is not None and ctx.shared.want(r.model for r in requests):
                    await ctx.shared.join()  # a new model: take our share before sending
                if ctx.stop_event.is_set():
                    await ctx.release([r.job_id for r in requests])
                    break
                dispatcher.add(list(chunk_plan.requests), [p.wait_for for p in chunk_plan.requests])
        finally:
            ctx.feeding = False
            dispatcher.close()

    def queued_jobs(self) -> int:
        """The jobs this run would take if nothing else took them (the limit applied)."""
        ctx = self.ctx
        with ctx.config.sessions() as session:
            queued = queue.queued_count(
                session,
                tasks=runnable_tasks(ctx.options.tasks, ctx.config.profiles),
                batch_label=ctx.options.batch_label,
            )
        return queued if ctx.options.limit is None else min(queued, ctx.options.limit)


def pace_rate(queued: int, rate: float, why: str) -> float:
    """The paced send rate of ``queued`` jobs (and says so)."""
    log.info("pacing %d jobs to %.0f requests/min: %s", queued, rate, why)
    return rate
