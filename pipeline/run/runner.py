"""The run: claim -> render -> plan -> call -> record, streaming chunk by chunk.

Start reading here. ``run_batch`` claims jobs in chunks with a lease, renders each for its
profile and plans each chunk for prompt-cache hits (feed.py), sends the requests concurrently
at the rate limit through the client stack: response cache -> limiter -> retry -> API
(send.py), and records every result off the send path in small grouped commits (recorder.py).
A stop (SIGINT/SIGTERM, or ``stop()``) ends claiming, lets in-flight calls finish, and hands
unsent jobs back to the queue (context.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from pipeline.client import ClientStack, build_client_stack, cache_scope
from pipeline.db import (
    OutcomeRow,
    RunTotals,
    beat,
    bill_history,
    close_run,
    jobs,
    leases,
    load_key_rates,
    open_run,
    output_history,
    pid_alive,
    recent_key_sends,
    record_bill_figures,
    record_outcomes,
    record_versions,
    save_key_rates,
)
from pipeline.errors import ConfigError, DatabaseError
from pipeline.limits import LimitShare, SharedLimits, account_key
from pipeline.prompts import followers_of
from pipeline.run.config import Config, expects_followers, load_config, version_rows
from pipeline.run.context import STOP_GRACE_S as STOP_GRACE_S
from pipeline.run.context import RunContext, RunState, owner_name
from pipeline.run.dryrun import choose_pace
from pipeline.run.feed import Feed, pace_rate
from pipeline.run.journal import Journal, check_writable, journal_dir
from pipeline.run.learning import bill_factors
from pipeline.run.progress import Progress
from pipeline.run.recorder import Pending, Recorder
from pipeline.run.recovery import Drained, drain_journals
from pipeline.run.send import Sender
from pipeline.run.summary import RunOptions as RunOptions
from pipeline.run.summary import RunSummary as RunSummary
from pipeline.run.summary import closed_state
from pipeline.settings import Settings

log = logging.getLogger("contentgen.run")
HISTORY_WEIGHT = 20
EMIT_EVERY_S = 0.1


def usable_journal(folder: Path, configured: Path | None) -> None:
    """Refuse to start, in one line, when the journal of paid results cannot be written: a
    run must never pay for an answer it could lose."""
    try:
        check_writable(folder)
    except OSError as exc:
        where = "CONTENTGEN_JOURNAL_DIR" if configured is not None else "the journal folder"
        raise ConfigError(
            f"{where}: cannot write the journal of paid results in {folder} "
            f"({exc.strerror or exc}); point CONTENTGEN_JOURNAL_DIR at a writable folder with "
            "free space"
        ) from None


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
        self.ctx = RunContext(
            settings,
            options,
            config=config,
            stack=stack,
            send=lambda planned: self.sender.send(planned),
            followers=followers_of(config.profiles),
        )
        self.sender = Sender(self.ctx)
        self.feed = Feed(self.ctx)
        self.progress = self.ctx.progress
        self._on_progress = progress
        self._emitted_at = 0.0

    def stop(self, reason: str = "stopped") -> None:
        """Stop claiming and sending; unsent jobs are released (``RunContext.stop``)."""
        self.ctx.stop(reason)

    def abort(self) -> None:
        """Cancel the requests on the wire at once (their jobs are released)."""
        self.ctx.dispatcher.cancel_in_flight()

    @property
    def stopping(self) -> bool:
        """True once a stop was asked for."""
        return self.ctx.stop_event.is_set()

    # -- recording -------------------------------------------------------------------------

    def _write_outcomes(self, outcomes: Sequence[OutcomeRow]) -> list[str | None]:
        with self.config.sessions() as session:
            return record_outcomes(
                session, self.ctx.st.owner, outcomes, max_attempts=self.settings.max_attempts
            )

    def _recorded(self, pending: Pending, state: str | None) -> None:
        """A committed outcome: its journal entry is done, its job no longer ours."""
        ctx = self.ctx
        if pending.entry is not None and ctx.journal is not None:
            try:
                ctx.journal.done(pending.entry)
            except OSError as exc:  # recorded; the entry stays and the next drain skips it
                ctx.journal_failed(exc)
        st = ctx.st
        outcome = pending.outcome
        g = outcome.generation
        if not outcome.job_outcome:
            st.prewarms += 1
            self.progress.billed(g)
            return
        st.held.discard(g.job_id)
        for replaced in outcome.earlier:  # answers a check's retry replaced: billed too
            self.progress.billed(replaced)
        if state == "lost":
            st.lost_leases += 1
            log.warning("job %s: lease lost before its result was recorded", g.job_id)
        self.progress.finished(g, outcome.succeeded)
        # A display needs no more than a few refreshes a second (the tick refreshes too).
        now = time.monotonic()
        if now - self._emitted_at >= EMIT_EVERY_S:
            self._emitted_at = now
            self._emit()

    async def _heartbeat(self) -> None:
        """Keep the leases of jobs we hold from expiring during a long run."""
        ctx = self.ctx
        interval = max(self.settings.lease_s / 3, 1.0)
        while True:
            await asyncio.sleep(interval)
            held = sorted(ctx.st.held)

            def extend(ids: list[int] = held) -> int:
                with self.config.sessions() as session:
                    return jobs.extend_leases(session, ids, ctx.st.owner, self.settings.lease_s)

            try:
                await ctx.db_call(extend)
            except DatabaseError as exc:
                ctx.db_down(exc)

    async def _beat(self) -> None:
        """Beat in the run's row, the liveness other runners judge it by (``db.leases``).

        A run another runner took for dead (its row closed as abandoned) has lost its leases:
        it stops, and its late answers are recorded as paid without completing any job."""
        ctx = self.ctx
        while True:
            await asyncio.sleep(leases.RUN_BEAT_S)

            def beat_once(run_id: int = ctx.st.run_id) -> bool:
                with self.config.sessions() as session:
                    return beat(session, run_id)

            try:
                alive: bool = await ctx.db_call(beat_once)
            except DatabaseError as exc:
                ctx.db_down(exc)
                continue
            if not alive and not ctx.stop_event.is_set():
                ctx.st.fatal = ctx.st.fatal or (
                    "another runner took this run for dead (no heartbeat) and took its jobs"
                )
                ctx.stop("taken for dead")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self._emit()

    def _emit(self) -> None:
        if self._on_progress is not None:
            ctx = self.ctx
            self.progress.in_flight = ctx.dispatcher.in_flight
            self.progress.limiter = self.stack.limiter.stats()
            self.progress.stopping = None if ctx.state is None else ctx.state.stop_reason
            self.progress.budgets = ctx.budgets.lines()
            self._on_progress(self.progress)

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> RunSummary:
        """Execute the run and return its summary (read back from the database)."""
        started = time.monotonic()
        ctx = self.ctx
        folder = journal_dir(self.settings.journal_dir, self.settings.database_url)
        usable_journal(folder, self.settings.journal_dir)
        liveness = leases.run_liveness(self.settings.db_outage_s)
        drained: Drained = await ctx.db_call(
            drain_journals,
            self.config.sessions,
            folder,
            liveness=liveness,
            max_deaths=self.settings.max_worker_deaths,
        )
        if drained.recorded:
            log.warning("recorded %d paid results a stopped run had not recorded", drained.recorded)
        with self.config.sessions() as session:
            reclaimed = leases.reclaim_dead(
                session,
                host=liveness.host,
                is_alive=pid_alive,
                host_id=liveness.host_id,
                stale_s=liveness.stale_s,
            )
            if reclaimed.jobs_released:
                log.info(
                    "took back %d jobs leased by dead runs %s",
                    reclaimed.jobs_released,
                    ", ".join(reclaimed.dead_owners),
                )
            record_versions(session, version_rows(self.config.profiles))
            requeued = leases.requeue_expired(session, max_attempts=self.settings.max_attempts)
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
                host_id=liveness.host_id,
            )
        ctx.state = RunState(run_id=run_id, owner=owner_name(run_id))
        ctx.budgets.run_id = run_id
        account = None if self.stack.sdk is None else account_key(cache_scope(self.stack.sdk))
        recorder = ctx.recorder = Recorder(
            self._write_outcomes,
            on_recorded=self._recorded,
            on_error=ctx.db_down,
            outage_s=self.settings.db_outage_s,
            outage=ctx.db.outage,  # one outage clock for the run, whichever thread meets it
        )
        recorder.start()
        if self.stack.sdk is not None:
            assert account is not None
            share = LimitShare(self.config.sessions, account=account, worker=ctx.st.owner)
            ctx.shared = SharedLimits(share, self.stack.limiter, ctx.db_call)
        try:
            ctx.journal = Journal(folder, ctx.st.owner, on_error=ctx.journal_failed)
        except OSError as exc:  # the folder was fine a moment ago: stop before sending
            ctx.journal_failed(exc)
        with self.config.sessions() as session:
            history = output_history(session)
            ctx.st.bills = bill_factors(bill_history(session))
            if account is not None:
                ctx.st.key_rates = load_key_rates(session, account)
            ctx.st.recent_keys = recent_key_sends(session)
        # Recent history weighs as this many answers of this run.
        ctx.st.outputs = dict(history)
        ctx.st.output_counts = dict.fromkeys(history, HISTORY_WEIGHT)
        ctx.chained = await ctx.db_call(
            expects_followers, self.config.sessions, self.config.profiles
        )
        ctx.queued = await ctx.db_call(self.feed.queued_jobs)
        self.progress.queued_at_start = ctx.queued
        if self.options.paced_rpm:
            ctx.paced_rpm = self.options.paced_rpm
        else:
            choice = await ctx.db_call(choose_pace, self.settings, self.options, config=self.config)
            if choice.paced and choice.rate_rpm:
                ctx.paced_rpm = pace_rate(ctx.queued, choice.rate_rpm, choice.line())
        self.progress.paced_rpm = ctx.paced_rpm
        background = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._beat()),
            asyncio.create_task(self._tick()),
        ]
        shared = ctx.shared
        if shared is not None:
            background.append(
                asyncio.create_task(shared.run(lambda: ctx.feeding or ctx.dispatcher.pending > 0))
            )
        feeder = asyncio.create_task(self.feed.run())
        failure: BaseException | None = None
        cancelled = False
        try:
            try:
                await ctx.dispatcher.run()
            except asyncio.CancelledError:
                # The task running us was cancelled (a Prefect Cancel, the loop shutting down
                # on a signal): record it as such, hand the jobs back below, then go on being
                # cancelled.
                cancelled = True
                ctx.stop("cancelled")
                raise
            except Exception as exc:  # a bug in sending or recording: stop, keep the cause
                failure = exc
            finally:
                # Never cancel the feeder: a claim it has started still commits in the DB
                # thread. It checks the stop flag itself; once it is done and in-flight calls
                # have finished, the jobs still held are exactly those without a result
                # (unsent, refused by the budget, claimed during the stop): release them all.
                ctx.stop_event.set()
                ctx.dispatcher.stop()
                (fed,) = await asyncio.gather(feeder, return_exceptions=True)
                if isinstance(fed, Exception) and failure is None:
                    failure = fed
                try:
                    await recorder.close()  # every result committed before any release
                except Exception as exc:  # a bug in recording: keep the first cause
                    failure = failure or exc
                ctx.dispatcher.take_unsent()
                await ctx.release(sorted(ctx.st.held))
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if shared is not None:
                await shared.leave()
            try:
                await ctx.budgets.close()
            except DatabaseError as exc:  # the grants stop counting once the run is closed
                log.info("could not give back the run's budget grants: %s", exc)
            st = ctx.st
            if failure is not None:
                state = "failed"
                st.stop_reason = f"error: {type(failure).__name__}"[:64]
            elif cancelled:
                state = "cancelled"
            else:
                state = closed_state(st.stop_reason)
            expected_ratio = st.expected_cached / st.prompt_tokens if st.prompt_tokens else 0.0

            learnt = _learnt_rates(st)

            def finish() -> RunTotals:
                with self.config.sessions() as session:
                    record_bill_figures(session, run_id, st.figures)
                    if account is not None and learnt:
                        save_key_rates(session, account, learnt)
                    return close_run(
                        session,
                        run_id,
                        state=state,
                        stop_reason=st.stop_reason,
                        forecast_cached_ratio=expected_ratio,
                        forecast_cost_usd=st.forecast_usd,
                    )

            try:
                totals: RunTotals = await ctx.db_call(finish)
            except DatabaseError as exc:
                ctx.db_down(exc)
                state = "failed"
                totals = self.progress.totals()
            ctx.db.shutdown()
            if ctx.journal is not None:
                ctx.journal.close()
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
            paced_rpm=ctx.paced_rpm,
            fatal=st.fatal,
            budget_stop=ctx.budgets.stopped_by,
            token_factors=self.stack.limiter.stats().get("token_factors"),
            key_rates=None
            if st.book is None
            else {m: r.as_dict() for m, r in st.book.learnt().items()},
        )


def _learnt_rates(st: RunState) -> dict[str, tuple[float, int, int]]:
    """The per-key rates worth keeping: those this run used on answers, by model."""
    if st.book is None:
        return {}
    return {
        model: (rate.rpm, rate.requests, rate.spills)
        for model, rate in st.book.learnt().items()
        if rate.requests
    }


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
                if runner.stopping:
                    runner.abort()
                runner.stop(reason)

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal, f"signal {sig.name}")

        return await run_batch_async(
            settings, replace(options or RunOptions()), progress=progress, on_runner=install
        )

    return asyncio.run(main())
