"""The run: claim -> render -> plan -> call -> record, streaming chunk by chunk.

Start reading here. ``run_batch`` claims jobs in chunks with a lease, renders each for its
profile, plans each chunk for prompt-cache hits, sends the requests concurrently at the rate
limit through the client stack (response cache -> limiter -> retry -> API), and records every
result as it arrives in its own short transaction. A stop (SIGINT/SIGTERM, or ``stop()``)
ends claiming, lets in-flight calls finish, and hands unsent jobs back to the queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pipeline.budget import Budget, worst_case_cost
from pipeline.chains import ChainedRequest, follow_parents, followers_of
from pipeline.client.responses import Outcome, ResponsesClient
from pipeline.db import jobs
from pipeline.db.generations import record_generation
from pipeline.db.queries import output_history
from pipeline.db.runs import RunTotals, close_run, open_run
from pipeline.errors import PermanentAPIError
from pipeline.execution import Dispatcher
from pipeline.modes import for_mode
from pipeline.pacing import KEY_RPM, Pacer, paced_rpm
from pipeline.planning import Plan, PlannedRequest, choose_layouts, forecast, plan
from pipeline.planning.shape import cache_fields, request_key
from pipeline.prewarming import prewarm_generation
from pipeline.profiles import Profile
from pipeline.progress import Progress
from pipeline.recording import Verdict, failure, judge
from pipeline.rendering import render_jobs
from pipeline.requests import Layout, RenderedRequest
from pipeline.runconfig import Config, load_config, runnable_tasks
from pipeline.settings import Settings
from pipeline.wiring import ClientStack, build_client_stack

log = logging.getLogger("contentgen.run")
DEFAULT_PLANNED_RPM = 600.0
BURST_FACTOR = 2.0
HISTORY_WEIGHT = 20


@dataclass(frozen=True)
class RunOptions:
    """What to run: which jobs, how hard, and how the run is labelled."""

    limit: int | None = None
    tasks: tuple[str, ...] | None = None
    batch_label: str | None = None
    concurrency: int | None = None
    kind: str = "cli"
    trigger: str = "cli"
    flow_run_id: str | None = None
    parameters: dict[str, Any] | None = None
    budget_usd: Decimal | None = None
    chunk_size: int | None = None
    mode: str = "realtime"  # realtime | flex (batch and auto: pipeline.batchmode.dispatch)
    # Finish within this many hours instead of as fast as the limit allows: fewer cache keys,
    # fewer cold misses (pipeline.pacing). None: unpaced.
    pace_h: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """The outcome of a run, read back from the database."""

    run_id: int
    state: str
    stop_reason: str | None
    totals: RunTotals
    claimed: int
    released: int
    lost_leases: int
    wall_s: float
    expected_cached_ratio: float
    prewarms: int = 0
    paced_rpm: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON output and Prefect results."""
        t = self.totals
        return {
            "run_id": self.run_id,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "requests": t.requests,
            "succeeded": t.succeeded,
            "failed": t.failed,
            "incomplete": t.incomplete,
            "from_cache": t.from_cache,
            "input_tokens": t.input_tokens,
            "cached_tokens": t.cached_tokens,
            "cache_write_tokens": t.cache_write_tokens,
            "output_tokens": t.output_tokens,
            "reasoning_tokens": t.reasoning_tokens,
            "cached_ratio": round(t.cached_ratio, 4),
            "expected_cached_ratio": round(self.expected_cached_ratio, 4),
            "cost_usd": str(t.cost_usd),
            "list_cost_usd": str(t.list_cost_usd),
            "claimed": self.claimed,
            "released": self.released,
            "lost_leases": self.lost_leases,
            "prewarms": self.prewarms,
            "paced_rpm": self.paced_rpm,
            "wall_s": round(self.wall_s, 2),
        }


def _owner(run_id: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:run{run_id}"


@dataclass
class _RunState:
    run_id: int
    owner: str
    held: set[int] = field(default_factory=set)
    claimed: int = 0
    released: int = 0
    lost_leases: int = 0
    layouts: dict[str, Layout] | None = None
    warm: frozenset[str] = frozenset()
    expected_cached: int = 0
    prompt_tokens: int = 0
    forecast_usd: Decimal = Decimal(0)
    stop_reason: str | None = None
    prewarms: int = 0
    # Expected output tokens per (task, model): recent history, then this run's own means.
    outputs: dict[tuple[str, str], float] = field(default_factory=dict)
    output_counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def learn_output(self, task: str, model: str, tokens: int) -> None:
        """Fold one answer's output tokens into the running mean of its (task, model)."""
        key = (task, model)
        n = self.output_counts.get(key, 0)
        mean = self.outputs.get(key, 0.0) if n else 0.0
        self.outputs[key] = mean + (tokens - mean) / (n + 1)
        self.output_counts[key] = n + 1


class Runner:
    """One run over the queue; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        *,
        config: Config,
        stack: ClientStack,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.config = config
        self.stack = stack
        self.client: ResponsesClient = stack.client
        self.progress = Progress(limit_tpm=settings.tpm_limit)
        self._on_progress = progress
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="contentgen-db")
        self._stop = asyncio.Event()
        concurrency = options.concurrency or settings.concurrency
        self._dispatcher: Dispatcher[PlannedRequest] = Dispatcher(
            self._send, concurrency=concurrency
        )
        self._state: _RunState | None = None
        self._followers: dict[str, tuple[str, ...]] = followers_of(config.profiles)
        self.budget = None if options.budget_usd is None else Budget(options.budget_usd)
        self._settled = asyncio.Event()
        self._paced_rpm: float | None = None
        self._key_pacers: dict[str, Pacer] = {}

    def stop(self, reason: str = "stopped") -> None:
        """Stop claiming and sending; in-flight calls finish, unsent jobs are released."""
        if self._state is not None and self._state.stop_reason is None:
            self._state.stop_reason = reason
        self._stop.set()
        self._dispatcher.stop()

    async def _db_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    # -- claiming, rendering, planning -------------------------------------------------

    def _claim(self, n: int) -> list[jobs.ClaimedJob]:
        with self.config.sessions() as session:
            return jobs.claim(
                session,
                self._st.owner,
                n,
                lease_s=self.settings.lease_s,
                tasks=runnable_tasks(self.options.tasks, self.config.profiles),
                batch_label=self.options.batch_label,
            )

    @property
    def _st(self) -> _RunState:
        assert self._state is not None
        return self._state

    def _planned_rpm(self, requests: list[RenderedRequest]) -> float:
        """The send rate the plan can expect: the tightest model's RPM or TPM over request size
        (the paced rate when the run is paced)."""
        if self._paced_rpm is not None:
            return self._paced_rpm
        rates = []
        for model in {r.model for r in requests}:
            rpm, tpm = self.stack.limiter.limits(model)
            rate = float(rpm or DEFAULT_PLANNED_RPM)
            sizes = [r.estimated_tokens for r in requests if r.model == model]
            if tpm:
                rate = min(rate, tpm / max(sum(sizes) / len(sizes), 1.0))
            rates.append(rate)
        # The limiter starts with a full minute's allowance, so the first minute can carry up
        # to twice the steady rate: size the cache-key buckets for that peak, or they overflow.
        return BURST_FACTOR * (sum(rates) if rates else DEFAULT_PLANNED_RPM)

    def _render_chunk(self, claimed: list[jobs.ClaimedJob]) -> tuple[list[RenderedRequest], Plan]:
        profiles = for_mode(self.config.profiles, self.config.prices, self.options.mode)
        st = self._st
        policies = self.config.policies
        if st.layouts is None:
            st.layouts = choose_layouts(claimed, profiles, policies=policies)
        requests, chained = self._render_jobs(claimed, profiles, st.layouts)
        chunk_plan = plan(
            requests,
            planned_rpm=self._planned_rpm(requests),
            warm=st.warm,
            # Followers reuse their parent's key later, so a chunk's keys carry more than its
            # own requests: size buckets by rate then too.
            expect_more=bool(self._followers)
            or len(claimed) >= (self.options.chunk_size or self.settings.claim_chunk),
            policies=policies,
            machines=self.settings.cache_machines,
        )
        if chained:
            explicit = frozenset(m for m, p in policies.items() if p.explicit)
            chunk_plan = follow_parents(chunk_plan, chained, explicit)
        st.warm = st.warm | chunk_plan.warmed
        st.expected_cached += chunk_plan.expected_cached_tokens
        st.prompt_tokens += chunk_plan.prompt_tokens
        st.forecast_usd += forecast(chunk_plan, self.config.prices, history=st.outputs).cost_usd
        return requests, chunk_plan

    def _render_jobs(
        self,
        claimed: list[jobs.ClaimedJob],
        profiles: dict[str, Profile],
        layouts: dict[str, Layout],
    ) -> tuple[list[RenderedRequest], dict[int, ChainedRequest]]:
        """Render each job; a chained task becomes the next turn after its parent's output."""
        return render_jobs(
            self.config.sessions, claimed, profiles, lambda _job, task: layouts[task]
        )

    async def _feed(self) -> None:
        """Claim, render and plan chunks while the dispatcher runs low, until the queue is empty."""
        st = self._st
        chunk = self.options.chunk_size or self.settings.claim_chunk
        remaining = self.options.limit
        low_water = max(self._dispatcher_concurrency * 2, chunk // 2)
        try:
            while not self._stop.is_set():
                if self._dispatcher.pending > low_water:
                    await asyncio.sleep(0.02)
                    continue
                n = chunk if remaining is None else min(chunk, remaining)
                if n <= 0:
                    break
                claimed: list[jobs.ClaimedJob] = await self._db_call(self._claim, n)
                if not claimed:
                    if self._followers and (self._dispatcher.in_flight or self._dispatcher.pending):
                        # A parent still running may queue its followers when it finishes.
                        await asyncio.sleep(0.05)
                        continue
                    break
                st.held.update(job.id for job in claimed)
                st.claimed += len(claimed)
                if remaining is not None:
                    remaining -= len(claimed)
                self.progress.queued_seen(len(claimed))
                requests, chunk_plan = await asyncio.to_thread(self._render_chunk, claimed)
                if self._stop.is_set():
                    await self._release([r.job_id for r in requests])
                    break
                self._dispatcher.add(
                    list(chunk_plan.requests), [p.wait_for for p in chunk_plan.requests]
                )
        finally:
            self._dispatcher.close()

    @property
    def _dispatcher_concurrency(self) -> int:
        return self.options.concurrency or self.settings.concurrency

    # -- sending and recording -----------------------------------------------------------

    async def _reserve(self, amount: Decimal) -> bool:
        """Reserve ``amount`` of the budget, waiting while in-flight reservations may free room.

        Worst cases are reserved, and actual costs are usually far lower, so a request that does
        not fit now may fit once in-flight ones settle; give up only when nothing is reserved.
        """
        assert self.budget is not None
        while not self.budget.reserve(amount):
            if self.budget.reserved_usd <= 0 or self._stop.is_set():
                return False
            self._settled.clear()
            await self._settled.wait()
        return True

    def _body(self, planned: PlannedRequest) -> tuple[dict[str, Any], str | None]:
        """The request body with its model's prompt-cache fields, and the key it carries."""
        request = planned.request
        policy = self.config.policies.get(request.model) or self.config.prices.policy(request.model)
        key = request_key(planned, policy, self._st.run_id, self.options.batch_label)
        return request.body(prompt_cache_key=key, cache=cache_fields(planned, policy)), key

    async def _send(self, planned: PlannedRequest) -> None:
        if planned.prewarm:
            await self._prewarm(planned)
            return
        request = planned.request
        profile = request.profile
        body, key = self._body(planned)
        planned = replace(planned, cache_key=key)
        if self._paced_rpm is not None and planned.bucket is not None and key is not None:
            # Each routing key at its own steady rate: a burst released by a primer must not
            # push one key past what its cache machine takes.
            pacer = self._key_pacers.get(key)
            if pacer is None:
                pacer = self._key_pacers[key] = Pacer(KEY_RPM)
            await pacer.wait()
            if self._stop.is_set():
                return  # not sent: the job stays held and is released at the end
        reserved = Decimal(0)
        if self.budget is not None:
            reserved = worst_case_cost(request, self.config.prices)
            if not await self._reserve(reserved):
                # Not sent: the job stays held and is released to the queue at the end.
                self.stop("budget")
                return
        self.progress.started()
        outcome: Outcome = await self.client.generate(
            body,
            estimated_tokens=request.estimated_tokens,
            stream=profile.stream,
            cache_enabled=profile.cache.enabled,
            cache_ttl_s=profile.cache.ttl_s,
            job_id=request.job_id,
        )
        verdict = self._judge(planned, outcome)
        if self.budget is not None:
            self.budget.settle(reserved, verdict.generation.cost_usd)
            self._settled.set()
        await self._db_call(self._record, verdict)
        g = verdict.generation
        if g.status in ("completed", "incomplete") and not g.from_cache:
            self._st.learn_output(request.task, request.model, g.output_tokens or 0)
        self.progress.finished(verdict.generation, verdict.succeeded)
        self._emit()

    async def _prewarm(self, planned: PlannedRequest) -> None:
        """Send a prewarm and record what it cost; its group's requests wait for it."""
        body, key = self._body(planned)
        reserved = Decimal(0)
        if self.budget is not None:
            reserved = worst_case_cost(planned.request, self.config.prices)
            if not await self._reserve(reserved):
                self.stop("budget")
                return
        outcome: Outcome = await self.client.generate(
            body,
            estimated_tokens=planned.prompt_tokens,
            stream=False,
            cache_enabled=False,
            cache_ttl_s=None,
            job_id=planned.request.job_id,
        )
        if outcome.result is None:
            log.warning("prewarm for group %s failed: %s", planned.group, outcome.error)
        generation = prewarm_generation(
            planned.request,
            outcome.result,
            run_id=self._st.run_id,
            prices=self.config.prices,
            cache_key=key,
            attempts=outcome.attempts,
            error=None
            if outcome.error is None
            else f"{type(outcome.error).__name__}: {outcome.error}",
        )
        if self.budget is not None:
            self.budget.settle(reserved, generation.cost_usd)
            self._settled.set()

        def store() -> None:
            with self.config.sessions() as session:
                record_generation(session, generation)

        await self._db_call(store)
        self._st.prewarms += 1
        self.progress.billed(generation)

    def _judge(self, planned: PlannedRequest, outcome: Outcome) -> Verdict:
        request = planned.request
        if outcome.result is not None:
            return judge(
                request,
                outcome.result,
                run_id=self._st.run_id,
                prices=self.config.prices,
                attempts=outcome.attempts,
                from_cache=outcome.from_cache,
                cache_key=planned.cache_key,
            )
        error = outcome.error
        permanent = isinstance(error, PermanentAPIError)
        return failure(
            request,
            f"{type(error).__name__}: {error}",
            run_id=self._st.run_id,
            attempts=outcome.attempts,
            cache_key=planned.cache_key,
            permanent=permanent,
        )

    def _record(self, verdict: Verdict) -> None:
        st = self._st
        g = verdict.generation
        with self.config.sessions() as session:
            followers = self._followers.get(g.task, ())
            if verdict.succeeded:
                held = jobs.complete(
                    session,
                    g.job_id,
                    st.owner,
                    g,
                    article_id=verdict.article_id,
                    followers=followers,
                )
            else:
                if followers and verdict.article_id is not None:
                    jobs.hold_followers(
                        session,
                        verdict.article_id,
                        followers,
                        f"{g.task} {g.status}: {verdict.error or 'failed'}",
                    )
                state = jobs.fail(
                    session,
                    g.job_id,
                    st.owner,
                    verdict.error or "failed",
                    generation=g,
                    max_attempts=self.settings.max_attempts,
                    permanent=verdict.permanent,
                )
                held = state != "lost"
        st.held.discard(g.job_id)
        if not held:
            st.lost_leases += 1
            log.warning("job %s: lease lost before its result was recorded", g.job_id)

    async def _release(self, job_ids: list[int]) -> None:
        if not job_ids:
            return

        def release() -> int:
            with self.config.sessions() as session:
                return jobs.release(session, job_ids, self._st.owner)

        released: int = await self._db_call(release)
        self._st.released += released
        self._st.held.difference_update(job_ids)

    async def _heartbeat(self) -> None:
        """Keep the leases of jobs we hold from expiring during a long run."""
        interval = max(self.settings.lease_s / 3, 1.0)
        while True:
            await asyncio.sleep(interval)
            held = sorted(self._st.held)

            def extend(ids: list[int] = held) -> int:
                with self.config.sessions() as session:
                    return jobs.extend_leases(session, ids, self._st.owner, self.settings.lease_s)

            await self._db_call(extend)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._emit()

    def _emit(self) -> None:
        if self._on_progress is not None:
            self.progress.in_flight = self._dispatcher.in_flight
            self.progress.limiter = self.stack.limiter.stats()
            self._on_progress(self.progress)

    def _pace_rate(self, within_h: float) -> float:
        with self.config.sessions() as session:
            queued = jobs.queued_count(
                session,
                tasks=runnable_tasks(self.options.tasks, self.config.profiles),
                batch_label=self.options.batch_label,
            )
        if self.options.limit is not None:
            queued = min(queued, self.options.limit)
        rate = paced_rpm(queued, within_h)
        log.info(
            "pacing %d jobs to %.0f requests/min (%.0f per cache key) to finish within %.2f h",
            queued,
            rate,
            KEY_RPM,
            within_h,
        )
        return rate

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Execute the run and return its summary (read back from the database)."""
        started = time.monotonic()
        with self.config.sessions() as session:
            requeued = jobs.requeue_expired(session, max_attempts=self.settings.max_attempts)
            follows = {t: p.follows for t, p in self.config.profiles.items() if p.follows}
            if follows:
                jobs.release_ready_followers(session, follows)
            if requeued:
                log.info("returned %d jobs with expired leases to the queue", requeued)
            run_id = open_run(
                session,
                kind=self.options.kind,
                trigger=self.options.trigger,
                mode=self.options.mode,
                flow_run_id=self.options.flow_run_id,
                batch_label=self.options.batch_label,
                parameters=self.options.parameters,
                budget_usd=self.options.budget_usd,
                worker=socket.gethostname(),
            )
        self._state = _RunState(run_id=run_id, owner=_owner(run_id))
        with self.config.sessions() as session:
            history = output_history(session)
        # Recent history weighs as this many answers of this run.
        self._state.outputs = dict(history)
        self._state.output_counts = dict.fromkeys(history, HISTORY_WEIGHT)
        if self.options.pace_h:
            self._paced_rpm = await self._db_call(self._pace_rate, self.options.pace_h)
        background = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._tick()),
        ]
        feeder = asyncio.create_task(self._feed())
        failure: BaseException | None = None
        try:
            try:
                await self._dispatcher.run()
            except Exception as exc:  # a bug in sending or recording: stop, keep the cause
                failure = exc
            finally:
                # Never cancel the feeder: a claim it has started still commits in the DB
                # thread. It checks the stop flag itself; once it is done and in-flight calls
                # have finished, the jobs still held are exactly those without a result
                # (unsent, refused by the budget, claimed during the stop): release them all.
                self._stop.set()
                self._dispatcher.stop()
                (fed,) = await asyncio.gather(feeder, return_exceptions=True)
                if isinstance(fed, Exception) and failure is None:
                    failure = fed
                self._dispatcher.take_unsent()
                await self._release(sorted(self._st.held))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            st = self._st
            if failure is not None:
                state = "failed"
                st.stop_reason = f"error: {type(failure).__name__}"[:64]
            else:
                state = "stopped" if st.stop_reason else "finished"
            expected_ratio = st.expected_cached / st.prompt_tokens if st.prompt_tokens else 0.0

            def finish() -> RunTotals:
                with self.config.sessions() as session:
                    return close_run(
                        session,
                        run_id,
                        state=state,
                        stop_reason=st.stop_reason,
                        forecast_cached_ratio=expected_ratio,
                        forecast_cost_usd=st.forecast_usd,
                    )

            totals: RunTotals = await self._db_call(finish)
            self._db.shutdown(wait=True)
            await self.stack.aclose()
        if failure is not None:
            raise failure
        self._emit()
        return RunSummary(
            run_id=run_id,
            state=state,
            stop_reason=st.stop_reason,
            totals=totals,
            claimed=st.claimed,
            released=st.released,
            lost_leases=st.lost_leases,
            wall_s=time.monotonic() - started,
            expected_cached_ratio=expected_ratio,
            prewarms=st.prewarms,
            paced_rpm=self._paced_rpm,
        )


async def run_batch_async(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    stack: ClientStack | None = None,
    progress: Callable[[Progress], None] | None = None,
    on_runner: Callable[[Runner], None] | None = None,
) -> RunSummary:
    """Run the pipeline once over the queue (see ``Runner``); the async entry point."""
    options = options or RunOptions()
    config = load_config(settings)
    if options.concurrency is not None:
        settings = settings.model_copy(update={"concurrency": options.concurrency})
    stack = stack or build_client_stack(settings)
    runner = Runner(settings, options, config=config, stack=stack, progress=progress)
    if on_runner is not None:
        on_runner(runner)
    return await runner.run()


def run_batch(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    progress: Callable[[Progress], None] | None = None,
    handle_signals: bool = False,
) -> RunSummary:
    """Run the pipeline once over the queue; the synchronous entry point for CLI and flows.

    With ``handle_signals`` SIGINT/SIGTERM stop the run cleanly (finish in-flight calls,
    release unsent jobs) instead of killing it.
    """

    async def main() -> RunSummary:
        def install(runner: Runner) -> None:
            if not handle_signals:
                return
            import signal

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runner.stop, f"signal {sig.name}")

        return await run_batch_async(
            settings, replace(options or RunOptions()), progress=progress, on_runner=install
        )

    return asyncio.run(main())
