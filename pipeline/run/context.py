"""What the parts of one run share: its state, its client stack, its stop switch.

A run is a ``Runner`` (runner.py) with two helpers working on one ``RunContext``: the feed
(feed.py: claim -> render -> plan) and the sender (send.py: call -> judge -> journal). The
context holds what they all read and the one way to stop: ``stop`` ends claiming and sending
and hands unsent jobs back; ``fatal`` and ``db_down`` stop for an error no request can get
past, keeping the cause for the summary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pipeline.client import ClientStack, ResponsesClient
from pipeline.db import BillFigures, jobs
from pipeline.errors import DatabaseError, FatalAPIError
from pipeline.limits import SharedLimits
from pipeline.money import Budget
from pipeline.planning import BillHistory, KeyBook, PlannedRequest
from pipeline.prompts import Layout
from pipeline.run.budgets import Budgets
from pipeline.run.config import Config
from pipeline.run.dbthread import DatabaseThread
from pipeline.run.execution import Dispatcher
from pipeline.run.journal import Journal
from pipeline.run.progress import Progress
from pipeline.run.recorder import Recorder
from pipeline.run.summary import RunOptions
from pipeline.settings import Settings

log = logging.getLogger("contentgen.run")
# After a stop, requests on the wire get this long to answer before they are cancelled.
STOP_GRACE_S = 10.0
# A suspect job's send is kept this far from any other send (more than a journal tick).
SUSPECT_GAP_S = 0.25


def owner_name(run_id: int) -> str:
    """The lease owner of a run: host, process and run id (``procs.parse_owner`` reads it)."""
    return f"{socket.gethostname()}:{os.getpid()}:run{run_id}"


@dataclass
class RunState:
    """What a started run has done so far: its id, the jobs it holds, its plan's expectations."""

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
    # The fencing token of each held job's claim, and the jobs to send apart (suspects).
    tokens: dict[int, int] = field(default_factory=dict)
    suspects: set[int] = field(default_factory=set)
    # Expected output tokens per (task, model): recent history, then this run's own means.
    outputs: dict[tuple[str, str], float] = field(default_factory=dict)
    output_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    # The run's cache keys and the per-key rates it learns (made with the first chunk), the
    # rates learnt by earlier runs on this account, and what earlier runs were billed
    # against their plans (per model and layout).
    book: KeyBook | None = None
    key_rates: dict[str, float] = field(default_factory=dict)
    recent_keys: dict[str, list[float]] = field(default_factory=dict)
    bills: BillHistory = field(default_factory=dict)
    # This run's plan against its bill, per (model, layout), kept for the next forecast.
    figures: dict[tuple[str, str], BillFigures] = field(default_factory=dict)

    def billed(self, planned: PlannedRequest, usage: BillFigures) -> None:
        """Add one answered request's planned and billed tokens to the run's figures."""
        request = planned.request
        key = (request.model, request.layout)
        found = self.figures.get(key)
        if found is None:
            found = self.figures[key] = BillFigures()
        found.add(usage)

    def learn_output(self, task: str, model: str, tokens: int) -> None:
        """Fold one answer's output tokens into the running mean of its (task, model)."""
        key = (task, model)
        n = self.output_counts.get(key, 0)
        mean = self.outputs.get(key, 0.0) if n else 0.0
        self.outputs[key] = mean + (tokens - mean) / (n + 1)
        self.output_counts[key] = n + 1


class RunContext:
    """The shared parts of one run; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        options: RunOptions,
        *,
        config: Config,
        stack: ClientStack,
        send: Callable[[PlannedRequest], Any],
        followers: dict[str, tuple[str, ...]],
    ) -> None:
        self.settings = settings
        self.options = options
        self.config = config
        self.stack = stack
        self.client: ResponsesClient = stack.client
        self.progress = Progress(limit_tpm=settings.tpm_limit)
        self.db = DatabaseThread(outage_s=settings.db_outage_s)
        self.stop_event = asyncio.Event()
        self.dispatcher: Dispatcher[PlannedRequest] = Dispatcher(send, concurrency=self.concurrency)
        self.followers = followers
        # Whether chained jobs may be queued during the run (``config.expects_followers``):
        # the feed then waits for them, and the planner sizes keys for them.
        self.chained = bool(followers)
        self.budget = None if options.budget_usd is None else Budget(options.budget_usd)
        self.progress.budget_usd = options.budget_usd
        # The run's budget and the recurring ones (config/budgets.toml) a request reserves in.
        self.budgets = Budgets(self.budget, config.budgets, config.sessions, self.db_call)
        # Set when a reservation is settled: a request waiting for budget room looks again.
        self.settled = asyncio.Event()
        self.state: RunState | None = None
        self.recorder: Recorder | None = None
        self.journal: Journal | None = None
        self.shared: SharedLimits | None = None
        self.paced_rpm: float | None = None
        self.queued = 0
        self.feeding = True

    @property
    def st(self) -> RunState:
        """The started run's state."""
        assert self.state is not None, "the run has not started"
        return self.state

    def recorder_(self) -> Recorder:
        """The started run's recorder."""
        assert self.recorder is not None, "the run has not started"
        return self.recorder

    @property
    def concurrency(self) -> int:
        """Requests in flight at most."""
        return self.options.concurrency or self.settings.concurrency

    @property
    def chunk_size(self) -> int:
        """Jobs per claim."""
        return self.options.chunk_size or self.settings.claim_chunk_for(self.concurrency)

    async def db_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` on the run's database thread."""
        return await self.db.call(fn, *args, **kwargs)

    # -- stopping ------------------------------------------------------------------------

    def stop(self, reason: str = "stopped") -> None:
        """Stop claiming and sending; unsent jobs are released.

        Waits in the client (rate limiter, outage, retry backoff) end at once; requests on the
        wire get ``STOP_GRACE_S`` to answer, then they are cancelled and their jobs released.
        """
        if self.state is not None and self.state.stop_reason is None:
            self.state.stop_reason = reason
        first = not self.stop_event.is_set()
        self.stop_event.set()
        self.dispatcher.stop()
        self.client.stop()
        if first:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            loop.call_later(STOP_GRACE_S, self.dispatcher.cancel_in_flight)

    def fatal(self, error: FatalAPIError) -> None:
        """An error no request can get past: stop the run, keep the cause for the summary."""
        st = self.st
        if st.fatal is None:
            st.fatal = f"{error}; {error.advice}"
            log.info("stopping: %s", st.fatal)
        self.stop(f"fatal {error.kind}")

    def journal_failed(self, error: OSError) -> None:
        """The journal cannot be written (a full disk): stop the run with one line. What is
        already paid for is still recorded; only the crash safety of new answers is gone."""
        st = self.st
        if st.fatal is None:
            st.fatal = (
                f"the journal of paid results cannot be written ({error.strerror or error}): "
                "free space in CONTENTGEN_JOURNAL_DIR; what was paid for is recorded"
            )
            log.info("stopping: %s", st.fatal)
        self.stop("journal unwritable")

    def db_down(self, error: DatabaseError) -> None:
        """The database stayed away: stop the run with one line; nothing paid is lost."""
        st = self.st
        if st.fatal is None:
            st.fatal = str(error)
        self.stop("database unreachable")

    async def release(self, job_ids: list[int]) -> None:
        """Hand ``job_ids`` back to the queue (attempts as they were)."""
        if not job_ids:
            return

        def release() -> int:
            with self.config.sessions() as session:
                return jobs.release(session, job_ids, self.st.owner)

        try:
            released: int = await self.db_call(release)
        except DatabaseError as exc:
            # Their leases stay: the next run on this machine takes them back at once (and
            # any other once this run's heartbeat is stale). Said once, in the run's fatal line.
            log.info("could not hand %d jobs back: %s", len(job_ids), exc)
            return
        self.st.released += released
        self.st.held.difference_update(job_ids)
