"""A run's budgets: its own ``--budget-usd`` and the recurring ones that cover its jobs.

Each request reserves its worst case in every budget that covers its job before it is sent
and settles the actual cost afterwards (``money.Budget``). A recurring budget's local limit is
the run's *grant* from the database (``db.grant``): when a reservation does not fit, the run
asks for more, at most what the limit leaves after other runs' spend and grants, so runners on
one database never pass a daily or monthly limit together. A request that fits no grant stops
the run like ``--budget-usd`` does (``stop("budget")``: exit 3, unsent jobs queued).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import ClaimedJob, Grant, grant, release_grants, utcnow
from pipeline.money import Budget, BudgetFile, BudgetSpec, period_bounds

log = logging.getLogger("contentgen.run")
# A grant asks for this many worst cases beyond the request at hand (at most GRANT_SHARE of
# the limit): fewer database calls, while another runner may be refused what this one holds
# unspent. A runner refused while others hold unspent grants waits for them to settle, up to
# WAIT_OTHERS_S.
GRANT_REQUESTS = 8
GRANT_SHARE = Decimal("0.05")
WAIT_OTHERS_S = 30.0
OTHERS_POLL_S = 0.2

Held = list[Budget]
"""The budgets one request reserved in (settled together)."""


@dataclass
class Recurring:
    """One recurring budget in one period, as this run holds it."""

    spec: BudgetSpec
    start: dt.datetime
    end: dt.datetime
    budget: Budget
    lock: asyncio.Lock
    others_usd: Decimal = Decimal(0)  # other runs' spend and grants, at the last grant
    others_unspent_usd: Decimal = Decimal(0)  # of which granted to running runs, not spent


class Budgets:
    """Reservations of one run in its ``--budget-usd`` and its recurring budgets."""

    def __init__(
        self,
        run_budget: Budget | None,
        budgets: BudgetFile,
        sessions: sessionmaker[Session],
        db_call: Callable[..., Awaitable[Any]],
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.run_budget = run_budget
        self.file = budgets
        self.sessions = sessions
        self.db_call = db_call
        self.now = now
        self.run_id: int | None = None
        self.scopes: dict[int, tuple[str | None, str, str | None]] = {}
        self.held: dict[tuple[str, dt.datetime], Recurring] = {}
        self.stopped_by: str | None = None

    @property
    def active(self) -> bool:
        """Whether any budget applies to this run."""
        return self.run_budget is not None or bool(self.file.budgets)

    def note(self, claimed: Iterable[ClaimedJob]) -> None:
        """Remember what each claimed job is (label, task, section): what it spends from."""
        if self.file.budgets:
            for job in claimed:
                self.scopes[job.id] = (job.batch_label, job.task, job.section)

    def _covering(self, job_id: int, task: str) -> list[Recurring]:
        label, _, section = self.scopes.get(job_id, (None, task, None))
        now = self.now()
        found = []
        for spec in self.file.budgets:
            if not spec.covers(label, task, section):
                continue
            start, end = period_bounds(spec.period, now, self.file.timezone)
            held = self.held.get((spec.key, start))
            if held is None:
                held = self.held[(spec.key, start)] = Recurring(
                    spec, start, end, Budget(Decimal(0)), asyncio.Lock()
                )
            found.append(held)
        return found

    async def _top_up(self, rec: Recurring, amount: Decimal) -> None:
        """Ask the database to raise this run's grant so ``amount`` fits, with headroom."""
        async with rec.lock:
            b = rec.budget
            if b.spent_usd + b.reserved_usd + amount <= b.limit_usd:
                return  # another request's top-up made room meanwhile
            floor = b.spent_usd + b.reserved_usd
            headroom = min(amount * GRANT_REQUESTS, rec.spec.limit_usd * GRANT_SHARE)
            wanted = floor + amount + headroom
            assert self.run_id is not None

            def ask() -> Grant:
                with self.sessions() as session:
                    return grant(
                        session,
                        rec.spec,
                        rec.start,
                        rec.end,
                        run_id=self.run_id or 0,
                        wanted_usd=wanted,
                        floor_usd=floor,
                    )

            answer: Grant = await self.db_call(ask)
            b.limit_usd = answer.granted_usd
            rec.others_usd = answer.others_usd
            rec.others_unspent_usd = answer.others_unspent_usd

    async def reserve(
        self,
        amount: Decimal,
        job_id: int,
        task: str,
        *,
        settled: asyncio.Event,
        stopping: Callable[[], bool],
    ) -> Held | None:
        """Reserve ``amount`` in every budget covering the job, or None (nothing reserved)
        when one has no room even after in-flight requests settle, this run's and, for up to
        ``WAIT_OTHERS_S``, other runs': the run stops."""
        waited = 0.0
        while True:
            held: Held = []
            blocked: Budget | None = None
            recurring = {id(r.budget): r for r in self._covering(job_id, task)}
            candidates = ([self.run_budget] if self.run_budget else []) + [
                r.budget for r in recurring.values()
            ]
            for budget in candidates:
                if not budget.reserve(amount):
                    rec = recurring.get(id(budget))
                    if rec is not None:
                        await self._top_up(rec, amount)
                    if rec is None or not budget.reserve(amount):
                        blocked = budget
                        break
                held.append(budget)
            if blocked is None:
                return held
            for budget in held:
                budget.reserved_usd -= amount
            rec = recurring.get(id(blocked))
            if (
                blocked.reserved_usd <= 0
                and rec is not None
                and rec.others_unspent_usd > 0
                and waited < WAIT_OTHERS_S
                and not stopping()
            ):
                # Other runners hold grants they have not spent: what they do not use comes
                # back when they settle or ask again.
                await asyncio.sleep(OTHERS_POLL_S)
                waited += OTHERS_POLL_S
                continue
            if blocked.reserved_usd <= 0 or stopping():
                if rec is not None and self.stopped_by is None:
                    self.stopped_by = rec.spec.key
                    log.info(
                        "stopping: the %s budget %s has no room for another request (limit $%s)",
                        rec.spec.period,
                        rec.spec.key,
                        rec.spec.limit_usd,
                    )
                return None
            settled.clear()
            await settled.wait()

    def reserve_now(self, amount: Decimal, job_id: int, task: str) -> Held | None:
        """Reserve without waiting or asking the database (a check's retry): None if any
        budget covering the job has no room in what it holds."""
        candidates = ([self.run_budget] if self.run_budget else []) + [
            r.budget for r in self._covering(job_id, task)
        ]
        return candidates if reserve_all(candidates, amount) else None

    def lines(self) -> list[tuple[str, Decimal, Decimal]]:
        """Per recurring budget this run spent from: name, the period's spend as this run
        last saw it (others' spend and grants at its last grant, plus its own), limit."""
        return [
            (rec.spec.key, rec.others_usd + rec.budget.spent_usd, rec.spec.limit_usd)
            for rec in self.held.values()
        ]

    async def close(self) -> None:
        """Give back this run's grants (its spend is recorded; the database counts that)."""
        if self.run_id is None or not self.held:
            return
        run_id = self.run_id

        def release() -> int:
            with self.sessions() as session:
                return release_grants(session, run_id)

        await self.db_call(release)


def reserve_all(held: Held, amount: Decimal) -> bool:
    """Reserve ``amount`` in each of ``held`` or in none."""
    done: Held = []
    for budget in held:
        if not budget.reserve(amount):
            for b in done:
                b.reserved_usd -= amount
            return False
        done.append(budget)
    return True


def settle(held: Held, reserved: Decimal, actual: Decimal) -> None:
    """Replace ``reserved`` by ``actual`` in each budget a request reserved in."""
    for budget in held:
        budget.settle(reserved, actual)
