"""kill -9 at random moments, twenty times, then a run to the end: nothing lost or failed.

Each worker is a real process running ``run_batch`` over HTTP against the simulator, killed
with SIGKILL at a random point (seeded). The next worker starts at once: it takes back the
dead worker's leases (same host, pid gone), records what the dead one paid for (the journal)
and goes on. At the end every job has exactly one completed generation, none failed, no job
counts an attempt that was never sent, the prompts paid twice are at most the requests in
flight at the kills, and the recorded cost equals the bill less those abandoned requests.
"""

from __future__ import annotations

import random
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.engine_support import (
    completed_per_job,
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    recorded_cost,
    run_engine,
    run_rows,
    seed,
    simulator,
    states,
    wait_until,
    worker,
)

KILLS = 20
CONCURRENCY = 4


@pytest.mark.slow
def test_twenty_kills_lose_nothing_and_fail_nothing(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """20 SIGKILLs at random points over 144 jobs: 0 lost, 0 failed, bill - recorded bounded."""
    ids = seed(engine, ["summary", "headline", "key_points", "fact_check"], n=36)
    rng = random.Random(20)
    with simulator(latency_scale=1.0) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        for _ in range(KILLS):
            before = len(generations(engine))
            with worker(settings, concurrency=CONCURRENCY) as proc:
                # Mid-run: once this worker has recorded something, at a random moment.
                wait_until(lambda before=before: len(generations(engine)) > before, proc=proc)
                time.sleep(rng.uniform(0.0, 0.3))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
        final = run_engine(settings)
        counts = ledger_requests(sim)
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])

    assert final.state == "finished"
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert states(engine) == {"succeeded": len(ids)}
    assert len(ids) == 144
    assert all(job.attempts >= 1 for job in job_rows(engine))
    assert {g.status for g in generations(engine)} <= {"completed", "incomplete", "prewarm"}
    # Paid twice at most for the calls in flight at each kill.
    assert counts["completed"] - len(ids) <= KILLS * CONCURRENCY
    recorded = recorded_cost(engine)
    costs = [g.cost_usd for g in generations(engine)]
    assert recorded <= billed <= recorded + KILLS * CONCURRENCY * max(costs)
    # Every killed run was closed as abandoned by the run after it; most kills hit work.
    killed = [r for r in run_rows(engine)[:-1] if r.state == "abandoned"]
    assert {r.state for r in run_rows(engine)[:-1]} <= {"abandoned", "finished"}
    assert len(killed) == KILLS
