"""Reports: what the generations cost and what they say, read from the database.

- ``costs``: cost reports grouped by day, model, task, run, section, batch or tier, with the
  cached share and the savings (the SQL views say the same to any SQL client);
- ``chart``: the daily cost chart, as a self-contained HTML page or text;
- ``results``: the generated texts for people, listed, shown and exported.

Money is ``Decimal``; nothing here prints (the CLI and the flows do).
"""

from __future__ import annotations

from pipeline.reports.chart import daily_cost_chart, load_chart_rows, text_chart
from pipeline.reports.costs import (
    CostFigures,
    CostReport,
    Dimension,
    Key,
    ReportFilter,
    RunForecast,
    cost_report,
    cost_rows,
    latest_run_id,
    parse_day,
    usd_places,
    usd_text,
)
from pipeline.reports.results import (
    CSV_COLUMNS,
    FAILED_COLUMNS,
    FailedJob,
    ResultFilter,
    ResultRow,
    article_exists,
    body_text,
    check_statuses,
    failed_jobs,
    failed_markdown,
    generations,
    markdown,
    numbers_line,
    parse_when,
    total_cost,
    write_csv,
    write_jsonl,
)

__all__ = [
    "CSV_COLUMNS",
    "FAILED_COLUMNS",
    "CostFigures",
    "CostReport",
    "Dimension",
    "FailedJob",
    "Key",
    "ReportFilter",
    "ResultFilter",
    "ResultRow",
    "RunForecast",
    "article_exists",
    "body_text",
    "check_statuses",
    "cost_report",
    "cost_rows",
    "daily_cost_chart",
    "failed_jobs",
    "failed_markdown",
    "generations",
    "latest_run_id",
    "load_chart_rows",
    "markdown",
    "numbers_line",
    "parse_day",
    "parse_when",
    "text_chart",
    "total_cost",
    "usd_places",
    "usd_text",
    "write_csv",
    "write_jsonl",
]
