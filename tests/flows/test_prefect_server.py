"""The deployments on a real Prefect server: schedule, an ad-hoc run through the API, artifacts."""

from __future__ import annotations

import json
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy import func, select

from flows.deployments import ADHOC, COST_REPORT, NIGHTLY
from flows.gate import open_token_gate
from flows.reporting import outcome_message
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Generation, Job, Run
from tests.flows.prefect_stack import (
    FLOW_CHUNK_SIZE,
    NIGHTLY_CRON,
    TIMEZONE,
    TOKEN_LIMIT,
    PrefectStack,
    flow_run_artifacts,
)

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]

RUN_TIMEOUT_S = 180


def test_nightly_deployment_has_the_configured_schedule_and_never_overlaps(
    prefect_stack: PrefectStack,
) -> None:
    """Served nightly: cron and time zone from settings, concurrency limit 1, schedule active."""
    with get_client(sync_client=True) as client:
        nightly = client.read_deployment_by_name(NIGHTLY)
        adhoc = client.read_deployment_by_name(ADHOC)
    (schedule,) = nightly.schedules
    assert schedule.schedule.cron == NIGHTLY_CRON  # type: ignore[union-attr]
    assert schedule.schedule.timezone == TIMEZONE  # type: ignore[union-attr]
    assert schedule.active
    assert nightly.paused is False
    assert nightly.global_concurrency_limit is not None
    assert nightly.global_concurrency_limit.limit == 1
    assert adhoc.schedules == []
    assert adhoc.global_concurrency_limit is None


def test_adhoc_run_generates_its_batch_and_publishes_artifacts(
    prefect_stack: PrefectStack,
) -> None:
    """An ad-hoc run started through the API generates exactly its batch, in chunk tasks."""
    prefect_stack.enqueue("api-batch", articles=3, tasks=["summary", "headline"])
    prefect_stack.enqueue("other-batch", articles=2, tasks=["summary"])
    flow_run = run_deployment(
        ADHOC,
        parameters={"batch": {"tasks": ["summary", "headline"], "batch_label": "api-batch"}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert flow_run.state is not None
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{prefect_stack.diagnostics()}"
    assert flow_run.name == "adhoc-api-batch"

    engine = make_engine(prefect_stack.database_url)
    with session_factory(engine)() as session:
        # Other tests of the session use other labels on the same database.
        states = dict(
            session.execute(
                select(Job.batch_label, func.group_concat(Job.state.distinct()))
                .where(Job.batch_label.in_(["api-batch", "other-batch"]))
                .group_by(Job.batch_label)
            ).all()
        )
        runs = session.scalars(select(Run).where(Run.flow_run_id == str(flow_run.id))).all()
        generations = session.scalars(
            select(Generation).where(Generation.run_id.in_([r.id for r in runs]))
        ).all()
    engine.dispose()
    assert states == {"api-batch": "succeeded", "other-batch": "queued"}
    assert FLOW_CHUNK_SIZE == 4  # serve's CONTENTGEN_FLOW_CHUNK_SIZE
    assert len(runs) == 2  # 6 jobs in chunks of 4: two chunk tasks, two run rows
    assert {(r.kind, r.trigger) for r in runs} == {("adhoc", "manual")}
    assert sorted(g.task for g in generations) == ["headline"] * 3 + ["summary"] * 3
    assert all(g.status == "completed" and g.output_text for g in generations)

    artifacts = flow_run_artifacts(flow_run.id)
    assert {"adhoc-cost-by-profile", "adhoc-run-summary"} <= set(artifacts)
    table = artifacts["adhoc-cost-by-profile"]
    assert table.type == "table"
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [(r["profile"], r["requests"]) for r in rows] == [
        ("headline", 3),
        ("summary", 3),
        ("total", 6),
    ]
    summary = artifacts["adhoc-run-summary"]
    assert summary.type == "markdown"
    assert "6 requests" in str(summary.data)
    progress = artifacts["adhoc-progress"]
    assert progress.type == "progress"
    assert float(progress.data) == 100.0
    assert progress.description == "6 of 6 done"
    results = artifacts["adhoc-results"]
    assert results.type == "table"
    result_rows = json.loads(results.data) if isinstance(results.data, str) else results.data
    assert sorted((r["article"], r["task"]) for r in result_rows) == sorted(
        (f"api-batch-{n}", task) for n in range(3) for task in ("summary", "headline")
    )
    assert all(r["text"] for r in result_rows)
    cost = sum(Decimal(r["cost USD"]) for r in result_rows)
    assert flow_run.state.message == outcome_message(
        {"succeeded": 6, "failed": 0, "cost_usd": cost}
    )

    # The token gate took blocks from the shared rate limit (slots decay very slowly here).
    used = sum(g.input_tokens + g.output_tokens for g in generations)
    with get_client(sync_client=True) as client:
        gate = client.read_global_concurrency_limit_by_name(TOKEN_LIMIT)
    assert gate.active_slots >= used // 1000 - 1


def test_adhoc_parameters_are_validated_before_a_run_is_created(
    prefect_stack: PrefectStack,
) -> None:
    """A limit of 0 is refused by the server: no flow run is created."""
    with pytest.raises(PrefectHTTPStatusError, match=r"batch\.limit.*minimum of 1"):
        run_deployment(ADHOC, parameters={"batch": {"limit": 0}}, timeout=0)


def test_cost_report_deployment_publishes_the_report(prefect_stack: PrefectStack) -> None:
    """The cost report runs from its deployment and publishes a table by task."""
    prefect_stack.enqueue("report-batch", articles=1, tasks=["headline"])
    flow_run = run_deployment(
        COST_REPORT, parameters={"days": 1, "by": "task"}, timeout=RUN_TIMEOUT_S, poll_interval=1
    )
    assert flow_run.state is not None
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{prefect_stack.diagnostics()}"
    artifacts = flow_run_artifacts(flow_run.id)
    assert artifacts["cost-report-by-task"].type == "table"
    assert "Total:" in str(artifacts["cost-report-by-task-summary"].data)
    chart = artifacts["cost-report-by-task-chart"]
    assert chart.type == "markdown"
    assert "```text\nDaily cost by profile (UTC)" in str(chart.data)


def test_nightly_run_is_named_after_its_day_and_labels_its_runs(
    prefect_stack: PrefectStack,
) -> None:
    """A nightly run (started by hand here) is named nightly-<day> and records kind nightly."""
    prefect_stack.enqueue("nightly-batch", articles=1, tasks=["summary"])
    flow_run = run_deployment(
        NIGHTLY,
        parameters={"batch": {"batch_label": "nightly-batch"}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert flow_run.state is not None
    assert flow_run.state.is_completed(), f"{flow_run.state}\n{prefect_stack.diagnostics()}"
    assert flow_run.expected_start_time is not None
    day = flow_run.expected_start_time.astimezone(ZoneInfo(TIMEZONE)).date()
    assert flow_run.name == f"nightly-{day.isoformat()}"
    engine = make_engine(prefect_stack.database_url)
    with session_factory(engine)() as session:
        runs = session.scalars(select(Run).where(Run.flow_run_id == str(flow_run.id))).all()
    engine.dispose()
    assert [(r.kind, r.trigger, r.requests) for r in runs] == [("nightly", "manual", 1)]
    assert {"nightly-cost-by-profile", "nightly-run-summary"} <= set(
        flow_run_artifacts(flow_run.id)
    )


def test_token_gate_is_off_without_a_limit_and_refuses_a_plain_concurrency_limit(
    prefect_stack: PrefectStack,
) -> None:
    """A missing limit turns the gate off; a limit without slot decay is refused by name."""
    assert open_token_gate("no-such-limit") is None
    gate = open_token_gate(TOKEN_LIMIT)
    assert gate is not None
    assert gate.slots > 0
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="plain-limit", limit=5)
        )
    with pytest.raises(ValueError, match="'plain-limit' has no slot decay"):
        open_token_gate("plain-limit")
