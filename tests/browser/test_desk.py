"""An editor works through the review desk in a real browser: the real `contentgen desk`
server on a free port, a real database (SQLite and PostgreSQL) with outputs made by a real run
against the simulator, and Debian's Chromium driven by Playwright.

Set CONTENTGEN_DESK_SCREENSHOTS=1 to refresh docs/img/desk-queue.png and desk-article.png.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import select

from pipeline.db import Job, Review, make_engine, session_factory
from pipeline.desk import add_editor
from tests.browser.chromium import CHROMIUM_ARGS, require_chromium
from tests.desk_support import IMG, SCRIPT, generate

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CONTENTGEN = Path(sys.executable).with_name("contentgen")
ARTIFACTS = REPO / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    base: str
    env: dict[str, str]
    ids: dict[str, int]
    token: str


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """`contentgen desk` on a free port over a database with outputs and one editor."""
    ids = generate(database_url, tmp_path)
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            token = add_editor(session, "ana")
    finally:
        engine.dispose()
    port = _free_port()
    env = {**os.environ, "CONTENTGEN_DATABASE_URL": database_url}
    env.pop("CONTENTGEN_CONFIG_DIR", None)
    log = (tmp_path / "desk.log").open("w")
    proc = subprocess.Popen(
        [str(CONTENTGEN), "desk", "--port", str(port)],
        cwd=REPO,  # ./config: the shipped profiles
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/login", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert proc.poll() is None, (tmp_path / "desk.log").read_text()
            assert time.monotonic() < deadline, "the desk did not start in 60 s"
            time.sleep(0.3)
        yield Server(database_url, base, env, ids, token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """Headless Chromium; screenshots of every open page are kept when the test fails."""
    chromium = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                ARTIFACTS.mkdir(exist_ok=True)
                for c, context in enumerate(browser.contexts):
                    for n, page in enumerate(context.pages):
                        name = f"{request.node.name}-{c}-{n}.png"
                        page.screenshot(path=str(ARTIFACTS / name), full_page=True)
            browser.close()


def _article_of(page: Page) -> int:
    return int(page.url.split("/article/")[1].split("?")[0].split("#")[0])


def _card(page: Page, task: str):  # type: ignore[no-untyped-def]
    return page.locator(f"article.card[data-task={task}]")


def _screenshot(page: Page, name: str) -> None:
    if os.environ.get("CONTENTGEN_DESK_SCREENSHOTS") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "img" / name), full_page=False)


def test_an_editor_works_through_the_queue(server: Server, browser: Browser) -> None:
    """Log in, approve (key a), edit, reject with regenerate, approve-all; each decision is in
    the database and in `contentgen results`. The hostile article renders as text, a POST
    without the CSRF token is refused, and nothing but the login answers without a session."""
    dialogs: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    page.goto(f"{server.base}/queue")
    expect(page).to_have_url(f"{server.base}/login?next=%2Fqueue")
    page.fill("#token", server.token)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{server.base}/queue")
    expect(page.locator("#counts")).to_contain_text("to review")
    states = page.locator("tbody td:first-child .state").all_inner_texts()
    assert states[0] == "flagged" and "pending" in states
    _screenshot(page, "desk-queue.png")

    # The first article is the flagged one, and it holds the attack: it reads as text, with
    # the phrase its facts check points at marked. Approve its headline with the key `a`,
    # reject its summary and have it regenerated with the note.
    with page.expect_navigation():
        page.keyboard.press("j")
    attack = _article_of(page)
    assert attack == server.ids["xss-1"]
    expect(page.locator("#title")).to_contain_text(SCRIPT)
    expect(page.locator("#source")).to_contain_text(IMG)
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
    expect(_card(page, "summary").locator("mark").first).to_be_visible()
    _screenshot(page, "desk-article.png")
    with page.expect_navigation():
        page.keyboard.press("a")
    page.reload()
    expect(_card(page, "headline")).to_contain_text("approved by ana")
    summary = _card(page, "summary")
    page.keyboard.press("r")  # opens the first waiting output's reject form, note focused
    page.keyboard.type("Say what the council decided")
    expect(summary.locator("textarea[name=note]")).to_have_value("Say what the council decided")
    summary.locator("input[name=regenerate]").check()
    with page.expect_navigation():
        summary.get_by_role("button", name="Reject").click()
    expect(_card(page, "summary")).to_contain_text("rejected by ana")
    expect(_card(page, "summary")).to_contain_text("Say what the council decided")

    # The next article: edit its summary (the diff shows), approve its headline.
    with page.expect_navigation():
        page.keyboard.press("j")
    first = _article_of(page)
    assert first != attack
    summary = _card(page, "summary")
    summary.locator("summary", has_text="Edit").click()
    summary.locator("textarea[name=text]").fill("The council's spending plan, in brief.")
    with page.expect_navigation():
        summary.get_by_role("button", name="Save edit").click()
    summary = _card(page, "summary")
    expect(summary).to_contain_text("edited by ana")
    expect(summary.locator("ins")).to_contain_text("brief.")
    expect(summary.locator("del").first).to_be_visible()
    with page.expect_navigation():
        _card(page, "headline").get_by_role("button", name="Approve").click()
    expect(_card(page, "headline")).to_contain_text("approved by ana")

    # The next one: approve all of it at once.
    with page.expect_navigation():
        page.keyboard.press("j")
    everything = _article_of(page)
    assert everything not in (first, attack)
    waiting = page.locator("article.card.waiting").count()
    assert waiting == 2
    with page.expect_navigation():
        page.locator("#approve-all").click()
    expect(page.locator("article.card.waiting")).to_have_count(0)
    page.reload()  # decisions survive a reload: they are in the database
    expect(page.locator("article.card.approved")).to_have_count(2)

    # A POST without the form token is refused, though the browser is logged in.
    pending = page.goto(f"{server.base}/queue?state=pending")
    assert pending is not None and pending.ok
    href = page.locator("tbody a").first.get_attribute("href") or ""
    gen = int(href.split("#out-")[1])
    forged = context.request.post(
        f"{server.base}/output/{gen}/decide", form={"action": "approve"}, max_redirects=0
    )
    assert forged.status == 403

    # A browser without a session reaches nothing but the login page.
    stranger = browser.new_context()
    other = stranger.new_page()
    for path in ("/", "/queue", f"/article/{first}", f"/output/{gen}/history"):
        other.goto(f"{server.base}{path}")
        assert other.url.startswith(f"{server.base}/login"), path
        expect(other.locator("#token")).to_be_visible()
    for path in (f"/output/{gen}/decide", f"/article/{first}/approve-all", "/logout"):
        answer = stranger.request.post(f"{server.base}{path}", form={"action": "approve"})
        assert answer.status == 401, path
    stranger.close()
    assert dialogs == []

    # The database and `contentgen results` agree with what the editor did.
    engine = make_engine(server.url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(
                    Review.generation_id, Review.editor, Review.decision, Review.regenerate
                ).order_by(Review.id)
            ).all()
            requeued = session.scalar(
                select(Job.state).where(Job.article_id == attack, Job.task == "summary")
            )
    finally:
        engine.dispose()
    assert [(r.editor, r.decision, r.regenerate) for r in rows] == [
        ("ana", "approved", False),
        ("ana", "rejected", True),
        ("ana", "edited", False),
        ("ana", "approved", False),
        ("ana", "approved", False),
        ("ana", "approved", False),
    ]
    assert gen not in {r.generation_id for r in rows}
    assert requeued == "queued"
    out = subprocess.run(
        [str(CONTENTGEN), "results", "--format", "jsonl"],
        cwd=REPO,
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    by_ref = {(r["source_id"], r["task"]): r for r in results}
    source = {v: k for k, v in server.ids.items()}
    assert by_ref[(source[first], "headline")]["review_state"] == "approved"
    edited = by_ref[(source[first], "summary")]
    assert edited["review_state"] == "edited" and edited["editor"] == "ana"
    assert edited["final_text"] == "The council's spending plan, in brief."
    assert by_ref[("xss-1", "summary")]["review_state"] == "rejected"
    assert by_ref[("xss-1", "headline")]["review_state"] == "approved"
    assert {by_ref[(source[everything], t)]["review_state"] for t in ("summary", "headline")} == {
        "approved"
    }
