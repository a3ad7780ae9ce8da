"""Runs in containers that share a host name but not a pid namespace leave each other alone.

Issue 23: a second run with the same host name in its own pid namespace (containers on the
host network) took the first run's 138 live leases at start, because the first run's pid did
not exist where it looked, and closed it as abandoned: 85 jobs billed twice. A run now records
where its pid means something (``procs.host_id``: boot id and pid namespace) and beats in its
row; another namespace judges it by that heartbeat only. And a result is fenced by the token
of the claim that sent it: an answer that comes back after its claim was handed on is stored
as paid (status ``lost``) and completes nothing.
"""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import jobs, leases, queue
from pipeline.db.models import Generation, Job, Run, utcnow
from pipeline.db.outcomes import OutcomeRow, record_outcomes
from pipeline.db.procs import host_id, pid_alive
from pipeline.db.runs import open_run
from pipeline.intake.reader import ArticleIn
from tests.engine_support import (
    completed_per_job,
    engine_settings,
    finish,
    generations,
    ledger_requests,
    recorded_cost,
    run_rows,
    seed,
    simulator,
    wait_until,
    worker,
)


def own_pid_namespace() -> list[str]:
    """``unshare`` into a new pid namespace (same host name, same file system); needs root,
    which CI has: without it this fails, it does not skip."""
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is needed for the container test"
    return [unshare, "--pid", "--fork", "--mount-proc"]


# Containers share a database server, not a file: PostgreSQL only.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_run_in_another_pid_namespace_does_not_take_live_leases(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Run A holds leases; run B starts in its own pid namespace with the same host name: B
    takes nothing of A's, A finishes as finished, every job is generated and paid once."""
    ids = seed(engine, ["summary", "headline"], n=12)
    with simulator(latency_scale=1.0) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        with worker(settings, concurrency=4, chunk_size=16) as first:
            wait_until(lambda: len(generations(engine)) >= 2, proc=first)
            with worker(
                settings, concurrency=4, chunk_size=16, wrapper=own_pid_namespace()
            ) as second:
                done_second = finish(second, timeout_s=120)
            done_first = finish(first, timeout_s=120)
        counts = ledger_requests(sim)
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])

    assert done_first["state"] == "finished", done_first
    assert done_second["state"] == "finished", done_second
    assert [r.state for r in run_rows(engine)] == ["finished", "finished"]
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert counts["completed"] == len(ids)  # nothing sent twice
    assert recorded_cost(engine) == billed
    hosts = {r.host_id for r in run_rows(engine)}
    assert len(hosts) == 2 and host_id() in hosts  # same host name, two pid namespaces


def answer(job_id: int, run_id: int, response_id: str) -> Generation:
    """A paid, completed answer for ``job_id``."""
    return Generation(
        job_id=job_id,
        run_id=run_id,
        task="summary",
        status="completed",
        response_id=response_id,
        request_model="gpt-4.1-mini",
        output_text="ok",
        input_tokens=100,
        output_tokens=10,
        cost_usd=Decimal("0.0001"),
    )


def test_a_late_answer_of_a_run_declared_dead_is_paid_but_completes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """Run A (another namespace) stops beating; B judges it dead by its heartbeat, takes the
    job, and completes it. A's answer then arrives: stored as paid with status ``lost``, the
    job keeps B's result; A's own fence (its claim's token) refuses it even under A's name."""
    now = utcnow()
    with sessions() as s:
        queue.enqueue(s, [ArticleIn(source_id="a", title="T", body="B")], ["summary"])
        run_a = open_run(s, kind="cli", trigger="cli", worker="web:7", host_id="elsewhere")
        run_b = open_run(s, kind="cli", trigger="cli", worker="web:8", host_id=host_id())
        owner_a, owner_b = f"web:7:run{run_a}", f"web:8:run{run_b}"
        claim_a = jobs.claim_leases(s, owner_a, 1, lease_s=600)
        [job_id] = [j.id for j in claim_a.jobs]
        # A fresh heartbeat: alive, whatever its pid says here.
        live = leases.reclaim_dead(
            s, host="web", is_alive=pid_alive, host_id=host_id(), stale_s=30, now=now
        )
        assert live.jobs_released == 0 and live.runs_abandoned == ()
        # A stops beating; 31 s later B takes its job back and claims it again.
        s.execute(update(Run).where(Run.id == run_a).values(heartbeat_at=now))
        s.commit()
        later = now + dt.timedelta(seconds=31)
        dead = leases.reclaim_dead(
            s, host="web", is_alive=pid_alive, host_id=host_id(), stale_s=30, now=later
        )
        assert dead.jobs_released == 1 and dead.runs_abandoned == (run_a,)
        claim_b = jobs.claim_leases(s, owner_b, 1, lease_s=600)
        assert claim_b.tokens[job_id] == claim_a.tokens[job_id] + 1
        assert record_outcomes(
            s,
            owner_b,
            [OutcomeRow(answer(job_id, run_b, "resp_b"), True, lease_token=claim_b.tokens[job_id])],
            max_attempts=5,
        ) == ["succeeded"]
        late = record_outcomes(
            s,
            owner_a,
            [OutcomeRow(answer(job_id, run_a, "resp_a"), True, lease_token=claim_a.tokens[job_id])],
            max_attempts=5,
        )
        assert late == ["lost"]
        # Even a stale claim under the current owner's name is fenced by its token.
        queue_again = s.execute(
            update(Job).where(Job.id == job_id).values(state="running", lease_owner=owner_b)
        )
        assert queue_again.rowcount == 1  # type: ignore[attr-defined]
        s.commit()
        stale = record_outcomes(
            s,
            owner_b,
            [
                OutcomeRow(
                    answer(job_id, run_b, "resp_stale"), True, lease_token=claim_a.tokens[job_id]
                )
            ],
            max_attempts=5,
        )
        assert stale == ["lost"]
        rows = list(
            s.execute(
                select(Generation.response_id, Generation.status, Generation.cost_usd).order_by(
                    Generation.id
                )
            )
        )
    assert [(r[0], r[1]) for r in rows] == [
        ("resp_b", "completed"),
        ("resp_a", "lost"),
        ("resp_stale", "lost"),
    ]
    assert all(r[2] == Decimal("0.0001") for r in rows)  # every answer recorded as paid
