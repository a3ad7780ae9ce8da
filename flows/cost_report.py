"""The cost-report flow: what generations cost over the last days, as artifacts and a result.

The numbers are the library's (``pipeline.reports.costs.cost_report``, read from the report views),
the same as ``contentgen report``; this flow publishes them as a table and a Markdown artifact
on its flow run, with the daily chart (``pipeline.reports.chart_markdown``: the picture of
``contentgen report --chart FILE`` and the text bars of ``--chart -``), and returns them as
plain values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from prefect import flow
from pydantic import Field

from flows.artifacts import ArtifactPublisher, Publisher
from flows.reporting import report_markdown, report_rows, table
from pipeline.db import make_engine, require_migrated, session_factory
from pipeline.reports import (
    CostReport,
    DayTaskCost,
    Dimension,
    ReportFilter,
    chart_markdown,
    cost_report,
    load_chart_rows,
)
from pipeline.settings import Settings, get_settings


def utc_today() -> dt.date:
    """Today as a UTC day (report days are UTC days)."""
    return dt.datetime.now(dt.UTC).date()


def chart_series(by: Dimension) -> Dimension:
    """What the daily chart stacks its bars by: the report's dimension, by task for ``day``
    (as ``contentgen report --chart`` does)."""
    return "task" if by == "day" else by


def make_report(
    settings: Settings, *, days: int, by: Dimension, today: dt.date
) -> tuple[CostReport, list[DayTaskCost]]:
    """The cost report ``by`` a dimension over the ``days`` UTC days ending ``today``, and
    its daily chart's cells."""
    engine = make_engine(settings.database_url)
    try:
        require_migrated(engine)
        with session_factory(engine)() as session:
            since = today - dt.timedelta(days=days - 1)
            flt = ReportFilter(since=since, until=today)
            report = cost_report(session, by, flt)
            return report, load_chart_rows(session, chart_series(by), flt)
    finally:
        engine.dispose()


def publish_report(
    report: CostReport, days: int, publish: Publisher, chart: Sequence[DayTaskCost] = ()
) -> dict[str, Any]:
    """Publish ``report`` as a table, a Markdown summary and a daily chart (a Markdown
    artifact: the SVG as an image, then the text bars); return it as plain values."""
    title = f"ContentGen cost by {report.by}, last {days} day(s)"
    rows = report_rows(report)
    cells = table(rows, report.key_column)
    publish.table(f"cost-report-by-{report.by}", cells, title)
    publish.markdown(f"cost-report-by-{report.by}-summary", report_markdown(title, report), title)
    series = "profile" if chart_series(report.by) == "task" else chart_series(report.by)
    chart_title = f"Daily cost by {series}, last {days} day(s)"
    publish.markdown(
        f"cost-report-by-{report.by}-chart",
        chart_markdown(chart, title=chart_title, series_name=series),
        f"{chart_title}: bars stacked by {series}, then what caching saved (░).",
    )
    return {
        "by": report.by,
        "since": str(report.filter.since),
        "until": str(report.filter.until),
        "rows": cells[:-1],
        "total": cells[-1],
    }


@flow(name="contentgen-cost-report", flow_run_name="cost-report-by-{by}", persist_result=False)
def cost_report_flow(
    days: Annotated[int, Field(ge=1, le=3660)] = 7,
    by: Dimension = "day",
) -> dict[str, Any]:
    """Publish what generations cost, with savings against list price and cache hit rates.

    Args:
        days: How many UTC days to cover, ending today (1: today only).
        by: Group by day, model, task (profile), run, article section or batch label.
    """
    report, chart = make_report(get_settings(), days=days, by=by, today=utc_today())
    return publish_report(report, days, ArtifactPublisher(), chart)
