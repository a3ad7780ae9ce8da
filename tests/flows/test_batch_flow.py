"""The nightly/ad-hoc flow logic without a Prefect server: chunks, run rows and the report."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, update

from flows.batch import _label_of, execute_batch, trigger_of
from flows.chunks import RunContext
from flows.parameters import BatchParameters
from flows.reporting import RESULT_TEXT_CHARS, ResultRow, excerpt, outcome_message, result_text
from pipeline.db import queue
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Job, Run
from pipeline.settings import Settings
from tests.flows.prefect_stack import article
from tests.flows.support import RecordingPublisher, RowWritingRun

CONTEXT = RunContext(kind="adhoc", trigger="manual", flow_run_id="5f0c3c1e-flow-run")

SUMMARY = ("summary", "completed", 2000, 1536, 120, "0.0010", "0.0016")
HEADLINE = ("headline", "completed", 1800, 1536, 12, "0.0006", "0.0012")
FAILED = ("headline", "failed", 0, 0, 0, "0", "0")


def known_label(settings: Settings, label: str) -> None:
    """Make ``label`` known to the flow's label check: one job carries it, already done."""
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        queue.enqueue(session, [article(label, 0)], ["summary"], batch_label=label)
        session.execute(update(Job).values(state="succeeded"))
        session.commit()
    engine.dispose()


def test_runs_chunks_and_publishes_a_per_profile_table(settings: Settings) -> None:
    """Two chunks make two run rows with the flow-run id; the table sums them per profile."""
    known_label(settings, "spring")
    run = RowWritingRun(settings.database_url, [[SUMMARY, HEADLINE], [SUMMARY, FAILED]])
    publish = RecordingPublisher()
    result = execute_batch(
        settings.model_copy(update={"flow_chunk_size": 2}),
        BatchParameters(batch_label="spring"),
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
    assert "_Nothing queued._" in publish.markdowns["adhoc-forecast"]


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


def test_progress_results_and_the_outcome_message(settings: Settings) -> None:
    """The progress artifact starts at 0 of the queued jobs and moves with each chunk to 100 %;
    the results table lists each generation with an excerpt, tokens and cost; the message
    says what came of the run."""
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        queue.enqueue(session, [article("spring", n) for n in range(2)], ["summary", "headline"])
        session.commit()
    engine.dispose()
    run = RowWritingRun(settings.database_url, [[SUMMARY, HEADLINE], [SUMMARY, FAILED]])
    publish = RecordingPublisher()
    result = execute_batch(
        settings.model_copy(update={"flow_chunk_size": 2}),
        BatchParameters(),
        CONTEXT,
        run_chunk=run,
        publish=publish,
    )
    moves = publish.progresses["adhoc-progress"]
    assert moves[0] == (0.0, "0 of 4 done")
    assert [percent for percent, _ in moves] == [0.0, 50.0, 100.0, 100.0, 100.0]
    assert moves[-1][1] == "4 of 4 done (1 failed)"

    results = publish.tables["adhoc-results"]
    assert len(results) == 4
    assert {r["task"] for r in results} == {"summary", "headline"}
    assert list(results[0]) == ["article", "task", "text", "cost USD"]
    assert results[-1]["cost USD"] == "0.0010"
    assert result["message"] == "3 generated, 1 failed, $0.0026"


def test_an_excerpt_is_one_line_cut_at_a_word() -> None:
    """Long texts are cut at a word with an ellipsis; line breaks are flattened."""
    assert excerpt("a  b\nc") == "a b c"
    assert excerpt("word " * 100, chars=12) == "word word…"
    assert excerpt(None) == ""


def test_outcome_message_reads_like_a_sentence() -> None:
    """The final state message: counts with separators, dollars, and a stop reason."""
    outcome = {"succeeded": 1000, "failed": 2, "incomplete": 1, "cost_usd": "0.4213"}
    assert outcome_message(outcome) == "1,000 generated, 3 failed, $0.42"
    assert outcome_message({**outcome, "stop_reason": "budget"}).endswith("(stopped: budget)")


@pytest.mark.parametrize(("pace", "paced"), [("auto", True), ("off", False)])
def test_a_nightly_flow_paces_every_chunk_when_pacing_pays(
    settings: Settings, pace: str, paced: bool
) -> None:
    """One pacing decision for the whole flow run: a nightly run whose deadline allows it is
    paced (every chunk gets the rate) and says so; the Pace field "off" keeps full speed."""
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        queue.enqueue(session, [article("night", n) for n in range(30)], ["summary", "headline"])
    engine.dispose()
    run = RowWritingRun(settings.database_url, [])
    result = execute_batch(
        settings,
        BatchParameters(tasks=["summary", "headline"], pace=pace),  # type: ignore[arg-type]
        RunContext(kind="nightly", trigger="schedule", flow_run_id="x"),
        run_chunk=run,
        publish=RecordingPublisher(),
    )
    assert [o.paced_rpm is not None for o in run.options] == [paced]
    assert result["pacing"].startswith("paced: " if paced else "full speed (--no-pace)")


def test_the_nightly_run_links_to_its_queue_on_the_review_desk(settings: Settings) -> None:
    """The nightly run's state message and summary say what waits for editors and link to
    the desk's queue for the run's own outputs (CONTENTGEN_DESK_URL)."""
    known_label(settings, "spring")
    run = RowWritingRun(settings.database_url, [[SUMMARY, HEADLINE], [SUMMARY, FAILED]])
    publish = RecordingPublisher()
    result = execute_batch(
        settings.model_copy(update={"flow_chunk_size": 2, "desk_url": "https://desk.example/"}),
        BatchParameters(batch_label="spring"),
        RunContext(kind="nightly", trigger="schedule", flow_run_id="x"),
        run_chunk=run,
        publish=publish,
    )
    runs = ",".join(str(r) for r in result["run_ids"])
    url = f"https://desk.example/queue?batch=spring&run={runs.replace(',', '%2C')}"
    assert result["review"] == {
        "to_review": 3,
        "flagged": 0,
        "line": "3 to review, 0 flagged",
        "url": url,
    }
    assert result["message"] == f"3 generated, 1 failed, $0.0026; 3 to review, 0 flagged: {url}"
    assert (
        f"- Review desk: [3 to review, 0 flagged]({url})"
        in publish.markdowns["nightly-run-summary"]
    )


def _result(status: str, text: str | None, error: str | None = None) -> ResultRow:
    return ResultRow("a-1", "t", "key_points", status, text, error, 1, 0, 1, Decimal("0.01"))


def test_the_results_text_is_short_words_not_json() -> None:
    """The table's text cell fits a 1280 px window (``RESULT_TEXT_CHARS``), a structured output
    reads as its items, and a failure says its status and error."""
    points = _result("completed", '{"points": ["Council votes", "Bridge closes"]}')
    assert result_text(points) == "Council votes · Bridge closes"
    long = _result("completed", "word " * 100)
    assert len(result_text(long)) <= RESULT_TEXT_CHARS + 1
    assert result_text(long).endswith("…")
    assert result_text(_result("failed", None, "bad_request: too long")) == (
        "failed: bad_request: too long"
    )
    assert result_text(_result("completed", "{not json")) == "{not json"
