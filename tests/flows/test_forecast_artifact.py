"""The forecast artifact reads as a table per task, and its rows add up to the dry run's total."""

from __future__ import annotations

from decimal import Decimal

from flows.batch import execute_batch
from flows.chunks import RunContext
from flows.parameters import BatchParameters
from pipeline.db import make_engine, queue, session_factory
from pipeline.money import format_usd
from pipeline.run import RunOptions, dry_run, forecast_markdown
from pipeline.run.dryrun import DryRunReport
from pipeline.settings import Settings
from tests.flows.prefect_stack import article
from tests.flows.support import RecordingPublisher, RowWritingRun

CONTEXT = RunContext(kind="adhoc", trigger="manual", flow_run_id="forecast-test")


def _enqueue(settings: Settings, articles: int) -> None:
    engine = make_engine(settings.database_url)
    with session_factory(engine)() as session:
        queue.enqueue(session, [article("fc", n) for n in range(articles)], ["summary", "headline"])
    engine.dispose()


def test_per_task_forecasts_add_up_to_the_total(settings: Settings) -> None:
    """Each task's requests, tokens and cost; together exactly the dry run's figures."""
    _enqueue(settings, 4)
    report = dry_run(settings, RunOptions(tasks=["summary", "headline"]))
    assert set(report.task_forecasts) == {"summary", "headline"}
    forecasts = report.task_forecasts.values()
    assert sum(f.cost_usd for f in forecasts) == report.cost_usd > 0
    assert sum(f.input_tokens for f in forecasts) == report.input_tokens
    assert sum(f.cached_tokens for f in forecasts) == report.cached_tokens
    assert sum(f.output_tokens for f in forecasts) == report.output_tokens
    assert report.as_dict()["by_task_forecast"]["summary"]["requests"] >= 4


def test_the_dry_run_artifact_is_a_markdown_table_per_task(settings: Settings) -> None:
    """No raw key dump: a sentence, a table with task, jobs, requests, tokens, cached share and
    forecast cost (format_usd), a total row, then the plan in words."""
    _enqueue(settings, 3)
    publish = RecordingPublisher()
    result = execute_batch(
        settings,
        BatchParameters(dry_run=True, tasks=["summary", "headline"]),
        CONTEXT,
        run_chunk=RowWritingRun(settings.database_url, []),
        publish=publish,
    )
    text = publish.markdowns["adhoc-forecast"]
    assert result["dry_run"] is True and result["jobs"] == 6
    lines = text.splitlines()
    assert lines[0] == "# ContentGen adhoc forecast (dry run)"
    header = "| task | jobs | requests | input tokens | cached | output tokens | forecast cost |"
    assert header in lines
    rows = {line.split(" | ")[0].strip("| *"): line for line in lines if line.startswith("| ")}
    assert {"headline", "summary", "total"} <= set(rows)
    assert rows["headline"].split(" | ")[1] == "3"
    assert rows["total"].split(" | ")[1] == "**6**"
    total_cost = Decimal(result["forecast_cost_usd"])
    assert rows["total"].rstrip(" |").endswith(f"**{format_usd(total_cost)}**")
    assert f"would cost **{format_usd(total_cost)}**" in text
    assert "## Plan" in text and "cache-key bucket" in text
    # None of the old dump's raw keys.
    assert "forecast_cost_usd" not in text and "**jobs**" not in text


def test_an_empty_forecast_says_nothing_is_queued() -> None:
    """No queued job: one sentence instead of an empty table."""
    text = forecast_markdown(DryRunReport(), "Forecast")
    assert "_Nothing queued._" in text
    assert "## Plan" not in text
