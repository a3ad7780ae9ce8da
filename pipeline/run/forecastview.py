"""A dry run's forecast as Markdown: a table per task, then the plan's choices in sentences.

What the flows publish as the forecast artifact (``contentgen run --dry-run`` prints the same
figures as a table). Pure: a ``DryRunReport`` in, text out; money through ``format_usd``.
"""

from __future__ import annotations

from decimal import Decimal

from pipeline.money import format_usd
from pipeline.planning import Forecast
from pipeline.run.dryrun import DryRunReport

NO_FORECAST = Forecast(0, 0, 0, 0, Decimal(0), Decimal(0))
COLUMNS = ("task", "jobs", "requests", "input tokens", "cached", "output tokens", "forecast cost")


def _share(fc: Forecast) -> str:
    return f"{fc.cached_ratio:.0%}" if fc.input_tokens else "-"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _row(cells: tuple[str, ...]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cells(name: str, jobs: str, fc: Forecast) -> tuple[str, ...]:
    return (
        name,
        jobs,
        f"{fc.requests:,}",
        f"{fc.input_tokens:,}",
        _share(fc),
        f"{fc.output_tokens:,}",
        format_usd(fc.cost_usd),
    )


def forecast_table(report: DryRunReport) -> str:
    """The per-task table with a total row; chained tasks (graders) after it, marked as such.
    ``_Nothing queued._`` when the run would take no job."""
    if not report.jobs:
        return "_Nothing queued._"
    lines = [_row(COLUMNS), "|---|" + "---:|" * (len(COLUMNS) - 1)]
    for task, fc in sorted(report.task_forecasts.items()):
        lines.append(_row(_cells(task, f"{report.by_task.get(task, 0):,}", fc)))
    total = sum(report.task_forecasts.values(), NO_FORECAST)
    lines.append(_row(tuple(f"**{c}**" for c in _cells("total", f"{report.jobs:,}", total))))
    for follower in report.followers.values():
        kind = "grader" if follower.grader else "chained"
        state = "" if follower.enabled else ", off"
        name = f"{follower.task} ({kind} after {follower.follows}{state})"
        lines.append(_row(_cells(name, "-", follower.forecast)))
    return "\n".join(lines)


def forecast_markdown(report: DryRunReport, title: str) -> str:
    """The forecast artifact: what the run would cost and save, the table, then the plan."""
    saved = report.uncached_cost_usd - report.cost_usd
    lines = [
        f"# {title}",
        "",
        f"{report.jobs:,} queued jobs would cost **{format_usd(report.cost_usd)}** in "
        f"{report.mode} mode, {format_usd(saved)} less than without the prompt cache "
        f"({report.cached_ratio:.0%} of input tokens cached). Nothing was sent.",
        "",
        forecast_table(report),
    ]
    plan = [
        f"{_count(report.groups, 'prefix group')} in "
        f"{_count(report.buckets, 'cache-key bucket')}, {_count(report.primers, 'primer')}, "
        f"{_count(report.prewarms, 'prewarm')}",
    ]
    if report.trimmed:
        plan.append(f"{report.trimmed:,} articles trimmed to their profile's token budget")
    if report.pacing:
        plan.append(f"Pacing: {report.pacing}")
    plan += [f"{name}: {line}" for name, line in report.mode_lines().items()]
    plan += [f"{name}: {line}" for name, line in report.advice_lines().items()]
    if report.jobs:
        lines += ["", "## Plan", "", *(f"- {line}" for line in plan)]
    return "\n".join(lines) + "\n"
