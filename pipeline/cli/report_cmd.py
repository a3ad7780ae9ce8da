"""``contentgen report``: cost, tokens, cache savings and failures, by day/model/profile/run/....

Reads the report views (``pipeline.reports.costs``) and prints a table with an exact total, CSV or
JSON; ``--chart`` also writes a self-contained HTML chart of daily cost stacked by the
``--by`` dimension with the savings on top (``--chart -`` draws it in the terminal instead).
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from pipeline.cli.budgets_view import budgets_json, print_budgets
from pipeline.cli.common import (
    check_batch_label,
    check_task_names,
    console,
    err_console,
    handle_errors,
    joined_tasks,
    open_db,
    output_format,
    print_json,
    run_id_of,
    say_which_database,
    settings_reading_demo,
    stdout_to,
)
from pipeline.db import budget_uses, has_jobs, utcnow
from pipeline.errors import InputError
from pipeline.money import load_budgets
from pipeline.reports import (
    CostFigures,
    CostReport,
    CostRow,
    Dimension,
    Key,
    OutputLength,
    ReportFilter,
    RunForecast,
    cost_report,
    daily_cost_chart,
    load_chart_rows,
    local_time,
    parse_day,
    shown_places,
    text_chart,
    usd_places,
    usd_shown,
)


class By(StrEnum):
    """What a report groups by (``profile`` and ``task`` are the same thing)."""

    day = "day"
    model = "model"
    profile = "profile"
    task = "task"
    run = "run"
    section = "section"
    batch = "batch"
    tier = "tier"
    version = "version"


class Format(StrEnum):
    """How a report is printed."""

    table = "table"
    csv = "csv"
    json = "json"


_DIMENSION: dict[By, Dimension] = {
    By.day: "day",
    By.model: "model",
    By.profile: "task",
    By.task: "task",
    By.run: "run",
    By.section: "section",
    By.batch: "batch",
    By.tier: "tier",
    By.version: "version",
}
_HEADINGS: dict[Dimension, str] = {
    "day": "day (UTC)",
    "model": "model",
    "task": "profile",
    "run": "run",
    "section": "section",
    "batch": "batch",
    "tier": "price tier",
    "version": "version",
}


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.1%}"


def _key_text(key: Key) -> str:
    return "(none)" if key is None else str(key)


_FIGURE_HEADERS = (
    "requests",
    "incompl.",
    "failed",
    "cache hits",
    "input tok",
    "cached",
    "cache writes",
    "output tok",
    "reasoning",
    "cost $",
    "list $",
    "saved $",
    "saved",
)
# On a narrow terminal these columns go first (all are in --format csv/json).
_REPORT_DROP_ORDER = (
    "reasoning",
    "cache writes",
    "list $",
    "output tok",
    "input tok",
    "incompl.",
    "saved",
    "cache hits",
    "failed",
)
_FORECAST_DROP_ORDER = ("kind", "state", "started", "fc. cached")


def _figures_cells(f: CostFigures, places: int) -> list[str]:
    return [
        f"{f.requests:,}",
        f"{f.incomplete:,}",
        f"{f.failed:,}",
        f"{f.from_cache:,}",
        f"{f.input_tokens:,}",
        _pct(f.cached_ratio),
        f"{f.cache_write_tokens:,}",
        f"{f.output_tokens:,}",
        f"{f.reasoning_tokens:,}",
        usd_shown(f.cost_usd, places),
        usd_shown(f.list_cost_usd, places),
        usd_shown(f.savings_usd, places),
        _pct(f.savings_ratio),
    ]


def _title(report: CostReport) -> str:
    parts = [f"Cost by {_HEADINGS[report.by]}"]
    flt = report.filter
    if flt.since or flt.until:
        parts.append(f"{flt.since or '…'} to {flt.until or '…'}")
    if flt.run_id is not None:
        parts.append(f"run {flt.run_id}")
    return ", ".join(parts)


def fitted_table(
    title: str,
    headers: list[str],
    rows: list[list[str]],
    *,
    drop_order: tuple[str, ...],
    width: int,
    left: int = 1,
    total: list[str] | None = None,
) -> tuple[Table, list[str]]:
    """A table of ``rows`` without the columns (dropped in ``drop_order``) that do not fit.

    The first ``left`` columns are left-aligned, the rest right-aligned. Returns the table and
    the headers of the hidden columns.
    """
    every = [*rows, *([total] if total else [])]
    widths = {h: max([len(h), *(len(r[i]) for r in every)]) for i, h in enumerate(headers)}
    shown = list(headers)
    hidden: list[str] = []
    for name in drop_order:
        if sum(widths[h] + 3 for h in shown) + 1 <= width:
            break
        if name in shown:
            shown.remove(name)
            hidden.append(name)
    table = Table(title=title)
    for h in shown:
        table.add_column(h, justify="left" if headers.index(h) < left else "right", no_wrap=True)
    index = [headers.index(h) for h in shown]
    for row in rows:
        table.add_row(*(row[i] for i in index))
    if total:
        table.add_section()
        table.add_row(*(total[i] for i in index), style="bold")
    return table, hidden


def _hidden_note(hidden: list[str]) -> None:
    if hidden:
        console.print(
            f"(hidden for width: {', '.join(hidden)}; all are in --format csv/json)",
            markup=False,
            highlight=False,
            style="dim",
        )


def _version_cells(row: CostRow) -> list[str]:
    f = row.figures
    per = f.cost_usd / f.requests if f.requests else None
    lengths = row.lengths
    tokens = lengths.mean_output_tokens if lengths else None
    chars = lengths.mean_output_chars if lengths else None
    return [
        "-" if per is None else f"{per:.6f}",
        "-" if tokens is None else f"{tokens:,.0f}",
        "-" if chars is None else f"{chars:,.0f}",
    ]


def print_table(report: CostReport) -> None:
    """The report as a rich table with a bold total row, then forecast against actual.

    Columns that do not fit the terminal are left out (and named), and money is rounded to
    ``format_usd``'s precision (said when it was); CSV and JSON have every column, exact.
    """
    money = [
        value
        for f in [*(row.figures for row in report.rows), report.total]
        for value in (f.cost_usd, f.list_cost_usd, f.savings_usd)
    ]
    places = shown_places(money)
    headers = [_HEADINGS[report.by], *_FIGURE_HEADERS]
    rows = [[_key_text(r.key), *_figures_cells(r.figures, places)] for r in report.rows]
    total = ["total", *_figures_cells(report.total, places)]
    drop: tuple[str, ...] = _REPORT_DROP_ORDER
    if report.by == "version":
        # Comparing prompt versions: what one output costs and how long it is.
        headers += ["$/request", "out tok/text", "chars/text"]
        for row, cells in zip(report.rows, rows, strict=True):
            cells += _version_cells(row)
        total += ["", "", ""]
        drop = ("cache hits", "cache writes", "reasoning", "list $", "saved $", "cached", *drop)
    table, hidden = fitted_table(
        _title(report), headers, rows, total=total, drop_order=drop, width=console.width
    )
    console.print(table)
    _hidden_note(hidden)
    if usd_places(money) > places:
        console.print(
            f"(money rounded to {places} decimals; exact in --format csv/json)",
            markup=False,
            highlight=False,
            style="dim",
        )
    if not report.rows:
        console.print("No generations match.", markup=False, highlight=False)
    if report.runs:
        print_forecasts(report.runs)


def print_forecasts(runs: list[RunForecast]) -> None:
    """Forecast (made before sending) against actual cost and cached ratio, per run."""
    places = shown_places(
        money
        for run in runs
        for money in (run.forecast_cost_usd, run.actual.cost_usd, run.cost_error_usd)
        if money is not None
    )
    rows = []
    for run in runs:
        error = run.cost_error_usd
        rows.append(
            [
                str(run.run_id),
                run.kind,
                run.state,
                local_time(run.started_at),
                "-" if run.forecast_cost_usd is None else usd_shown(run.forecast_cost_usd, places),
                usd_shown(run.actual.cost_usd, places),
                "-" if error is None else ("+" if error > 0 else "") + usd_shown(error, places),
                _pct(run.forecast_cached_ratio),
                _pct(run.actual.cached_ratio),
            ]
        )
    headers = ["run", "kind", "state", "started", "forecast $", "actual $"]
    headers += ["diff $", "fc. cached", "cached"]
    table, hidden = fitted_table(
        "Forecast vs actual",
        headers,
        rows,
        drop_order=_FORECAST_DROP_ORDER,
        width=console.width,
        left=4,
    )
    console.print(table)
    _hidden_note(hidden)


def _row_dict(
    key_column: str, key: Key, figures: CostFigures, lengths: OutputLength | None = None
) -> dict[str, Any]:
    data = {key_column: key, **figures.as_dict()}
    if lengths is not None:
        data["mean_output_tokens"] = lengths.mean_output_tokens
        data["mean_output_chars"] = lengths.mean_output_chars
    return data


def _forecast_dict(run: RunForecast) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "kind": run.kind,
        "mode": run.mode,
        "state": run.state,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "budget_usd": run.budget_usd,
        "forecast_cost_usd": run.forecast_cost_usd,
        "forecast_cached_ratio": run.forecast_cached_ratio,
        "cost_usd": run.actual.cost_usd,
        "cached_ratio": run.actual.cached_ratio,
        "cost_error_usd": run.cost_error_usd,
    }


def report_json(report: CostReport) -> dict[str, Any]:
    """The report as JSON-ready data (money as exact decimal strings once printed)."""
    return {
        "by": report.key_column,
        "filter": report.filter.as_dict(),
        "rows": [_row_dict(report.key_column, r.key, r.figures, r.lengths) for r in report.rows],
        "total": report.total.as_dict(),
        "runs": [_forecast_dict(r) for r in report.runs],
    }


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_csv(report: CostReport) -> None:
    """One line per group, then a ``TOTAL`` line; money as exact decimals, USD.

    By run, each line also has the run's forecast cost and cached ratio.
    """
    header = [report.key_column, *CostFigures().as_dict()]
    forecasts = {run.run_id: run for run in report.runs} if report.by == "run" else {}
    if report.by == "run":
        header += ["forecast_cost_usd", "forecast_cached_ratio"]
    if report.by == "version":
        header += ["mean_output_tokens", "mean_output_chars"]
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(header)
    for row in report.rows:
        data = _row_dict(report.key_column, row.key, row.figures, row.lengths)
        forecast = forecasts.get(row.key) if isinstance(row.key, int) else None
        data["forecast_cost_usd"] = forecast.forecast_cost_usd if forecast else None
        data["forecast_cached_ratio"] = forecast.forecast_cached_ratio if forecast else None
        writer.writerow([_csv_value(data[h]) for h in header])
    total = _row_dict(report.key_column, "TOTAL", report.total)
    writer.writerow([_csv_value(total.get(h)) for h in header])


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""

    @app.command("report")
    @handle_errors
    def report(
        by: By = typer.Option(
            By.profile,
            "--by",
            help="Group by day, model, profile (= task), run, section, batch, tier (mode) or "
            "version (profile version: cost and output length per prompt version).",
        ),
        since: str | None = typer.Option(
            None, "--since", help="From this UTC day: YYYY-MM-DD, today, yesterday or 7d."
        ),
        until: str | None = typer.Option(
            None, "--until", help="Up to and including this UTC day (same forms as --since)."
        ),
        run: str | None = typer.Option(
            None, "--run", help="Only this run's generations: a run id or `last`."
        ),
        batch: str | None = typer.Option(
            None, "--batch", "-b", help="Only generations of jobs with this batch label."
        ),
        tasks: list[str] = typer.Option(
            [], "--tasks", "-t", help="Only these tasks (a,b; repeatable)."
        ),
        output: Path | None = typer.Option(
            None,
            "--output",
            "-o",
            dir_okay=False,
            help="Write the report to this file: CSV or JSON, from --format or the name's "
            ".csv/.json.",
        ),
        fmt: Format = typer.Option(Format.table, "--format", help="Output format."),
        as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
        chart: Path | None = typer.Option(
            None,
            "--chart",
            help="Also write an HTML chart of daily cost stacked by --by, with the savings and "
            "the cached ratio (offline: no scripts). `-` draws it in the terminal instead.",
            dir_okay=False,
        ),
    ) -> None:
        """Cost, tokens, cached ratio, cache writes, savings and failures, from the database.

        Money is exact USD. Savings: what the same tokens would have cost
        uncached at the standard price, minus what they cost (negative when
        cache writes, billed above the input rate on GPT-5.6+, were not read).
        With --by run or --run, each run's forecast is set against its
        actual cost and cached ratio. Days are UTC; --until is inclusive.
        With config/budgets.toml, a Budgets section shows each daily or monthly
        budget's spend against its limit (today's or this month's).

        Example: `contentgen report --since yesterday --chart cost.html`
        """
        today = dt.datetime.now(dt.UTC).date()
        first = parse_day(since, today) if since else None
        last = parse_day(until, today) if until else None
        fmt = Format.json if as_json else fmt
        if output is not None and fmt is Format.table:
            fmt = Format(output_format(output, {".csv": "csv", ".json": "json"}))
        settings = settings_reading_demo()
        budgets = load_budgets(settings.config_dir)
        task_list = tuple(joined_tasks(tasks))
        if task_list:
            check_task_names(settings, task_list)
        check_batch_label(settings, batch)
        engine, sessions = open_db(settings)
        try:
            with sessions() as session:
                uses = budget_uses(session, budgets, utcnow())
                flt = ReportFilter(
                    since=first,
                    until=last,
                    run_id=run_id_of(session, run),
                    batch_label=batch,
                    tasks=task_list,
                )
                result = cost_report(session, _DIMENSION[by], flt)
                chart_by = "task" if by is By.day else _DIMENSION[by]
                chart_rows = load_chart_rows(session, chart_by, flt) if chart is not None else []
                empty = not result.rows and not has_jobs(session)
        finally:
            engine.dispose()
        series = _HEADINGS["task" if by is By.day else _DIMENSION[by]]
        if chart is not None and str(chart) == "-":
            # The terminal's width (COLUMNS when set; 80 when not a terminal).
            width = shutil.get_terminal_size().columns
            out = console if fmt is Format.table and not as_json else err_console
            drawn = text_chart(chart_rows, width=width, series_name=series)
            out.print(drawn, markup=False, highlight=False, soft_wrap=True)
        elif chart is not None:
            title = f"Daily cost by {series}"
            html = daily_cost_chart(chart_rows, title=title, series_name=series)
            try:
                chart.write_text(html, encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot write chart {chart}: {exc.strerror}") from exc
            err_console.print(f"wrote chart {chart}", markup=False, highlight=False)
        with stdout_to(output):
            if fmt is Format.json:
                found = report_json(result)
                if uses:
                    found["budgets"] = budgets_json(uses)
                print_json(found)
            elif fmt is Format.csv:
                write_csv(result)
            else:
                print_table(result)
                if uses:
                    print_budgets(uses, budgets.timezone)
        if output is not None:
            err_console.print(f"wrote {output} ({fmt.value})", markup=False, highlight=False)
        if empty:
            say_which_database(settings)
