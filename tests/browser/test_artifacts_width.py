"""Artifacts read at 1280 px: the results table and the cost chart fit the window."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from prefect.deployments import run_deployment

from flows.deployments import ADHOC, COST_REPORT
from flows.reporting import RESULT_TEXT_CHARS
from tests.browser.chromium import CHROMIUM_ARGS, require_chromium
from tests.flows.prefect_stack import PrefectStack, flow_run_artifacts
from tests.flows.support import REPO

pytestmark = [pytest.mark.browser, pytest.mark.prefect_server, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"
WIDTH = 1280
RUN_TIMEOUT_S = 180


@contextlib.contextmanager
def chromium_page(name: str) -> Iterator[Page]:
    """A headless Chromium page 1280 px wide; a full-page screenshot is kept on a failure.

    Opened after the flow runs: Playwright's sync API runs an event loop, inside which
    ``run_deployment`` would hand back a coroutine instead of running.
    """
    chromium = require_chromium()
    with sync_playwright() as playwright:
        browser: Browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": WIDTH, "height": 900})
        page.set_default_timeout(30_000)
        try:
            yield page
        except BaseException:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            raise
        finally:
            browser.close()


def test_results_table_fits_a_1280_px_window(prefect_stack: PrefectStack) -> None:
    """An ad-hoc run's results artifact: the table is no wider than the window at 1280 px, so
    the text column is on screen; long texts are cut and say where the full text is."""
    prefect_stack.enqueue("wide-batch", articles=2, tasks=["summary", "key_points"])
    flow_run = run_deployment(
        ADHOC,
        parameters={"batch": {"batch_label": "wide-batch", "tasks": ["summary", "key_points"]}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert flow_run.state is not None and flow_run.state.is_completed(), prefect_stack.diagnostics()
    artifact = flow_run_artifacts(flow_run.id)["adhoc-results"]
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    with chromium_page("results-at-1280") as page:
        check_fits(page, f"{prefect_stack.ui_url}/artifacts/artifact/{artifact.id}", rows)


def check_fits(page: Page, url: str, rows: list[dict[str, object]]) -> None:
    """The results table at ``url`` needs no horizontal scrolling: its cells (the text column
    among them) end inside the table's box, which ends inside the window."""
    page.goto(url)
    page.locator(".p-table table").first.wait_for()
    expect(page.get_by_text("contentgen results show ARTICLE")).to_be_visible()
    scroll, client, right = page.evaluate(
        "(() => { const t = document.querySelector('.p-table');"
        " return [t.scrollWidth, t.clientWidth, t.getBoundingClientRect().right]; })()"
    )
    assert scroll <= client, f"the table scrolls: {scroll} px of content in {client} px"
    assert right <= WIDTH
    cells = page.locator(".p-table td")
    assert cells.count() == 4 * len(rows)
    texts = [str(r["text"]) for r in rows]
    assert all(text and len(text) <= RESULT_TEXT_CHARS + 1 for text in texts)
    # The structured output (key_points) reads as words, not as JSON.
    assert not any(text.startswith("{") for text in texts)


def test_cost_chart_fits_a_1280_px_window(prefect_stack: PrefectStack) -> None:
    """The cost report's chart artifact: the SVG chart drawn as a picture within the window,
    and the text bars in a code block that needs no scrolling."""
    prefect_stack.enqueue("chart-batch", articles=2, tasks=["summary", "headline"])
    done = run_deployment(
        ADHOC,
        parameters={"batch": {"batch_label": "chart-batch"}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert done.state is not None and done.state.is_completed(), prefect_stack.diagnostics()
    flow_run = run_deployment(
        COST_REPORT, parameters={"days": 1, "by": "task"}, timeout=RUN_TIMEOUT_S, poll_interval=1
    )
    assert flow_run.state is not None and flow_run.state.is_completed(), prefect_stack.diagnostics()
    artifact = flow_run_artifacts(flow_run.id)["cost-report-by-task-chart"]
    assert artifact.type == "markdown"
    with chromium_page("chart-at-1280") as page:
        page.goto(f"{prefect_stack.ui_url}/artifacts/artifact/{artifact.id}")
        code = page.locator("pre, code").filter(has_text="Daily cost by profile (UTC)").last
        code.wait_for()
        expect(code).to_contain_text("█")
        expect(code).to_contain_text("saved")
        scroll, client, right = code.evaluate(
            "e => [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right]"
        )
        assert scroll <= client, f"the chart scrolls: {scroll} px of content in {client} px"
        assert right <= WIDTH
        picture = page.locator('img[src^="data:image/svg+xml"]')
        expect(picture).to_be_visible()
        natural, shown, right = picture.evaluate(
            "i => [i.naturalWidth, i.getBoundingClientRect().width,"
            " i.getBoundingClientRect().right]"
        )
        assert natural > 0, "the SVG did not load"
        assert shown > 400 and right <= WIDTH
