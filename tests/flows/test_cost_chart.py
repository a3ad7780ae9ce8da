"""The cost report flow publishes a chart: the daily text bars in a Markdown artifact."""

from __future__ import annotations

import base64
import datetime as dt
import re
from decimal import Decimal

from flows.chunks import RunOptions
from flows.cost_report import make_report, publish_report, utc_today
from pipeline.reports import MARKDOWN_COLUMNS, CostFigures, DayTaskCost, chart_markdown
from pipeline.settings import Settings
from tests.flows.support import RecordingPublisher, RowWritingRun

SUMMARY = ("summary", "completed", 2000, 1536, 120, "0.0010", "0.0016")
HEADLINE = ("headline", "completed", 1800, 1536, 12, "0.0006", "0.0012")


def test_the_cost_report_publishes_a_daily_chart(settings: Settings) -> None:
    """Today's bar, stacked by profile, with the savings; no wider than a code block shows at
    1280 px; the same chart `contentgen report --chart -` draws."""
    RowWritingRun(settings.database_url, [[SUMMARY, HEADLINE, SUMMARY]])(
        0, RunOptions(kind="cli", trigger="cli")
    )
    report, chart = make_report(settings, days=7, by="day", today=utc_today())
    publish = RecordingPublisher()
    result = publish_report(report, 7, publish, chart)
    assert result["total"]["requests"] == 3
    text = publish.markdowns["cost-report-by-day-chart"]
    assert text.startswith("# Daily cost by profile, last 7 day(s)\n\n![Daily cost by profile")
    assert text.endswith("```\n")
    # The picture: the SVG chart of `report --chart FILE`, inline as a data: URI.
    uri = re.search(r"\]\((data:image/svg\+xml;base64,[A-Za-z0-9+/=]+)\)", text)
    assert uri is not None
    svg = base64.b64decode(uri.group(1).split(",", 1)[1]).decode()
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">headline<" in svg and ">summary<" in svg and "<script" not in svg
    drawn = text.split("```text\n", 1)[1].rsplit("\n```", 1)[0].splitlines()
    assert drawn[0].startswith("Daily cost by profile (UTC): █ headline  ▓ summary  ░ saved")
    (bar,) = [line for line in drawn[1:] if line.startswith(f"{utc_today():%m-%d} |")]
    assert "█" in bar and "▓" in bar and "░" in bar
    assert "$0.0026 saved $0.0018 cached 79%" in bar
    assert max(len(line) for line in drawn) <= MARKDOWN_COLUMNS


def test_a_chart_of_nothing_says_so() -> None:
    """No generations in the period: a sentence in the code block, no empty picture."""
    text = chart_markdown([], title="Daily cost")
    assert "No generations in this period." in text
    assert "data:image" not in text


def test_a_chart_too_large_for_an_artifact_keeps_only_its_text() -> None:
    """Past MAX_IMAGE_BYTES (years of days, many series) the picture is left out."""
    start = dt.date(2020, 1, 1)
    figures = CostFigures(requests=1, cost_usd=Decimal("0.01"), list_cost_usd=Decimal("0.02"))
    rows = [
        DayTaskCost(start + dt.timedelta(days=d), f"task{t}", figures)
        for d in range(400)
        for t in range(12)
    ]
    text = chart_markdown(rows, title="Years")
    assert "data:image" not in text
    assert "```text" in text
