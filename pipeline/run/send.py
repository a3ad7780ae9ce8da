"""The send path of a run: one planned request to the API, its outcome judged and journalled.

Each request gets its prompt-cache fields, waits for its key's pace (when paced, or when its
key spilled) and its budget reservation (when capped), goes through the client stack, and its
outcome becomes a generation. A paid answer is written to the journal before it is handed to
the recorder, so nothing paid is lost however the run ends. An outcome that is not the job's
fault (a fatal error, the stop itself) records nothing and leaves the job to be released
untouched. An answer that fails a check with ``on_fail = "retry"`` is followed up after the
cached prefix (``run.checking``).

Each paid answer also teaches the run: its cached tokens against the plan's tell the key book
whether its key spilled (``planning.keys``), and its billed tokens against the plan's correct
the next forecast (``RunState.figures``).

Around each attempt (``Watch``): the journal marks the send and the answer (so a worker killed
by one request names it, ``journal``); a job suspected of killing workers is sent apart from
every other send (``SendGate``); and an attempt abandoned after it may have reached the server
(a timeout) keeps its worst case reserved in the budget, the next attempt reserving anew, so
what the server bills for abandoned attempts is inside the budget too.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from pipeline.client import BudgetRefused, Outcome, RunStopping
from pipeline.db import BillFigures, Generation, OutcomeRow
from pipeline.errors import FatalAPIError, PermanentAPIError, RequestTooLarge
from pipeline.limits import Pacer
from pipeline.money import worst_case_cost
from pipeline.planning import PlannedRequest, cache_fields, request_key
from pipeline.prompts import RenderedRequest
from pipeline.run.budgets import Held, reserve_all, settle
from pipeline.run.checking import retry_failed_checks, wants_retry
from pipeline.run.context import SUSPECT_GAP_S, RunContext, log
from pipeline.run.prewarming import prewarm_generation
from pipeline.run.recording import Verdict, failure, judge
from pipeline.run.recovery import journal_entry
from pipeline.settings import ledger_id


class SendGate:
    """Keeps a suspect job's send ``gap_s`` away from every other send, before and after, so
    that if the worker dies on it, the journal's last tick blames it alone. While a suspect
    waits for its gap, other sends wait too (at hundreds of sends a second it would never
    find one otherwise)."""

    def __init__(self, gap_s: float = SUSPECT_GAP_S) -> None:
        self.gap_s = gap_s
        self._last = -math.inf
        self._alone_until = -math.inf
        self._waiting = 0  # suspects waiting for their gap

    @property
    def busy(self) -> bool:
        """Whether a send must go through ``wait`` (a suspect waits or was sent lately)."""
        return self._waiting > 0 or self._alone_until > -math.inf

    async def wait(self, suspect: bool) -> None:
        """Wait until this send may go, then note it."""
        loop = asyncio.get_running_loop()
        if suspect:
            self._waiting += 1
            try:
                while (until := max(self._alone_until, self._last + self.gap_s)) > loop.time():
                    await asyncio.sleep(until - loop.time())
            finally:
                self._waiting -= 1
            self._last = loop.time()
            self._alone_until = self._last + self.gap_s
            return
        while self._waiting or self._alone_until > loop.time():
            await asyncio.sleep(max(self._alone_until - loop.time(), 0.01))
        self._last = loop.time()


class Watch:
    """The ``AttemptHooks`` of one request: journal marks, the suspect's gap, the budget."""

    def __init__(self, sender: Sender, job_id: int, worst_usd: Decimal, held: Held) -> None:
        self.sender = sender
        self.held = held
        self.job_id = job_id
        self.worst_usd = worst_usd
        self.extra_reserved = 0  # worst cases reserved for attempts after abandoned ones
        ctx = sender.ctx
        self._journal = ctx.journal
        self._suspect = job_id in ctx.st.suspects

    async def sending(self) -> None:
        """Wait for the gate (a suspect, or a suspect's gap), then mark the send."""
        gate = self.sender.gate
        if self._suspect or gate.busy:
            await gate.wait(self._suspect)
        if self._journal is not None:
            self._journal.mark("s", self.job_id)

    def answering(self) -> None:
        """Mark that the answer is arriving."""
        if self._journal is not None:
            self._journal.mark("a", self.job_id)

    def ended(self) -> None:
        """Mark the attempt's end."""
        if self._journal is not None:
            self._journal.mark("e", self.job_id)

    async def retrying(self) -> bool:
        """Reserve another worst case for the attempt after an abandoned one (always allowed
        without a budget). It does not wait for room: every request in flight may be at this
        point, each holding its reservations, and none would ever free any."""
        if not self.held:
            return True
        if not reserve_all(self.held, self.worst_usd):
            return False
        self.extra_reserved += 1
        return True


class Sender:
    """Sends planned requests for one run (see the module docstring)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._key_pacers: dict[str, Pacer] = {}
        self.gate = SendGate()
        self.ledger = ledger_id(ctx.settings.database_url)

    async def reserve(self, amount: Decimal, request: RenderedRequest) -> Held | None:
        """Reserve ``amount`` in the budgets covering ``request``, waiting while in-flight
        reservations may free room (``budgets.Budgets.reserve``); None: no room, stop.

        Worst cases are reserved, and actual costs are usually far lower, so a request that does
        not fit now may fit once in-flight ones settle; give up only when nothing is reserved.
        """
        ctx = self.ctx
        return await ctx.budgets.reserve(
            amount,
            request.job_id,
            request.task,
            settled=ctx.settled,
            stopping=ctx.stop_event.is_set,
        )

    def _settle(self, held: Held, reserved: Decimal, cost_usd: Decimal) -> None:
        if held:
            settle(held, reserved, cost_usd)
            self.ctx.settled.set()

    def body(self, planned: PlannedRequest) -> tuple[dict[str, Any], str | None]:
        """The request body with its model's prompt-cache fields, and the key it carries."""
        ctx = self.ctx
        request = planned.request
        policy = ctx.config.policies.get(request.model) or ctx.config.prices.policy(request.model)
        key = request_key(planned, policy, ctx.st.run_id, ctx.options.batch_label)
        return request.body(prompt_cache_key=key, cache=cache_fields(planned, policy)), key

    def too_large(self, request: RenderedRequest) -> RequestTooLarge | None:
        """The request's prompt plus output allowance over its model's context window."""
        policy = self.ctx.config.policies.get(request.model)
        window = None if policy is None else policy.context_window
        size = request.prompt_tokens + request.profile.max_output_tokens
        if window is None or size <= window:
            return None
        return RequestTooLarge(
            f"request of {size:,} tokens (prompt + max_output_tokens) is larger than "
            f"{request.model}'s context window ({window:,}): it can never be sent"
        )

    async def send(self, planned: PlannedRequest) -> None:
        """Send one planned request (or prewarm) and hand its outcome to the recorder."""
        if planned.prewarm:
            await self._prewarm(planned)
            return
        ctx = self.ctx
        request = planned.request
        profile = request.profile
        body, key = self.body(planned)
        planned = replace(planned, cache_key=key)
        oversized = self.too_large(request)
        if oversized is not None:
            verdict = self._judge(planned, Outcome(None, oversized, attempts=0))
            await self._hand_over(planned, verdict, paid=False)
            return
        book = ctx.st.book
        keyed = book is not None and planned.bucket is not None and key is not None
        if keyed and (ctx.paced_rpm is not None or key in self._key_pacers):
            # Each routing key at its own steady rate: a burst released by a primer must not
            # push one key past what its cache machine takes (a key that spilled is slowed).
            assert book is not None and key is not None
            rate = book.rate(request.model).rpm
            pacer = self._key_pacers.get(key)
            if pacer is None:
                pacer = self._key_pacers[key] = Pacer(rate)
            elif pacer.per_minute != rate:
                pacer.set_rate(rate)  # the rate learnt since
            await pacer.wait()
            if ctx.stop_event.is_set():
                return  # not sent: the job stays held and is released at the end
        worst = Decimal(0)
        held: Held = []
        if ctx.budgets.active:
            worst = worst_case_cost(request, ctx.config.prices)
            reserved_in = await self.reserve(worst, request)
            if reserved_in is None:
                # Not sent: the job stays held and is released to the queue at the end.
                ctx.stop("budget")
                return
            held = reserved_in
        ctx.progress.started()
        learn: tuple[int, bool] | None = None
        if keyed:
            assert book is not None and key is not None
            learn = (book.sent_on(key, time.monotonic()), book.warm(key))
        watch = Watch(self, request.job_id, worst, held)
        outcome: Outcome = await ctx.client.generate(
            body,
            estimated_tokens=request.estimated_tokens,
            stream=profile.stream,
            cache_enabled=profile.cache.enabled,
            cache_ttl_s=profile.cache.ttl_s,
            job_id=request.job_id,
            hooks=watch,
        )
        reserved = worst * (1 + watch.extra_reserved)
        # Attempts abandoned after they may have reached the server stay at their worst case.
        abandoned = worst * outcome.abandoned
        if self._unsent(outcome.error):
            self._settle(held, reserved, abandoned)
            return  # not the job's fault: it stays held and is released untouched
        verdict = self._judge(planned, outcome)
        self._settle(held, reserved, verdict.generation.cost_usd + abandoned)
        paid = outcome.result is not None and not outcome.from_cache
        await self._hand_over(planned, verdict, paid=paid, learn=learn)

    async def _hand_over(
        self,
        planned: PlannedRequest,
        verdict: Verdict,
        *,
        paid: bool,
        learn: tuple[int, bool] | None = None,
    ) -> None:
        """Journal a judged outcome if paid, follow up failed checks, hand it to the recorder,
        and learn from it (``learn``: what its key carried that minute, and whether it was
        warm)."""
        ctx = self.ctx
        request = planned.request
        entry = self._journal_write(verdict) if paid else None
        earlier: tuple[Generation, ...] = ()
        if wants_retry(planned, verdict):
            retried = await retry_failed_checks(
                planned,
                verdict,
                entry,
                call=self.call,
                journal=ctx.journal,
                followers=ctx.followers.get(request.task, ()),
                stopping=ctx.stop_event.is_set,
            )
            verdict, entry, earlier = retried.verdict, retried.entry, retried.earlier
        g = verdict.generation
        ctx.recorder_().add(
            OutcomeRow(
                g,
                succeeded=verdict.succeeded,
                permanent=verdict.permanent,
                error=verdict.error,
                article_id=verdict.article_id,
                followers=ctx.followers.get(g.task, ()),
                earlier=earlier,
                lease_token=ctx.st.tokens.get(g.job_id),
                reason=verdict.reason,
                paid=verdict.paid,
            ),
            entry,
        )
        ctx.progress.settled(request.job_id, g.cost_usd or Decimal(0), prewarm=False)
        if g.status in ("completed", "incomplete") and not g.from_cache:
            ctx.st.learn_output(request.task, request.model, g.output_tokens or 0)
        if paid:
            self._learn(planned, g, None if learn is None else learn[0], bool(learn and learn[1]))

    def _learn(
        self, planned: PlannedRequest, g: Generation, carried: int | None, warm: bool
    ) -> None:
        """What a paid answer teaches: its key's rate (a short read on a warm key is a spill
        or an eviction) and the bill against the plan."""
        st = self.ctx.st
        billed_input = g.input_tokens or 0
        st.billed(
            planned,
            BillFigures(
                requests=1,
                planned_input_tokens=planned.prompt_tokens,
                planned_cached_tokens=planned.expected_cached_tokens,
                planned_write_tokens=planned.expected_cache_write_tokens,
                billed_input_tokens=billed_input,
                billed_cached_tokens=g.cached_tokens or 0,
                billed_write_tokens=g.cache_write_tokens or 0,
            ),
        )
        book = st.book
        if book is None or carried is None or not billed_input or planned.cache_key is None:
            return
        model = planned.request.model
        verdict = book.observe(
            model,
            # What the key's own earlier answers surely left on its machine: the read the plan
            # expects from a writer on the same key, else the group's root (a deeper read may
            # have been counted on another key's machine).
            expected=planned.expected_cached_tokens
            if planned.own_read
            else min(planned.expected_cached_tokens, planned.root_tokens),
            cached=g.cached_tokens or 0,
            billed_per_token=billed_input / max(planned.prompt_tokens, 1),
            carried=carried,
            key=planned.cache_key,
            warm=warm,
        )
        if verdict == "spill" and self.ctx.paced_rpm is not None:
            # New articles go to more keys at the rate just learnt. A paced run (it has the
            # time) also slows the key that spilled; at full speed a spill costs one cold read,
            # far less than holding back what was already dealt to the key.
            rate = book.rate(model).rpm
            pacer = self._key_pacers.get(planned.cache_key)
            if pacer is None:
                self._key_pacers[planned.cache_key] = Pacer(rate)
            else:
                pacer.set_rate(rate)
            log.debug("key %s spilled at %d requests/min", planned.cache_key, carried)

    async def call(self, planned: PlannedRequest) -> tuple[Verdict, bool] | None:
        """Send one follow-up of a job already sent (a check's retry): its verdict and whether
        it was paid, or None when it was not sent (stopping, a fatal error, no budget)."""
        ctx = self.ctx
        request = planned.request
        body, _ = self.body(planned)
        worst = Decimal(0)
        held: Held = []
        if ctx.budgets.active:
            worst = worst_case_cost(request, ctx.config.prices)
            reserved_in = ctx.budgets.reserve_now(worst, request.job_id, request.task)
            if reserved_in is None:
                return None
            held = reserved_in
        ctx.progress.started()
        watch = Watch(self, request.job_id, worst, held)
        outcome: Outcome = await ctx.client.generate(
            body,
            estimated_tokens=request.estimated_tokens,
            stream=request.profile.stream,
            cache_enabled=request.profile.cache.enabled,
            cache_ttl_s=request.profile.cache.ttl_s,
            job_id=request.job_id,
            hooks=watch,
        )
        reserved = worst * (1 + watch.extra_reserved)
        abandoned = worst * outcome.abandoned
        if self._unsent(outcome.error):
            self._settle(held, reserved, abandoned)
            return None
        verdict = self._judge(planned, outcome)
        self._settle(held, reserved, verdict.generation.cost_usd + abandoned)
        return verdict, outcome.result is not None and not outcome.from_cache

    async def _prewarm(self, planned: PlannedRequest) -> None:
        """Send a prewarm and record what it cost; its group's requests wait for it."""
        ctx = self.ctx
        body, key = self.body(planned)
        reserved = Decimal(0)
        held: Held = []
        if ctx.budgets.active:
            reserved = worst_case_cost(planned.request, ctx.config.prices)
            reserved_in = await self.reserve(reserved, planned.request)
            if reserved_in is None:
                ctx.stop("budget")
                return
            held = reserved_in
        outcome: Outcome = await ctx.client.generate(
            body,
            estimated_tokens=planned.prompt_tokens,
            stream=False,
            cache_enabled=False,
            cache_ttl_s=None,
            job_id=planned.request.job_id,
        )
        abandoned = reserved * outcome.abandoned
        if self._unsent(outcome.error):
            self._settle(held, reserved, abandoned)
            return
        if outcome.result is None:
            log.warning("prewarm for group %s failed: %s", planned.group, outcome.error)
        generation = prewarm_generation(
            planned.request,
            outcome.result,
            run_id=ctx.st.run_id,
            prices=ctx.config.prices,
            cache_key=key,
            attempts=outcome.attempts,
            error=None
            if outcome.error is None
            else f"{type(outcome.error).__name__}: {outcome.error}",
        )
        self._settle(held, reserved, generation.cost_usd + abandoned)
        ctx.progress.settled(
            planned.request.job_id, generation.cost_usd or Decimal(0), prewarm=True
        )
        if outcome.result is not None:
            self.ctx.st.billed(
                planned,
                BillFigures(
                    requests=1,
                    planned_input_tokens=planned.prompt_tokens,
                    planned_write_tokens=planned.expected_cache_write_tokens,
                    billed_input_tokens=generation.input_tokens or 0,
                    billed_cached_tokens=generation.cached_tokens or 0,
                    billed_write_tokens=generation.cache_write_tokens or 0,
                ),
            )
        entry = None
        if outcome.result is not None:
            entry = self._journal_write(
                Verdict(generation, succeeded=False, permanent=False, error=None)
            )
        ctx.recorder_().add(OutcomeRow(generation, succeeded=False, job_outcome=False), entry)

    def _unsent(self, error: BaseException | None) -> bool:
        """True when a request ended for a reason outside its job: a fatal error (the run
        stops), the budget refusing another attempt, or the stop itself. Nothing is recorded
        and the job keeps its attempts."""
        if isinstance(error, FatalAPIError):
            self.ctx.fatal(error)
            return True
        if isinstance(error, BudgetRefused):
            self.ctx.stop("budget")
            return True
        return isinstance(error, RunStopping)

    def _journal_write(self, verdict: Verdict) -> str | None:
        journal = self.ctx.journal
        if journal is None:
            return None
        g = verdict.generation
        try:
            return journal.write(journal_entry(verdict, self.ctx.followers.get(g.task, ())))
        except OSError as exc:
            # Recorded all the same, only without the journal's protection; the run stops.
            self.ctx.journal_failed(exc)
            return None

    def _judge(self, planned: PlannedRequest, outcome: Outcome) -> Verdict:
        ctx = self.ctx
        request = planned.request
        if outcome.result is not None:
            return judge(
                request,
                outcome.result,
                run_id=ctx.st.run_id,
                prices=ctx.config.prices,
                attempts=outcome.attempts,
                from_cache=outcome.from_cache,
                cache_key=planned.cache_key,
                ledger=self.ledger,
            )
        error = outcome.error
        permanent = isinstance(error, PermanentAPIError)
        return failure(
            request,
            f"{type(error).__name__}: {error}",
            run_id=ctx.st.run_id,
            attempts=outcome.attempts,
            cache_key=planned.cache_key,
            permanent=permanent,
            reason=error.reason if isinstance(error, PermanentAPIError) else None,
        )
