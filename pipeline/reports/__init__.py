"""Reports: what the generations cost and what they say, read from the database.

- ``costs``: cost reports grouped by day, model, task, run, section, batch or tier, with the
  cached share and the savings (the SQL views say the same to any SQL client);
- ``chart``: the daily cost chart, as a self-contained HTML page, an SVG, text, or Markdown
  holding both (the picture as a ``data:`` image);
- ``results``: the generated texts for people, with their provenance, checks and review
  state, listed and shown; ``resultfiles``: written as CSV, JSON Lines or Markdown.

Money is ``Decimal``; nothing here prints (the CLI and the flows do).
"""

from __future__ import annotations

from pipeline.reports.chart import (
    MARKDOWN_COLUMNS,
    chart_markdown,
    daily_cost_chart,
    daily_cost_svg,
    load_chart_rows,
    text_chart,
)
from pipeline.reports.costs import (
    CostFigures,
    CostReport,
    CostRow,
    DayTaskCost,
    Dimension,
    Key,
    OutputLength,
    ReportFilter,
    RunForecast,
    cost_report,
    cost_rows,
    latest_run_id,
    parse_day,
    shown_places,
    usd_places,
    usd_shown,
    usd_text,
)
from pipeline.reports.resultfiles import (
    body_text,
    cell_text,
    failed_markdown,
    markdown,
    numbers_line,
    review_line,
    shown_text,
    write_csv,
    write_jsonl,
)
from pipeline.reports.results import (
    APPROVED_COLUMNS,
    CSV_COLUMNS,
    FAILED_COLUMNS,
    PUBLISHABLE,
    FailedJob,
    ResultFilter,
    ResultRow,
    article_exists,
    check_review_states,
    check_statuses,
    failed_jobs,
    generations,
    parse_when,
    total_cost,
)
from pipeline.reports.times import local_time

__all__ = [
    "APPROVED_COLUMNS",
    "CSV_COLUMNS",
    "FAILED_COLUMNS",
    "MARKDOWN_COLUMNS",
    "PUBLISHABLE",
    "CostFigures",
    "CostReport",
    "CostRow",
    "DayTaskCost",
    "Dimension",
    "FailedJob",
    "Key",
    "OutputLength",
    "ReportFilter",
    "ResultFilter",
    "ResultRow",
    "RunForecast",
    "article_exists",
    "body_text",
    "cell_text",
    "chart_markdown",
    "check_review_states",
    "check_statuses",
    "cost_report",
    "cost_rows",
    "daily_cost_chart",
    "daily_cost_svg",
    "failed_jobs",
    "failed_markdown",
    "generations",
    "latest_run_id",
    "load_chart_rows",
    "local_time",
    "markdown",
    "numbers_line",
    "parse_day",
    "parse_when",
    "review_line",
    "shown_places",
    "shown_text",
    "text_chart",
    "total_cost",
    "usd_places",
    "usd_shown",
    "usd_text",
    "write_csv",
    "write_jsonl",
]
