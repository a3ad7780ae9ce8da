"""The feed of a run: claim a chunk, render it, plan it, hand it to the dispatcher; repeat.

Claims are small (a chunk is a few times the concurrency), so the queue is shared fairly with
other runners and a stop hands little back. Each chunk is planned for the prompt cache with
the send rate the limiter will allow, sized by the whole run (``run_scale``) so a small run
gets no more cache keys than it needs.
"""

from __future__ import annotations

import asyncio
import logging

from pipeline.db import Claim, ClaimedJob, jobs, queue
from pipeline.errors import DatabaseError
from pipeline.limits import KEY_RPM, paced_rpm
from pipeline.planning import Plan, choose_layouts, follow_parents, for_mode, forecast, plan
from pipeline.prompts import ChainedRequest, Layout, Profile, RenderedRequest
from pipeline.run.config import runnable_tasks
from pipeline.run.context import RunContext
from pipeline.run.rendering import render_jobs

log = logging.getLogger("contentgen.run")
DEFAULT_PLANNED_RPM = 600.0
BURST_FACTOR = 2.0


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

    def planned_rpm(self, requests: list[RenderedRequest]) -> float:
        """The send rate the plan can expect: the tightest model's RPM or TPM over request size
        (the paced rate when the run is paced)."""
        if self.ctx.paced_rpm is not None:
            return self.ctx.paced_rpm
        rates = []
        for model in {r.model for r in requests}:
            rpm, tpm = self.ctx.stack.limiter.limits(model)
            rate = float(rpm or DEFAULT_PLANNED_RPM)
            sizes = [r.estimated_tokens for r in requests if r.model == model]
            if tpm:
                rate = min(rate, tpm / max(sum(sizes) / len(sizes), 1.0))
            rates.append(rate)
        # The limiter starts with a full minute's allowance, so the first minute can carry up
        # to twice the steady rate: size the cache-key buckets for that peak, or they overflow.
        return BURST_FACTOR * (sum(rates) if rates else DEFAULT_PLANNED_RPM)

    def render_chunk(self, claimed: list[ClaimedJob]) -> tuple[list[RenderedRequest], Plan]:
        """Render and plan one claimed chunk; the plan's expectations add to the run's."""
        ctx = self.ctx
        profiles = for_mode(ctx.config.profiles, ctx.config.prices, ctx.options.mode)
        st = ctx.st
        policies = ctx.config.policies
        if st.layouts is None:
            st.layouts = choose_layouts(claimed, profiles, policies=policies)
        requests, chained = self._render_jobs(claimed, profiles, st.layouts)
        chunk_plan = plan(
            requests,
            planned_rpm=self.planned_rpm(requests),
            warm=st.warm,
            # Followers reuse their parent's key later, so a chunk's keys carry more than its
            # own requests: size buckets by rate then too.
            expect_more=bool(ctx.followers) or len(claimed) >= ctx.chunk_size,
            policies=policies,
            machines=ctx.settings.cache_machines,
            # A small run needs no more keys than its size calls for, however fast the account
            # is (each key is a cold miss). Sized by the whole run, so every chunk deals its
            # articles over the same keys and no key carries more than its share.
            run_scale=max(1.0, ctx.queued / max(len(claimed), 1)),
        )
        if chained:
            explicit = frozenset(m for m, p in policies.items() if p.explicit)
            chunk_plan = follow_parents(chunk_plan, chained, explicit)
        st.warm = st.warm | chunk_plan.warmed
        st.expected_cached += chunk_plan.expected_cached_tokens
        st.prompt_tokens += chunk_plan.prompt_tokens
        st.forecast_usd += forecast(chunk_plan, ctx.config.prices, history=st.outputs).cost_usd
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
                    ctx.followers and (dispatcher.in_flight or dispatcher.pending)
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
                    break
                st.held.update(job.id for job in claimed)
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


def pace_rate(queued: int, within_h: float) -> float:
    """The send rate that finishes ``queued`` jobs within ``within_h`` hours (and says so)."""
    rate = paced_rpm(queued, within_h)
    log.info(
        "pacing %d jobs to %.0f requests/min (%.0f per cache key) to finish within %.2f h",
        queued,
        rate,
        KEY_RPM,
        within_h,
    )
    return rate
