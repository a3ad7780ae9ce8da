"""Batch salvage (issue 22): a batch that ends early (expired, cancelled) is billed for the
lines it answered; those are recorded at batch price and only the rest goes on: an expired
batch's rest in one new batch (once), otherwise back to the queue, failing with reason
``expired`` on its last attempt. Through the simulator's Batch API over HTTP, with the SDK."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.batchmode.run import cancel_batch_async
from pipeline.db.models import Job
from pipeline.settings import Settings
from pipeline.simulator.server import SimulatorServer
from tests.test_batchmode import (
    API,
    batch_rows,
    batch_settings,
    enqueue,
    generations,
    job_states,
    run,
    sim,
)

__all__ = ["batch_settings", "sim"]  # fixtures used here


def billed(sim: SimulatorServer) -> Decimal:
    """What the simulator billed, all batches together."""
    return Decimal(str(sim.state.ledger.total_cost()))


def test_an_expired_batch_is_salvaged_and_only_its_rest_resubmitted_once(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Every batch expires with half its lines unrun: the first's answered half is recorded at
    batch price, its rest goes into one new batch; that one expires too, and its rest goes
    back to the queue (not a third batch). What is recorded is what the provider billed."""
    sim.configure(batch_expire_rate=1.0, batch_expire_unfinished=0.5)
    n = enqueue(sessions, 4)  # 8 jobs
    summary = run(batch_settings.model_copy(update={"batch_poll_max_s": 3600.0}), sim)

    first, second = batch_rows(sessions)
    assert (first.status, second.status) == ("expired", "expired")
    assert second.parent_id == first.id and second.requests == first.requests - first.completed
    assert first.completed == n // 2 and second.completed == second.requests // 2
    gens = generations(sessions)
    assert len(gens) == first.completed + second.completed
    assert {g.price_tier for g in gens} == {"batch"} and {g.status for g in gens} == {"completed"}
    assert sum((g.cost_usd for g in gens), Decimal(0)) == billed(sim) > 0
    assert first.cost_usd + second.cost_usd == billed(sim)
    states = job_states(sessions)
    assert states == {"succeeded": len(gens), "queued": n - len(gens)}
    counts = summary.as_dict()
    assert counts["salvaged_lines"] == len(gens)
    assert counts["resubmitted"] == second.requests
    assert counts["requeued"] == n - len(gens)
    assert "re-submitted" in (first.error or "")


def test_without_resubmission_the_rest_fails_with_reason_expired_on_its_last_attempt(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """batch_resubmit_expired off and one attempt per job: the answered lines succeed at
    batch price, the unrun ones are dead letters with reason expired and the provider's
    message."""
    sim.configure(batch_expire_rate=1.0, batch_expire_unfinished=0.5)
    n = enqueue(sessions, 3)
    settings = batch_settings.model_copy(
        update={"batch_poll_max_s": 3600.0, "batch_resubmit_expired": False, "max_attempts": 1}
    )
    run(settings, sim)
    (row,) = batch_rows(sessions)
    assert row.status == "expired" and 0 < row.completed < n
    with sessions() as session:
        failed = session.execute(
            select(Job.failure_reason, Job.last_error).where(Job.state == "failed")
        ).all()
    assert len(failed) == n - row.completed
    assert {reason for reason, _ in failed} == {"expired"}
    assert all("batch_expired" in (error or "") for _, error in failed)
    assert sum((g.cost_usd for g in generations(sessions)), Decimal(0)) == billed(sim) > 0


def test_a_batch_cancelled_part_way_keeps_what_ran_and_queues_the_rest(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Cancelled when about half its lines had run: those are recorded at batch price (the
    provider bills them), the rest goes back to the queue, not into a new batch."""
    n = enqueue(sessions, 3)  # 6 jobs: validated after 10 s, processed over 61.2 s
    run(batch_settings, sim, wait=False)
    (row,) = batch_rows(sessions)
    sim.advance(10 + 35)  # 3 of 6 lines due

    async def cancel() -> Any:
        api = API(sim)
        try:
            return await cancel_batch_async(batch_settings, str(row.id), api=api)
        finally:
            await api.sdk.close()

    assert asyncio.run(cancel()).status == "cancelling"
    summary = run(batch_settings, sim, submit=False).as_dict()
    (row,) = batch_rows(sessions)
    assert row.status == "cancelled" and row.completed == 3
    gens = generations(sessions)
    assert len(gens) == 3 and {g.price_tier for g in gens} == {"batch"}
    assert sum((g.cost_usd for g in gens), Decimal(0)) == billed(sim) == row.cost_usd > 0
    assert job_states(sessions) == {"succeeded": 3, "queued": n - 3}
    assert (summary["salvaged_lines"], summary["resubmitted"], summary["requeued"]) == (
        3,
        0,
        n - 3,
    )
