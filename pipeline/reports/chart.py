"""The daily cost chart: one self-contained HTML page with an inline SVG (no scripts, no CDN),
the same chart as text for a terminal, and both in Markdown (``chart_markdown``: the SVG as a
``data:`` image, then the text), which a Prefect artifact shows as a picture.

Bars are each UTC day's cost stacked by the report's ``--by`` dimension (task/profile by
default; model, section, run, ...); on top of each bar, hatched, what prompt caching and cheaper
tiers saved against list price, so the bar's full height is the list cost. A line on a second
axis is that day's cached share of input tokens. Cache writes (tokens written to the prompt
cache, GPT-5.6+) are in the tooltips and the table. The SVG scales to the browser window; the
text chart takes the terminal's width. Pure: rows in, HTML or text out (``load_chart_rows``
reads the rows). Geometry uses floats; every figure a reader sees (tooltips, the table under
the chart) is the exact ``Decimal``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from html import escape

from sqlalchemy.orm import Session

from pipeline.reports.costs import (
    CostFigures,
    DayTaskCost,
    Dimension,
    Key,
    ReportFilter,
    cost_rows,
    day_task_costs,
    usd_text,
)

# Colour-blind-friendly palette (Okabe-Ito, then Tableau), cycled for more tasks.
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#4E79A7",
    "#9C755F",
    "#BAB0AC",
)
RATIO_COLOUR = "#222222"
SAVINGS_COLOUR = "#2E7D32"
WIDTH, HEIGHT = 960, 480
LEFT, RIGHT, TOP, BOTTOM = 80, 80, 64, 100


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (about ``count`` steps of 1, 2, 2.5 or 5)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    steps = math.ceil(top / step - 1e-9)
    return [round(i * step, 12) for i in range(steps + 1)]


def _tick_label(value: float, step: float) -> str:
    places = next(p for p in range(13) if math.isclose(step * 10**p, round(step * 10**p)))
    return f"${value:,.{places}f}"


def _days(rows: Sequence[DayTaskCost]) -> list[dt.date]:
    """Every day from the first to the last (days without generations show as empty)."""
    if not rows:
        return []
    first, last = min(r.day for r in rows), max(r.day for r in rows)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _series_label(by: Dimension, key: Key) -> str:
    if key is None:
        return "(none)"
    return f"run {key}" if by == "run" else str(key)


def load_chart_rows(
    session: Session, by: Dimension = "task", flt: ReportFilter | None = None
) -> list[DayTaskCost]:
    """The chart's cells: cost per (UTC day, group of ``by``); ``task`` of each row names the
    group. By day there is one group, ``all``."""
    flt = flt or ReportFilter()
    if by == "task":
        return day_task_costs(session, flt)
    by_day = [row for row in cost_rows(session, "day", flt) if isinstance(row.key, dt.date)]
    if by == "day":
        return [DayTaskCost(row.key, "all", row.figures) for row in by_day]  # type: ignore[arg-type]
    cells: list[DayTaskCost] = []
    for row in by_day:
        day = row.key
        assert isinstance(day, dt.date)
        # The report's filter narrowed to one day (the report's days are within its bounds).
        one_day = dataclasses.replace(flt, since=day, until=day)
        for group in cost_rows(session, by, one_day):
            cells.append(DayTaskCost(day, _series_label(by, group.key), group.figures))
    return cells


def daily_cost_chart(
    rows: Sequence[DayTaskCost],
    *,
    title: str = "Daily cost by profile",
    series_name: str = "profile",
) -> str:
    """An HTML page with the stacked daily cost bars, the savings on top, the cached-ratio line
    and a data table. ``series_name`` names what the bars are stacked by (the ``--by``)."""
    tasks, colours, days, cell, per_day = _layout(rows)
    svg = _svg(days, tasks, colours, cell, per_day, title)
    return _page(title, svg, days, tasks, cell, per_day, series_name)


def daily_cost_svg(rows: Sequence[DayTaskCost], *, title: str = "Daily cost by profile") -> str:
    """The chart of ``daily_cost_chart`` alone: one SVG document (no page, no table)."""
    tasks, colours, days, cell, per_day = _layout(rows)
    return _svg(days, tasks, colours, cell, per_day, title)


def _layout(
    rows: Sequence[DayTaskCost],
) -> tuple[
    list[str],
    dict[str, str],
    list[dt.date],
    dict[tuple[dt.date, str], CostFigures],
    dict[dt.date, CostFigures],
]:
    tasks = sorted({r.task for r in rows})
    colours = {task: PALETTE[i % len(PALETTE)] for i, task in enumerate(tasks)}
    days = _days(rows)
    cell = {(r.day, r.task): r.figures for r in rows}
    per_day = {
        day: sum((cell.get((day, t), CostFigures()) for t in tasks), CostFigures()) for day in days
    }
    return tasks, colours, days, cell, per_day


def _svg(
    days: list[dt.date],
    tasks: list[str],
    colours: dict[str, str],
    cell: dict[tuple[dt.date, str], CostFigures],
    per_day: dict[dt.date, CostFigures],
    title: str,
) -> str:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    base = TOP + plot_h
    top_cost = max((float(max(f.cost_usd, f.list_cost_usd)) for f in per_day.values()), default=0.0)
    ticks = nice_ticks(top_cost)
    y_max = ticks[-1]
    out = [
        # Scales with the window: the viewBox keeps the drawing's proportions.
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" style="max-width: 100%; height: auto" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">',
        '<defs><pattern id="saved" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#E8F5E9"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="{SAVINGS_COLOUR}" stroke-width="2"/>'
        "</pattern></defs>",
        f"<title>{escape(title)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{WIDTH / 2}" y="26" text-anchor="middle" font-size="18" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    if days:
        total = sum(per_day.values(), CostFigures())
        ratio = total.cached_ratio
        subtitle = (
            f"{days[0]} to {days[-1]} (UTC) · total ${usd_text(total.cost_usd)} · "
            f"saved ${usd_text(total.savings_usd)} against list price · cached input "
            + ("-" if ratio is None else f"{ratio:.1%}")
            + f" · cache writes {total.cache_write_tokens:,} tokens"
        )
        out.append(
            f'<text x="{WIDTH / 2}" y="46" text-anchor="middle" fill="#555">'
            f"{escape(subtitle)}</text>"
        )
    # Left axis (cost) with grid lines, right axis (cached ratio, 0-100 %).
    step = ticks[1] - ticks[0]
    for value in ticks:
        y = base - (value / y_max) * plot_h
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_tick_label(value, step))}</text>"
        )
    for pct in range(0, 101, 20):
        y = base - pct / 100 * plot_h
        out.append(f'<text x="{LEFT + plot_w + 6}" y="{y + 4:.1f}">{pct}%</text>')
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{base}" stroke="#333"/>'
        f'<line x1="{LEFT + plot_w}" x2="{LEFT + plot_w}" y1="{TOP}" y2="{base}" stroke="#333"/>'
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{base}" y2="{base}" stroke="#333"/>'
    )
    out.append(
        f'<text transform="translate(18 {TOP + plot_h / 2}) rotate(-90)" text-anchor="middle">'
        "Cost (USD)</text>"
        f'<text transform="translate({WIDTH - 18} {TOP + plot_h / 2}) rotate(90)" '
        'text-anchor="middle">Cached share of input tokens</text>'
        f'<text x="{LEFT + plot_w / 2}" y="{base + 38}" text-anchor="middle">Day (UTC)</text>'
    )
    if not days:
        out.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle">'
            "No generations in this period</text></svg>"
        )
        return "\n".join(out)
    slot = plot_w / len(days)
    bar_w = max(1.0, slot * 0.7)
    label_every = max(1, math.ceil(len(days) / 16))
    points: list[str] = []
    for i, day in enumerate(days):
        x = LEFT + i * slot + (slot - bar_w) / 2
        y = float(base)
        for task in tasks:
            figures = cell.get((day, task))
            if figures is None or figures.cost_usd == 0:
                continue
            h = float(figures.cost_usd) / y_max * plot_h
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colours[task]}"><title>{day} {escape(task)}: '
                f"${usd_text(figures.cost_usd)} ({figures.requests} requests, "
                f"{figures.cache_write_tokens:,} cache-write tokens)</title></rect>"
            )
        saved = per_day[day].savings_usd
        if saved > 0:
            h = float(saved) / y_max * plot_h
            y -= h
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="url(#saved)" stroke="{SAVINGS_COLOUR}" stroke-width="0.5">'
                f"<title>{day} saved ${usd_text(saved)} against list price "
                f"${usd_text(per_day[day].list_cost_usd)}</title></rect>"
            )
        if i % label_every == 0:
            cx = LEFT + i * slot + slot / 2
            out.append(
                f'<text x="{cx:.1f}" y="{base + 16}" text-anchor="middle">{day:%m-%d}</text>'
            )
        ratio = per_day[day].cached_ratio
        if ratio is not None:
            points.append(f"{LEFT + i * slot + slot / 2:.1f},{base - ratio * plot_h:.1f}")
    if points:
        out.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{RATIO_COLOUR}" '
            'stroke-width="2"/>'
        )
        for day, point in zip(
            (d for d in days if per_day[d].cached_ratio is not None), points, strict=True
        ):
            px, py = point.split(",")
            share = per_day[day].cached_ratio or 0.0
            writes = per_day[day].cache_write_tokens
            out.append(
                f'<circle cx="{px}" cy="{py}" r="3" fill="{RATIO_COLOUR}">'
                f"<title>{day} cached: {share:.1%}, cache writes: {writes:,} tokens</title>"
                "</circle>"
            )
    out.append(_legend(tasks, colours, base))
    out.append("</svg>")
    return "\n".join(out)


def _legend(tasks: list[str], colours: dict[str, str], base: float) -> str:
    items = [(task, colours[task], "rect") for task in tasks]
    items.append(("saved against list price", "url(#saved)", "rect"))
    items.append(("cached share (right axis)", RATIO_COLOUR, "line"))
    x, y = float(LEFT), base + 68
    out = []
    for name, colour, shape in items:
        if shape == "rect":
            out.append(f'<rect x="{x:.1f}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        else:
            out.append(
                f'<line x1="{x:.1f}" x2="{x + 12:.1f}" y1="{y - 4}" y2="{y - 4}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        out.append(f'<text x="{x + 16:.1f}" y="{y}">{escape(name)}</text>')
        x += 36 + 7.5 * len(name)
        if x > WIDTH - RIGHT - 100:
            x, y = float(LEFT), y + 18
    return "\n".join(out)


def _page(
    title: str,
    svg: str,
    days: list[dt.date],
    tasks: list[str],
    cell: dict[tuple[dt.date, str], CostFigures],
    per_day: dict[dt.date, CostFigures],
    series_name: str,
) -> str:
    head = "".join(f"<th>{escape(t)} (USD)</th>" for t in tasks)
    body = []
    for day in days:
        costs = "".join(
            f"<td>{usd_text(cell[(day, t)].cost_usd) if (day, t) in cell else ''}</td>"
            for t in tasks
        )
        ratio = per_day[day].cached_ratio
        body.append(
            f"<tr><td>{day}</td>{costs}<td>{usd_text(per_day[day].cost_usd)}</td>"
            f"<td>{usd_text(per_day[day].savings_usd)}</td>"
            f"<td>{'' if ratio is None else f'{ratio:.1%}'}</td>"
            f"<td>{per_day[day].cache_write_tokens:,}</td></tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin-top: 16px; font-size: 13px; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style>
</head>
<body>
{svg}
<p>Bars stacked by {escape(series_name)}; hatched on top: saved against list price.</p>
<table>
<thead><tr><th>Day (UTC)</th>{head}<th>Total (USD)</th><th>Saved (USD)</th><th>Cached</th>
<th>Cache writes (tokens)</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
</body>
</html>
"""


# Fill characters of the text chart's series (cycled), and of the savings on top.
TEXT_FILLS = "█▓▒#=+*%@&"
TEXT_SAVED = "░"


def text_chart(rows: Sequence[DayTaskCost], *, width: int, series_name: str = "profile") -> str:
    """The daily chart as text ``width`` columns wide: one bar per day, stacked by series, the
    savings against list price after it, the day's cost, savings and cached share at the end."""
    tasks = sorted({r.task for r in rows})
    fills = {task: TEXT_FILLS[i % len(TEXT_FILLS)] for i, task in enumerate(tasks)}
    days = _days(rows)
    cell = {(r.day, r.task): r.figures for r in rows}
    per_day = {
        day: sum((cell.get((day, t), CostFigures()) for t in tasks), CostFigures()) for day in days
    }
    if not days:
        return "No generations in this period."
    tails = {
        day: f" ${usd_text(f.cost_usd)} saved ${usd_text(f.savings_usd)} cached "
        + ("-" if f.cached_ratio is None else f"{f.cached_ratio:.0%}")
        for day, f in per_day.items()
    }
    label_w = 6  # "MM-DD "
    bar_w = max(10, width - label_w - 1 - max(len(t) for t in tails.values()))
    top = max(float(max(f.cost_usd, f.list_cost_usd)) for f in per_day.values()) or 1.0
    legend = "  ".join(f"{fills[t]} {t}" for t in tasks) + f"  {TEXT_SAVED} saved"
    lines = [f"Daily cost by {series_name} (UTC): {legend}"]
    for day in days:
        bar = ""
        used = 0.0
        for task in tasks:
            figures = cell.get((day, task))
            if figures is None or figures.cost_usd <= 0:
                continue
            used += float(figures.cost_usd) / top * bar_w
            bar += fills[task] * (round(used) - len(bar))
        saved = per_day[day].savings_usd
        if saved > 0:
            used += float(saved) / top * bar_w
            bar += TEXT_SAVED * (round(used) - len(bar))
        lines.append(f"{day:%m-%d} |{bar.ljust(bar_w)}{tails[day]}")
    return "\n".join(line[:width] for line in lines)


# A Markdown code block in Prefect's artifact page scrolls past about 80 monospace columns
# at 1280 px; the text chart is drawn that wide.
MARKDOWN_COLUMNS = 80
# Past this size the picture is left out of the Markdown (years of days, dozens of series):
# the text chart alone is still there.
MAX_IMAGE_BYTES = 400_000


def svg_data_uri(svg: str) -> str:
    """An SVG document as a ``data:`` URI, for an ``<img>`` or a Markdown image (where the
    browser draws it as a picture: no script in it runs)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def chart_markdown(
    rows: Sequence[DayTaskCost],
    *,
    title: str,
    series_name: str = "profile",
    width: int = MARKDOWN_COLUMNS,
) -> str:
    """The daily chart as Markdown, for places that show Markdown such as a Prefect
    artifact: the SVG chart as an image (a ``data:`` URI: nothing to host), then the text
    chart with each day's exact figures in a code block."""
    drawn = text_chart(rows, width=width, series_name=series_name)
    lines = [f"# {title}", ""]
    uri = svg_data_uri(daily_cost_svg(rows, title=title)) if rows else ""
    if uri and len(uri) <= MAX_IMAGE_BYTES:
        lines += [f"![{_alt(title)}]({uri})", ""]
    lines += ["```text", drawn, "```"]
    return "\n".join(lines) + "\n"


def _alt(text: str) -> str:
    """``text`` safe inside a Markdown image's alt text."""
    return "".join(c for c in text if c not in "[]()\\`")
