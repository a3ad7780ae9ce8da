"""Report tables for artifacts: per profile for one flow run, and the cost report.

Prefect-free: the numbers come from the library (``pipeline.reports.costs``, which reads the report
views), and these functions only shape them into table rows and Markdown. A flow run's chunks
are several run rows, so its per-profile figures are the sum over those runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from pipeline.desk import queue_url, run_counts
from pipeline.reports import (
    CostFigures,
    CostReport,
    ReportFilter,
    cost_rows,
    usd_places,
    usd_text,
)


@dataclass(frozen=True)
class Row:
    """One labelled line of a table: a profile, a day, a model, ..."""

    key: str
    figures: CostFigures


def by_profile(session: Session, run_ids: Iterable[int]) -> list[Row]:
    """Per profile (task): what the runs ``run_ids`` generated, summed over the runs."""
    sums: dict[str, CostFigures] = {}
    for run_id in run_ids:
        for row in cost_rows(session, "task", ReportFilter(run_id=run_id)):
            key = "(none)" if row.key is None else str(row.key)
            sums[key] = sums.get(key, CostFigures()) + row.figures
    return [Row(key, sums[key]) for key in sorted(sums)]


def report_rows(report: CostReport) -> list[Row]:
    """A library cost report as labelled rows."""
    return [Row("(none)" if r.key is None else str(r.key), r.figures) for r in report.rows]


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio * 100:.1f}"


def cells(key_name: str, row: Row, places: int = 6) -> dict[str, Any]:
    """One row as table cells, most telling first: requests, failures, cost, savings (against
    list price), cached %, then tokens. Money has ``places`` decimals (more when needed)."""
    f = row.figures
    return {
        key_name: row.key,
        "requests": f.requests,
        "failures": f.failed + f.incomplete,
        "cost USD": usd_text(f.cost_usd, places),
        "savings USD": usd_text(f.savings_usd, places),
        "cached %": _percent(f.cached_ratio),
        "input tokens": f.input_tokens,
        "cached tokens": f.cached_tokens,
        "output tokens": f.output_tokens,
        "list price USD": usd_text(f.list_cost_usd, places),
    }


def total(rows: Sequence[Row]) -> Row:
    """The sum of ``rows``."""
    return Row("total", sum((r.figures for r in rows), CostFigures()))


def table(rows: Sequence[Row], key_name: str) -> list[dict[str, Any]]:
    """Rows plus a total row, as a list of dicts (a Prefect table artifact).

    Money columns share one number of decimals, enough to show every value exactly.
    """
    everything = [*rows, total(rows)]
    money = [m for r in everything for m in (r.figures.cost_usd, r.figures.list_cost_usd)]
    places = usd_places([*money, *(r.figures.savings_usd for r in everything)], minimum=4)
    return [cells(key_name, r, places) for r in everything]


def markdown_table(rows: Sequence[Row], key_name: str) -> str:
    """Rows plus a total row as a Markdown table (``_No generations._`` when empty)."""
    if not rows:
        return "_No generations._"
    body = table(rows, key_name)
    header = list(body[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c[h]) for h in header) + " |" for c in body]
    return "\n".join(lines)


def run_markdown(title: str, outcome: dict[str, Any], rows: Sequence[Row]) -> str:
    """The Markdown summary of a flow run: headline numbers, then the per-profile table."""
    f = total(rows).figures
    stop = outcome.get("stop_reason")
    state = f"**{outcome.get('state', 'finished')}**" + (f" ({stop})" if stop else "")
    run_ids = ", ".join(str(i) for i in outcome.get("run_ids", [])) or "none"
    lines = [
        f"# {title}",
        "",
        f"{f.requests} requests ({f.failed + f.incomplete} failed, {f.from_cache} from the "
        f"response cache) in {outcome.get('chunks', 0)} chunk(s), {state}.",
        "",
        f"- Cost: **${usd_text(f.cost_usd)}** (list price ${usd_text(f.list_cost_usd)}, "
        f"saved **${usd_text(f.savings_usd)}**)",
        f"- Input tokens: {f.input_tokens:,}, cached {f.cached_tokens:,} "
        f"(**{_percent(f.cached_ratio)}%**); output tokens: {f.output_tokens:,}",
        f"- Run rows in the job database: {run_ids}",
        *_review_lines(outcome.get("review")),
        "",
        "## Per profile",
        "",
        markdown_table(rows, "profile"),
    ]
    return "\n".join(lines) + "\n"


def report_markdown(title: str, report: CostReport) -> str:
    """The Markdown of a cost report: the total, then one line per group."""
    f = report.total
    lines = [
        f"# {title}",
        "",
        f"Total: **${usd_text(f.cost_usd)}** for {f.requests} requests, saved "
        f"**${usd_text(f.savings_usd)}** against list price; cached input "
        f"{_percent(f.cached_ratio)}%.",
        "",
        markdown_table(report_rows(report), report.key_column),
    ]
    return "\n".join(lines) + "\n"


EXCERPT_CHARS = 160
# The results table's text column: Prefect's tables never wrap a cell, and at 1280 px the
# artifact page leaves about 720 px for the table; article, task, this many characters of text
# and the cost fit in that (tests/browser/test_artifacts_width.py measures it).
RESULT_TEXT_CHARS = 50
SHOW_HINT = "full texts: `contentgen results show ARTICLE`"


@dataclass(frozen=True)
class ResultRow:
    """One generation of a flow run, as the results table shows it."""

    source_id: str
    title: str
    task: str
    status: str
    output_text: str | None
    error: str | None
    input_tokens: int | None
    cached_tokens: int | None
    output_tokens: int | None
    cost_usd: Decimal | None


def excerpt(text: str | None, chars: int = EXCERPT_CHARS) -> str:
    """The start of ``text`` on one line, cut at a word with an ellipsis when longer."""
    flat = " ".join((text or "").split())
    if len(flat) <= chars:
        return flat
    cut = flat[:chars].rsplit(" ", 1)[0] or flat[:chars]
    return cut + "…"


def readable(text: str | None) -> str:
    """A structured output (JSON: ``{"points": ["a", "b"]}``) as plain words (``a · b``);
    any other text as it is."""
    if not text or not text.lstrip().startswith("{"):
        return text or ""
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if not isinstance(data, dict):
        return text
    parts: list[str] = []
    for value in data.values():
        items = value if isinstance(value, list) else [value]
        parts += [str(item) for item in items if not isinstance(item, dict | list)]
    return " · ".join(parts) or text


def result_text(row: ResultRow, chars: int = RESULT_TEXT_CHARS) -> str:
    """The table's text cell: the output's start in words, or what went wrong."""
    if row.status == "completed" and row.output_text:
        return excerpt(readable(row.output_text), chars)
    return excerpt(f"{row.status}: {row.error or readable(row.output_text) or 'no text'}", chars)


def results_table(rows: Sequence[ResultRow]) -> list[dict[str, Any]]:
    """The results an editor opens, narrow enough for a 1280 px window: the article, the task,
    the start of the text (``SHOW_HINT`` says where the full text is) and the cost."""
    return [
        {
            "article": r.source_id,
            "task": r.task,
            "text": result_text(r),
            "cost USD": usd_text(r.cost_usd or Decimal(0), 4),
        }
        for r in rows
    ]


def outcome_message(outcome: dict[str, Any], batch_label: str | None = None) -> str:
    """The flow run's final state message: ``1,000 generated, 0 failed, $0.42``; a run that
    found nothing to do says ``nothing queued`` (for its batch label)."""
    stop = outcome.get("stop_reason")
    if not int(outcome.get("requests") or 0) and not stop and "requests" in outcome:
        return "nothing queued" + (f" for batch label {batch_label!r}" if batch_label else "")
    generated = int(outcome.get("succeeded") or 0)
    failed = int(outcome.get("failed") or 0) + int(outcome.get("incomplete") or 0)
    cost = Decimal(str(outcome.get("cost_usd") or 0))
    text = f"{generated:,} generated, {failed:,} failed, ${cost:,.2f}"
    if cost and cost < Decimal("0.01"):
        text = f"{generated:,} generated, {failed:,} failed, ${usd_text(cost)}"
    stop = outcome.get("stop_reason")
    text += f" (stopped: {stop})" if stop else ""
    review = outcome.get("review")
    if review:
        text += f"; {review['line']}: {review['url']}"
    return text


def review_link(
    session: Session, desk_url: str, run_ids: Sequence[int], batch_label: str | None
) -> dict[str, Any]:
    """What a flow run left for editors and the desk's queue for it: ``{"to_review",
    "flagged", "line": "412 to review, 23 flagged", "url"}``."""
    counts = run_counts(session, run_ids)
    return {
        "to_review": counts.waiting,
        "flagged": counts.flagged,
        "line": counts.line(),
        "url": queue_url(desk_url, runs=list(run_ids), batch=batch_label),
    }


def _review_lines(review: dict[str, Any] | None) -> list[str]:
    if not review:
        return []
    return [f"- Review desk: [{review['line']}]({review['url']})"]
