"""A Prefect Cancel of a running ad-hoc flow: the job database says cancelled, with its reason,
and the jobs go back to the queue within seconds.

Issue 23: the flow run was CANCELLED in 2-3 s, but the run row said ``finished`` with no
reason and 138-164 jobs stayed leased to the dead process until the next run on that host or
their lease expired. Served through ``contentgen serve`` on a real Prefect server; the
simulator is slowed so the cancel lands mid-chunk.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling
from sqlalchemy import select

from flows.deployments import ADHOC
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Generation, Job, Run
from tests.flows.prefect_stack import PrefectStack

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]

LABEL = "cancel-batch"


@pytest.fixture
def slow_simulator(prefect_stack: PrefectStack) -> Iterator[None]:
    """The stack's simulator answering in about a second, then back to instant."""
    assert prefect_stack.simulator is not None
    root = prefect_stack.simulator.root_url
    httpx.post(f"{root}/_sim/faults", json={"latency_scale": 1.0}, timeout=10).raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{root}/_sim/faults", json={"latency_scale": 0.0}, timeout=10)


def rows(prefect_stack: PrefectStack, flow_run_id: str) -> tuple[list[Run], list[Job], int]:
    """The flow run's run rows, the batch's jobs, and how many generations they have."""
    engine = make_engine(prefect_stack.database_url)
    try:
        with session_factory(engine)() as session:
            runs = list(
                session.scalars(select(Run).where(Run.flow_run_id == flow_run_id).order_by(Run.id))
            )
            jobs = list(session.scalars(select(Job).where(Job.batch_label == LABEL)))
            answers = len(
                session.scalars(
                    select(Generation.id).where(Generation.run_id.in_([r.id for r in runs]))
                ).all()
            )
    finally:
        engine.dispose()
    return runs, jobs, answers


def test_cancel_marks_the_run_cancelled_and_releases_its_jobs(
    prefect_stack: PrefectStack, slow_simulator: None
) -> None:
    """Cancelled mid-chunk from Prefect: the run row ends ``cancelled`` with its reason within
    seconds, and none of the batch's jobs is left leased."""
    prefect_stack.enqueue(LABEL, articles=12, tasks=["summary", "headline"])
    flow_run = run_deployment(
        ADHOC, parameters={"batch": {"batch_label": LABEL, "concurrency": 2}}, timeout=0
    )
    flow_run_id = str(flow_run.id)
    deadline = time.monotonic() + 120
    while True:  # mid-chunk: a run row is open and has recorded an answer
        runs, _, answers = rows(prefect_stack, flow_run_id)
        if runs and runs[-1].state == "running" and answers >= 1:
            break
        assert time.monotonic() < deadline, f"never got going\n{prefect_stack.diagnostics()}"
        time.sleep(0.2)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
    cancelled_at = time.monotonic()
    while True:
        runs, jobs, _ = rows(prefect_stack, flow_run_id)
        leased = [j.id for j in jobs if j.state == "running"]
        if runs[-1].state != "running" and not leased:
            break
        assert time.monotonic() - cancelled_at < 30, (
            f"run {runs[-1].state}, {len(leased)} jobs leased\n{prefect_stack.diagnostics()}"
        )
        time.sleep(0.2)
    released_after_s = time.monotonic() - cancelled_at
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60
        while not (state := client.read_flow_run(flow_run.id).state) or not state.is_final():
            assert time.monotonic() < deadline, f"{state}\n{prefect_stack.diagnostics()}"
            time.sleep(0.5)
    assert state.is_cancelled(), f"{state}\n{prefect_stack.diagnostics()}"
    last = runs[-1]
    assert last.state == "cancelled", (last.state, last.stop_reason)
    assert last.stop_reason and "cancel" in last.stop_reason
    assert released_after_s < 15, released_after_s
    assert {j.state for j in jobs} <= {"queued", "succeeded"}
    assert all(j.lease_owner is None for j in jobs)
    assert any(j.state == "queued" for j in jobs)  # the cancel really stopped the work
