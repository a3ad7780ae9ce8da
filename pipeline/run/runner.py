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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pipeline.client.breaker import RunStopping
from pipeline.client.responses import Outcome, ResponsesClient
from pipeline.client.wiring import ClientStack, build_client_stack, cache_scope
from pipeline.db import jobs
from pipeline.db.outcomes import OutcomeRow, record_outcomes
from pipeline.db.procs import pid_alive
from pipeline.db.queries import output_history
from pipeline.db.runs import RunTotals, close_run, open_run
from pipeline.errors import DatabaseError, FatalAPIError, PermanentAPIError
from pipeline.limits.pacing import KEY_RPM, Pacer, paced_rpm
from pipeline.limits.share import LimitShare, account_key
from pipeline.limits.sync import SharedLimits
from pipeline.money.budget import Budget, worst_case_cost
from pipeline.planning import Plan, PlannedRequest, choose_layouts, forecast, plan
from pipeline.planning.modes import for_mode
from pipeline.planning.shape import cache_fields, request_key
from pipeline.prompts.chains import ChainedRequest, follow_parents, followers_of
from pipeline.prompts.profiles import Profile
from pipeline.prompts.requests import Layout, RenderedRequest
from pipeline.run.config import Config, load_config, runnable_tasks
from pipeline.run.dbthread import DatabaseThread
from pipeline.run.execution import Dispatcher
from pipeline.run.journal import Journal, journal_dir
from pipeline.run.prewarming import prewarm_generation
from pipeline.run.progress import Progress
from pipeline.run.recorder import Pending, Recorder
from pipeline.run.recording import Verdict, failure, judge
from pipeline.run.recovery import drain_journals, journal_entry
from pipeline.run.rendering import render_jobs
from pipeline.run.summary import RunOptions as RunOptions
from pipeline.run.summary import RunSummary as RunSummary
from pipeline.settings import Settings

log = logging.getLogger("contentgen.run")
DEFAULT_PLANNED_RPM = 600.0
BURST_FACTOR = 2.0
# After a stop, requests on the wire get this long to answer before they are cancelled.
STOP_GRACE_S = 10.0
HISTORY_WEIGHT = 20


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
    fatal: str | None = None
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
        self._db = DatabaseThread(outage_s=settings.db_outage_s)
        self._stop = asyncio.Event()
        concurrency = options.concurrency or settings.concurrency
        self._dispatcher: Dispatcher[PlannedRequest] = Dispatcher(
            self._send, concurrency=concurrency
        )
        self._state: _RunState | None = None
        self._followers: dict[str, tuple[str, ...]] = followers_of(config.profiles)
        self.budget = None if options.budget_usd is None else Budget(options.budget_usd)
        self.progress.budget_usd = options.budget_usd
        self._settled = asyncio.Event()
        self._paced_rpm: float | None = None
        self._queued = 0
        self._journal: Journal | None = None
        self._key_pacers: dict[str, Pacer] = {}
        self._recorder: Recorder | None = None
        self._shared: SharedLimits | None = None
        self._feeding = True

    def stop(self, reason: str = "stopped") -> None:
        """Stop claiming and sending; unsent jobs are released.

        Waits in the client (rate limiter, outage, retry backoff) end at once; requests on the
        wire get ``STOP_GRACE_S`` to answer, then they are cancelled and their jobs released.
        """
        if self._state is not None and self._state.stop_reason is None:
            self._state.stop_reason = reason
        first = not self._stop.is_set()
        self._stop.set()
        self._dispatcher.stop()
        self.client.stop()
        if first:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            loop.call_later(STOP_GRACE_S, self._dispatcher.cancel_in_flight)

    def _fatal(self, error: FatalAPIError) -> None:
        """An error no request can get past: stop the run, keep the cause for the summary."""
        st = self._st
        if st.fatal is None:
            st.fatal = f"{error}; {error.advice}"
            log.info("stopping: %s", st.fatal)
        self.stop(f"fatal {error.kind}")

    async def _db_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self._db.call(fn, *args, **kwargs)

    def _db_down(self, error: DatabaseError) -> None:
        """The database stayed away: stop the run with one line; nothing paid is lost."""
        st = self._st
        if st.fatal is None:
            st.fatal = str(error)
        self.stop("database unreachable")

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
            expect_more=bool(self._followers) or len(claimed) >= self._chunk_size,
            policies=policies,
            machines=self.settings.cache_machines,
            # A small run needs no more keys than its size calls for, however fast the account
            # is (each key is a cold miss). Sized by the whole run, so every chunk deals its
            # articles over the same keys and no key carries more than its share.
            run_scale=max(1.0, self._queued / max(len(claimed), 1)),
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
        chunk = self._chunk_size
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
                # Looked at before claiming: a result committed while the claim runs may have
                # sent its job (or its followers) back to the queue after the claim looked.
                more_may_come = self._recorder_().busy or bool(
                    self._followers and (self._dispatcher.in_flight or self._dispatcher.pending)
                )
                try:
                    claimed: list[jobs.ClaimedJob] = await self._db_call(self._claim, n)
                except DatabaseError as exc:
                    self._db_down(exc)
                    break
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
                self.progress.queued_seen(len(claimed))
                requests, chunk_plan = await asyncio.to_thread(self._render_chunk, claimed)
                if self._shared is not None and self._shared.want(r.model for r in requests):
                    await self._shared.join()  # a new model: take our share before sending
                if self._stop.is_set():
                    await self._release([r.job_id for r in requests])
                    break
                self._dispatcher.add(
                    list(chunk_plan.requests), [p.wait_for for p in chunk_plan.requests]
                )
        finally:
            self._feeding = False
            self._dispatcher.close()

    @property
    def _chunk_size(self) -> int:
        return self.options.chunk_size or self.settings.claim_chunk_for(
            self._dispatcher_concurrency
        )

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
        if self._unsent(outcome.error):
            if self.budget is not None:
                self.budget.settle(reserved, Decimal(0))
                self._settled.set()
            return  # not the job's fault: it stays held and is released untouched
        verdict = self._judge(planned, outcome)
        if self.budget is not None:
            self.budget.settle(reserved, verdict.generation.cost_usd)
            self._settled.set()
        paid = outcome.result is not None and not outcome.from_cache
        entry = self._journal_write(verdict) if paid else None
        g = verdict.generation
        self._recorder_().add(
            OutcomeRow(
                g,
                succeeded=verdict.succeeded,
                permanent=verdict.permanent,
                error=verdict.error,
                article_id=verdict.article_id,
                followers=self._followers.get(g.task, ()),
            ),
            entry,
        )
        if g.status in ("completed", "incomplete") and not g.from_cache:
            self._st.learn_output(request.task, request.model, g.output_tokens or 0)

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
        if self._unsent(outcome.error):
            if self.budget is not None:
                self.budget.settle(reserved, Decimal(0))
                self._settled.set()
            return
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
        entry = None
        if outcome.result is not None:
            entry = self._journal_write(
                Verdict(generation, succeeded=False, permanent=False, error=None)
            )
        self._recorder_().add(OutcomeRow(generation, succeeded=False, job_outcome=False), entry)

    def _unsent(self, error: BaseException | None) -> bool:
        """True when a request ended for a reason outside its job: a fatal error (the run
        stops) or the stop itself. Nothing is recorded and the job keeps its attempts."""
        if isinstance(error, FatalAPIError):
            self._fatal(error)
            return True
        return isinstance(error, RunStopping)

    def _journal_write(self, verdict: Verdict) -> str | None:
        if self._journal is None:
            return None
        g = verdict.generation
        return self._journal.write(journal_entry(verdict, self._followers.get(g.task, ())))

    def _journal_done(self, entry: str) -> None:
        if self._journal is not None:
            self._journal.done(entry)

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

    def _recorder_(self) -> Recorder:
        assert self._recorder is not None, "the run has not started"
        return self._recorder

    def _write_outcomes(self, outcomes: Sequence[OutcomeRow]) -> list[str | None]:
        with self.config.sessions() as session:
            return record_outcomes(
                session, self._st.owner, outcomes, max_attempts=self.settings.max_attempts
            )

    def _recorded(self, pending: Pending, state: str | None) -> None:
        """A committed outcome: its journal entry is done, its job no longer ours."""
        if pending.entry is not None:
            self._journal_done(pending.entry)
        st = self._st
        outcome = pending.outcome
        g = outcome.generation
        if not outcome.job_outcome:
            st.prewarms += 1
            self.progress.billed(g)
            return
        st.held.discard(g.job_id)
        if state == "lost":
            st.lost_leases += 1
            log.warning("job %s: lease lost before its result was recorded", g.job_id)
        self.progress.finished(g, outcome.succeeded)
        self._emit()

    async def _release(self, job_ids: list[int]) -> None:
        if not job_ids:
            return

        def release() -> int:
            with self.config.sessions() as session:
                return jobs.release(session, job_ids, self._st.owner)

        try:
            released: int = await self._db_call(release)
        except DatabaseError as exc:
            # Their leases stay: the next run on this machine takes them back at once.
            log.warning("could not hand %d jobs back: %s", len(job_ids), exc)
            return
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

            try:
                await self._db_call(extend)
            except DatabaseError as exc:
                self._db_down(exc)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._emit()

    def _emit(self) -> None:
        if self._on_progress is not None:
            self.progress.in_flight = self._dispatcher.in_flight
            self.progress.limiter = self.stack.limiter.stats()
            self.progress.stopping = None if self._state is None else self._state.stop_reason
            self._on_progress(self.progress)

    def _queued_jobs(self) -> int:
        """The jobs this run would take if nothing else took them (the limit applied)."""
        with self.config.sessions() as session:
            queued = jobs.queued_count(
                session,
                tasks=runnable_tasks(self.options.tasks, self.config.profiles),
                batch_label=self.options.batch_label,
            )
        return queued if self.options.limit is None else min(queued, self.options.limit)

    def _pace_rate(self, queued: int, within_h: float) -> float:
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
        recovered = await self._db_call(
            drain_journals,
            self.config.sessions,
            journal_dir(self.settings.journal_dir, self.settings.database_url),
        )
        if recovered:
            log.warning("recorded %d paid results a stopped run had not recorded", recovered)
        with self.config.sessions() as session:
            reclaimed = jobs.reclaim_dead(session, host=socket.gethostname(), is_alive=pid_alive)
            if reclaimed.jobs_released:
                log.info(
                    "took back %d jobs leased by dead runs %s",
                    reclaimed.jobs_released,
                    ", ".join(reclaimed.dead_owners),
                )
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
                worker=f"{socket.gethostname()}:{os.getpid()}",
            )
        self._state = _RunState(run_id=run_id, owner=_owner(run_id))
        self._recorder = Recorder(
            self._write_outcomes,
            on_recorded=self._recorded,
            on_error=self._db_down,
            outage_s=self.settings.db_outage_s,
        )
        self._recorder.start()
        if self.stack.sdk is not None:
            share = LimitShare(
                self.config.sessions,
                account=account_key(cache_scope(self.stack.sdk)),
                worker=self._st.owner,
            )
            self._shared = SharedLimits(share, self.stack.limiter, self._db_call)
        self._journal = Journal(
            journal_dir(self.settings.journal_dir, self.settings.database_url), self._st.owner
        )
        with self.config.sessions() as session:
            history = output_history(session)
        # Recent history weighs as this many answers of this run.
        self._state.outputs = dict(history)
        self._state.output_counts = dict.fromkeys(history, HISTORY_WEIGHT)
        self._queued = await self._db_call(self._queued_jobs)
        self.progress.queued_at_start = self._queued
        if self.options.pace_h:
            self._paced_rpm = self._pace_rate(self._queued, self.options.pace_h)
        background = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._tick()),
        ]
        if self._shared is not None:
            background.append(
                asyncio.create_task(
                    self._shared.run(lambda: self._feeding or self._dispatcher.pending > 0)
                )
            )
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
                try:
                    await self._recorder.close()  # every result committed before any release
                except Exception as exc:  # a bug in recording: keep the first cause
                    failure = failure or exc
                self._dispatcher.take_unsent()
                await self._release(sorted(self._st.held))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self._shared is not None:
                await self._shared.leave()
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

            try:
                totals: RunTotals = await self._db_call(finish)
            except DatabaseError as exc:
                self._db_down(exc)
                state = "failed"
                totals = self.progress.totals()
            self._db.shutdown()
            if self._journal is not None:
                self._journal.close()
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
            fatal=st.fatal,
            token_factors=self.stack.limiter.stats().get("token_factors"),
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

            def on_signal(reason: str) -> None:
                # A second signal aborts: requests still on the wire are cancelled at once
                # (their jobs are released) instead of after STOP_GRACE_S.
                if runner._stop.is_set():
                    runner._dispatcher.cancel_in_flight()
                runner.stop(reason)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal, f"signal {sig.name}")

        return await run_batch_async(
            settings, replace(options or RunOptions()), progress=progress, on_runner=install
        )

    return asyncio.run(main())
