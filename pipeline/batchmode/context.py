"""What every step of batch mode shares, and rendering a batch's requests (again).

A batch's requests are rendered exactly as realtime mode renders them (same profiles, layouts,
planner order and ``prompt_cache_key``s; a chained task as the next turn after its parent's
output), minus ``service_tier``. The items store each request's layout and cache key, so a
request can be rendered again byte for byte after a restart: to judge its result, or to
re-submit it in a split.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from pipeline.batchmode.files import Line, batch_line
from pipeline.batchmode.items import Item, job_rows
from pipeline.batchmode.remote import BatchAPI
from pipeline.db import ClaimedJob
from pipeline.money import PriceTable, PromptCachePolicy
from pipeline.planning import fields_for, for_mode, static_breakpoints
from pipeline.prompts import ChainedRequest, Layout, Profile, RenderedRequest
from pipeline.run import DEFAULT_PLANNED_RPM
from pipeline.run import render_jobs as shared_render_jobs
from pipeline.settings import Settings

log = logging.getLogger("contentgen.batch")


@dataclass
class BatchContext:
    """Settings, config, database, the Batch API and the run that records results."""

    settings: Settings
    profiles: dict[str, Profile]
    prices: PriceTable
    sessions: sessionmaker[Session]
    api: BatchAPI
    run_id: int
    sleep: Callable[[float], Awaitable[None]]
    counts: dict[str, int] = field(default_factory=dict)
    # Chained jobs may be queued as parents are recorded (``run.expects_followers``): submit
    # in rounds, and plan keys for the followers to come.
    chained: bool = True

    @classmethod
    def batch_profiles(cls, profiles: dict[str, Profile], prices: PriceTable) -> dict[str, Profile]:
        """The profiles as batch mode sends them (no ``service_tier``)."""
        return for_mode(profiles, prices, "batch")

    def count(self, name: str, n: int = 1) -> None:
        """Add to one of the run's counters (submitted, recorded, requeued...)."""
        self.counts[name] = self.counts.get(name, 0) + n


# A batch is planned for the busiest minute a realtime run of it could have: the limiter's
# full bucket plus a minute's refill.
BURST_FACTOR = 2.0


def planned_rpm(settings: Settings, requests: Sequence[RenderedRequest]) -> float:
    """The rate a batch's ``prompt_cache_key``s are sized for: the configured limits' steady
    rate times ``BURST_FACTOR`` (no key book: a batch's requests are not sent over time)."""
    rates = []
    for model in {r.model for r in requests}:
        rate = float(settings.rpm_limit or DEFAULT_PLANNED_RPM)
        sizes = [r.estimated_tokens for r in requests if r.model == model]
        if settings.tpm_limit:
            rate = min(rate, settings.tpm_limit / max(sum(sizes) / len(sizes), 1.0))
        rates.append(rate)
    return BURST_FACTOR * (sum(rates) if rates else DEFAULT_PLANNED_RPM)


def line_of(
    request: RenderedRequest,
    cid: str,
    attempt: int,
    cache_key: str | None,
    policy: PromptCachePolicy | None = None,
) -> Line:
    """A request as a batch input line.

    On a breakpoint model (GPT-5.6+) the line is in explicit mode with one breakpoint after
    its static part (``planning.shape.static_breakpoints``): the same line whenever it is
    rendered, and never a paid write of per-article text.
    """
    cache = None
    if policy is not None:
        cache = fields_for(request, policy, static_breakpoints(request, policy))
    body = request.body(prompt_cache_key=cache_key, cache=cache)
    return Line(
        custom_id=cid,
        job_id=request.job_id,
        attempt=attempt,
        task=request.task,
        layout=request.layout,
        cache_key=cache_key,
        data=batch_line(cid, body),
        profile_version=request.profile.version,
    )


def render_jobs(
    ctx: BatchContext, claimed: Sequence[ClaimedJob], layout_of: Callable[[ClaimedJob], Layout]
) -> tuple[list[RenderedRequest], dict[int, ChainedRequest]]:
    """Render jobs exactly as the runner does (``pipeline.run.rendering.render_jobs``).

    ``layout_of`` gives a job's layout (for a chained job: its parent's), used for every step.
    """
    return shared_render_jobs(
        ctx.sessions, claimed, ctx.profiles, lambda job, _task: layout_of(job)
    )


def rerender(ctx: BatchContext, items: Sequence[Item]) -> dict[str, RenderedRequest]:
    """The requests of ``items`` by ``custom_id``, rendered as they were sent."""
    with ctx.sessions() as session:
        claimed = job_rows(session, [item.job_id for item in items])
    layouts: dict[int, Layout] = {}
    jobs_by_cid: dict[str, ClaimedJob] = {}
    for item in items:
        job = claimed.get(item.job_id)
        if job is None or item.task not in ctx.profiles:
            continue  # the job was deleted, or its profile removed: the item is requeued
        layouts[job.id] = (
            "article_first" if item.layout == "article_first" else "instructions_first"
        )
        jobs_by_cid[item.custom_id] = job
    rendered, _ = render_jobs(ctx, list(jobs_by_cid.values()), lambda job: layouts[job.id])
    by_job = {r.job_id: r for r in rendered}
    return {cid: by_job[job.id] for cid, job in jobs_by_cid.items()}


def lines_of(ctx: BatchContext, items: Sequence[Item]) -> list[Line]:
    """The input lines of ``items``, in order (for a resumed upload or a split)."""
    requests = rerender(ctx, items)
    return [
        line_of(
            requests[item.custom_id],
            item.custom_id,
            item.attempt,
            item.cache_key,
            ctx.prices.policy(requests[item.custom_id].model),
        )
        for item in items
        if item.custom_id in requests
    ]
