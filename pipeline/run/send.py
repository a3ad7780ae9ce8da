"""The send path of a run: one planned request to the API, its outcome judged and journalled.

Each request gets its prompt-cache fields, waits for its key's pace (when paced, or when its
key spilled) and its budget reservation (when capped), goes through the client stack, and its
outcome becomes a generation. A paid answer is written to the journal before it is handed to
the recorder, so nothing paid is lost however the run ends. An outcome that is not the job's
fault (a fatal error, the stop itself) records nothing and leaves the job to be released
untouched.

Each paid answer also teaches the run: its cached tokens against the plan's tell the key book
whether its key spilled (``planning.keys``), and its billed tokens against the plan's correct
the next forecast (``RunState.figures``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from typing import Any

from pipeline.client import Outcome, RunStopping
from pipeline.db import BillFigures, Generation, OutcomeRow
from pipeline.errors import FatalAPIError, PermanentAPIError
from pipeline.limits import Pacer
from pipeline.money import worst_case_cost
from pipeline.planning import PlannedRequest, cache_fields, request_key
from pipeline.run.checking import retry_failed_checks, wants_retry
from pipeline.run.context import RunContext, log
from pipeline.run.prewarming import prewarm_generation
from pipeline.run.recording import Verdict, failure, judge
from pipeline.run.recovery import journal_entry


class Sender:
    """Sends planned requests for one run (see the module docstring)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._key_pacers: dict[str, Pacer] = {}

    async def _reserve(self, amount: Decimal) -> bool:
        """Reserve ``amount`` of the budget, waiting while in-flight reservations may free room.

        Worst cases are reserved, and actual costs are usually far lower, so a request that does
        not fit now may fit once in-flight ones settle; give up only when nothing is reserved.
        """
        ctx = self.ctx
        assert ctx.budget is not None
        while not ctx.budget.reserve(amount):
            if ctx.budget.reserved_usd <= 0 or ctx.stop_event.is_set():
                return False
            ctx.settled.clear()
            await ctx.settled.wait()
        return True

    def _settle(self, reserved: Decimal, cost_usd: Decimal) -> None:
        if self.ctx.budget is not None:
            self.ctx.budget.settle(reserved, cost_usd)
            self.ctx.settled.set()

    def body(self, planned: PlannedRequest) -> tuple[dict[str, Any], str | None]:
        """The request body with its model's prompt-cache fields, and the key it carries."""
        ctx = self.ctx
        request = planned.request
        policy = ctx.config.policies.get(request.model) or ctx.config.prices.policy(request.model)
        key = request_key(planned, policy, ctx.st.run_id, ctx.options.batch_label)
        return request.body(prompt_cache_key=key, cache=cache_fields(planned, policy)), key

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
        reserved = Decimal(0)
        if ctx.budget is not None:
            reserved = worst_case_cost(request, ctx.config.prices)
            if not await self._reserve(reserved):
                # Not sent: the job stays held and is released to the queue at the end.
                ctx.stop("budget")
                return
        ctx.progress.started()
        carried = 0
        warm = False
        if keyed:
            assert book is not None and key is not None
            carried = book.sent_on(key, time.monotonic())
            warm = book.warm(key)
        outcome: Outcome = await ctx.client.generate(
            body,
            estimated_tokens=request.estimated_tokens,
            stream=profile.stream,
            cache_enabled=profile.cache.enabled,
            cache_ttl_s=profile.cache.ttl_s,
            job_id=request.job_id,
        )
        if self._unsent(outcome.error):
            self._settle(reserved, Decimal(0))
            return  # not the job's fault: it stays held and is released untouched
        verdict = self._judge(planned, outcome)
        self._settle(reserved, verdict.generation.cost_usd)
        paid = outcome.result is not None and not outcome.from_cache
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
            ),
            entry,
        )
        ctx.progress.settled(request.job_id, g.cost_usd or Decimal(0), prewarm=False)
        if g.status in ("completed", "incomplete") and not g.from_cache:
            ctx.st.learn_output(request.task, request.model, g.output_tokens or 0)
        if paid:
            self._learn(planned, g, carried if keyed else None, warm)

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
        reserved = Decimal(0)
        if ctx.budget is not None:
            reserved = worst_case_cost(request, ctx.config.prices)
            if not ctx.budget.reserve(reserved):
                return None
        ctx.progress.started()
        outcome: Outcome = await ctx.client.generate(
            body,
            estimated_tokens=request.estimated_tokens,
            stream=request.profile.stream,
            cache_enabled=request.profile.cache.enabled,
            cache_ttl_s=request.profile.cache.ttl_s,
            job_id=request.job_id,
        )
        if self._unsent(outcome.error):
            self._settle(reserved, Decimal(0))
            return None
        verdict = self._judge(planned, outcome)
        self._settle(reserved, verdict.generation.cost_usd)
        return verdict, outcome.result is not None and not outcome.from_cache

    async def _prewarm(self, planned: PlannedRequest) -> None:
        """Send a prewarm and record what it cost; its group's requests wait for it."""
        ctx = self.ctx
        body, key = self.body(planned)
        reserved = Decimal(0)
        if ctx.budget is not None:
            reserved = worst_case_cost(planned.request, ctx.config.prices)
            if not await self._reserve(reserved):
                ctx.stop("budget")
                return
        outcome: Outcome = await ctx.client.generate(
            body,
            estimated_tokens=planned.prompt_tokens,
            stream=False,
            cache_enabled=False,
            cache_ttl_s=None,
            job_id=planned.request.job_id,
        )
        if self._unsent(outcome.error):
            self._settle(reserved, Decimal(0))
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
        self._settle(reserved, generation.cost_usd)
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
        stops) or the stop itself. Nothing is recorded and the job keeps its attempts."""
        if isinstance(error, FatalAPIError):
            self.ctx.fatal(error)
            return True
        return isinstance(error, RunStopping)

    def _journal_write(self, verdict: Verdict) -> str | None:
        journal = self.ctx.journal
        if journal is None:
            return None
        g = verdict.generation
        return journal.write(journal_entry(verdict, self.ctx.followers.get(g.task, ())))

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
        )
