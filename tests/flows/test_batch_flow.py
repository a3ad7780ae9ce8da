"""The nightly/ad-hoc flow logic without a Prefect server: chunks, run rows and the report."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from flows.batch import _label_of, execute_batch, trigger_of
from flows.chunks import RunContext
from flows.parameters import BatchParameters
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Run
from pipeline.settings import Settings
from tests.flows.support import RecordingPublisher, RowWritingRun

CONTEXT = RunContext(kind="adhoc", trigger="manual", flow_run_id="5f0c3c1e-flow-run")

SUMMARY = ("summary", "completed", 2000, 1536, 120, "0.0010", "0.0016")
HEADLINE = ("headline", "completed", 1800, 1536, 12, "0.0006", "0.0012")
FAILED = ("headline", "failed", 0, 0, 0, "0", "0")


def test_runs_chunks_and_publishes_a_per_profile_table(settings: Settings) -> None:
    """Two chunks make two run rows with the flow-run id; the table sums them per profile."""
    run = RowWritingRun(settings.database_url, [[SUMMARY, HEADLINE], [SUMMARY, FAILED]])
    publish = RecordingPublisher()
    result = execute_batch(
        settings,
        BatchParameters(chunk_size=2, batch_label="spring"),
        CONTEXT,
        run_chunk=run,
        publish=publish,
    )
    assert result["chunks"] == 3  # the third, empty chunk found the queue drained
    assert result["requests"] == 4
    assert result["flow_run_id"] == CONTEXT.flow_run_id

    table = publish.tables["adhoc-cost-by-profile"]
    assert [row["profile"] for row in table] == ["headline", "summary", "total"]
    headline, summary, total = table
    assert summary["requests"] == 2
    assert summary["cost USD"] == "0.0020"
    assert summary["savings USD"] == "0.0012"
    assert summary["cached %"] == "76.8"
    assert headline["failures"] == 1
    assert total["requests"] == 4
    assert total["savings USD"] == "0.0018"

    markdown = publish.markdowns["adhoc-run-summary"]
    assert "4 requests (1 failed" in markdown
    assert "| summary |" in markdown

    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        runs = session.scalars(select(Run).order_by(Run.id)).all()
    engine.dispose()
    assert [r.flow_run_id for r in runs] == [CONTEXT.flow_run_id] * 3
    assert {r.kind for r in runs} == {"adhoc"}
    assert runs[0].parameters is not None
    assert runs[0].parameters["batch_label"] == "spring"


def test_empty_queue_publishes_an_empty_report(settings: Settings) -> None:
    """Nothing queued: one empty chunk, and the artifacts say there were no generations."""
    publish = RecordingPublisher()
    result = execute_batch(
        settings,
        BatchParameters(),
        RunContext(kind="nightly", trigger="schedule", flow_run_id="x"),
        run_chunk=RowWritingRun(settings.database_url, []),
        publish=publish,
    )
    assert result["requests"] == 0
    assert publish.tables["nightly-cost-by-profile"][-1]["requests"] == 0
    assert "_No generations._" in publish.markdowns["nightly-run-summary"]


def test_dry_run_sends_nothing_and_publishes_a_forecast(settings: Settings) -> None:
    """A dry run never calls the run function; it publishes the library's forecast."""
    run = RowWritingRun(settings.database_url, [[SUMMARY]])
    publish = RecordingPublisher()
    result = execute_batch(
        settings,
        BatchParameters(dry_run=True, budget_usd=Decimal("1")),
        CONTEXT,
        run_chunk=run,
        publish=publish,
    )
    assert run.options == []
    assert result["dry_run"] is True
    assert result["jobs"] == 0
    assert "forecast_cost_usd" in publish.markdowns["adhoc-forecast"]


@pytest.mark.parametrize(
    ("deployment_id", "auto_scheduled", "expected"),
    [(None, None, "api"), ("d", True, "schedule"), ("d", False, "manual"), ("d", None, "manual")],
)
def test_trigger_of_a_flow_run(
    deployment_id: str | None, auto_scheduled: bool | None, expected: str
) -> None:
    """Scheduler-made runs are 'schedule', other deployment runs 'manual', direct calls 'api'."""
    assert trigger_of(deployment_id, auto_scheduled) == expected


def test_batch_label_is_read_from_model_or_json_parameters() -> None:
    """The run name finds the label whether Prefect hands over the model or its JSON."""
    assert _label_of(BatchParameters(batch_label="x1")) == "x1"
    assert _label_of({"batch_label": "x2"}) == "x2"
    assert _label_of({"batch_label": None}) is None
    assert _label_of(None) is None
