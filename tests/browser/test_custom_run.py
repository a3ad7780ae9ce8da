"""An editor starts an ad-hoc batch from the Prefect UI's Custom run form, in a real browser.

Headless Chromium (Debian's, at /usr/bin/chromium: Playwright cannot download its own browser
here) driven by Playwright. On failure a screenshot is kept in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright
from prefect.client.orchestration import get_client
from sqlalchemy import select

from flows.deployments import ADHOC
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Generation, Job, Run
from tests.browser.chromium import CHROMIUM_ARGS, require_chromium
from tests.flows.prefect_stack import PrefectStack
from tests.flows.support import REPO

pytestmark = [pytest.mark.browser, pytest.mark.prefect_server, pytest.mark.slow]

ARTIFACTS = REPO / "test-artifacts"
RUN_TIMEOUT_MS = 180_000


@pytest.fixture
def browser(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile; screenshots every open page on failure."""
    chromium = require_chromium()
    profile = tmp_path / "chromium-profile"  # fresh for every test
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                ARTIFACTS.mkdir(exist_ok=True)
                for n, page in enumerate(context.pages):
                    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{n}.png"))
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def _reload_until_visible(page: Page, locator: Locator) -> None:
    """Reload until ``locator`` shows (the runs list refreshes itself only every ~30 s)."""
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        try:
            expect(locator).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            page.reload()
    expect(locator).to_be_visible(timeout=1)


def wait_until_offered(label: str, timeout_s: float = 30.0) -> None:
    """Wait until the ad-hoc deployment's form offers ``label`` (``contentgen serve`` refreshes
    the offered labels every ``LABEL_REFRESH_S``)."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            schema = client.read_deployment_by_name(ADHOC).parameter_openapi_schema or {}
            field = schema["definitions"]["BatchParameters"]["properties"]["batch_label"]
            if label in (field.get("examples") or []):
                return
            time.sleep(0.3)
    raise AssertionError(f"{label!r} never offered on the ad-hoc form")


def test_custom_run_from_the_ui_generates_the_batch(
    browser: BrowserContext, prefect_stack: PrefectStack
) -> None:
    """Deployments -> adhoc -> Run -> Custom run, set the batch label, Submit: it completes."""
    label = "ui-batch"
    prefect_stack.enqueue(label, articles=2, tasks=["summary", "headline"])
    wait_until_offered(label)
    page = browser.pages[0] if browser.pages else browser.new_page()

    page.goto(f"{prefect_stack.ui_url}/deployments")
    page.get_by_role("link", name="adhoc", exact=True).click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()

    # The batch is the nested "batch" parameter; its "Batch label" is a plain text field
    # (empty: every job), not a str/None type picker.
    batch_label = (
        page.locator(".schema-form-property")
        .filter(
            has=page.locator(".schema-form-property__label", has_text=re.compile("^Batch label"))
        )
        .last
    )
    expect(batch_label).to_be_visible()
    # An editor's form: no "Property is type None" noise, no infrastructure knobs.
    expect(page.get_by_text("Property is type None")).to_have_count(0)
    expect(page.get_by_text(re.compile("token.limit", re.IGNORECASE))).to_have_count(0)
    expect(batch_label.get_by_role("button", name="None", exact=True)).to_have_count(0)
    # The rule in words, not a regular expression; the labels with queued jobs offered (the
    # serve process refreshes them every second here, and the form was opened after that).
    expect(batch_label).to_contain_text("starts with a letter or a digit")
    expect(batch_label).to_contain_text("Labels with queued jobs:")
    expect(batch_label).to_contain_text(label)
    expect(page.get_by_text("[A-Za-z0-9")).to_have_count(0)
    batch_label.get_by_role("textbox").fill(label)
    page.get_by_role("button", name="Submit").click()

    # Back on the deployment's runs; once the run starts, its name leads back to the label.
    expect(page).to_have_url(re.compile(r"/deployments/deployment/"))
    run_link = page.get_by_role("link", name=f"adhoc-{label}", exact=True).first
    _reload_until_visible(page, run_link)
    run_link.click()
    expect(page).to_have_url(re.compile(r"/runs/flow-run/[0-9a-f-]+"))
    # The run's outcome is its final state's message (shown in its log): wait for it, as
    # "Completed" alone may also be a finished task run's state.
    outcome = page.get_by_text(re.compile(r"4 generated, 0 failed, \$")).first
    expect(outcome).to_be_visible(timeout=RUN_TIMEOUT_MS)
    flow_run_id = page.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]

    engine = make_engine(prefect_stack.database_url)
    with session_factory(engine)() as session:
        jobs = session.scalars(select(Job.state).where(Job.batch_label == label)).all()
        run_ids = session.scalars(select(Run.id).where(Run.flow_run_id == flow_run_id)).all()
        generations = session.scalars(
            select(Generation).where(Generation.run_id.in_(run_ids))
        ).all()
    engine.dispose()
    assert jobs == ["succeeded"] * 4, prefect_stack.diagnostics()
    assert sorted(g.task for g in generations) == ["headline", "headline", "summary", "summary"]
    assert all(g.status == "completed" for g in generations)

    # The artifacts are on the run's page: the progress, the tables.
    page.get_by_text("Artifacts", exact=True).click()
    for key in ("adhoc-cost-by-profile", "adhoc-results", "adhoc-progress"):
        expect(page.get_by_text(key).first).to_be_visible()
