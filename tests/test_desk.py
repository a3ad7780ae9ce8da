"""The review desk over HTTP (Starlette's TestClient against the real app and a real database,
SQLite and PostgreSQL): no page without a session, CSRF on every form, cookies, decisions as
`pipeline.review` records them, the queue's order and filters, and escaping of hostile text."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from pipeline.cli.desk_cmd import is_loopback
from pipeline.cli.main import app as cli_app
from pipeline.db import Editor, Generation, Job, Review, make_engine, session_factory
from pipeline.desk import add_editor, create_app
from pipeline.desk.marks import Segment, marked, phrases, word_diff
from pipeline.settings import get_settings
from tests.desk_support import IMG, SCRIPT, csrf_of, follows, generate


@dataclass
class Desk:
    client: TestClient
    url: str
    ids: dict[str, int]
    token: str

    def login(self, token: str | None = None) -> str:
        """Log in; the CSRF token of the queue page."""
        page = self.client.get("/login")
        answer = self.client.post(
            "/login",
            data={"csrf": csrf_of(page.text), "token": token or self.token, "next": "/queue"},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        return csrf_of(self.client.get("/queue").text)

    def reviews(self) -> list[tuple[int, str, str, str | None, bool]]:
        engine = make_engine(self.url)
        try:
            with session_factory(engine)() as session:
                rows = session.execute(
                    select(
                        Review.generation_id,
                        Review.editor,
                        Review.decision,
                        Review.note,
                        Review.regenerate,
                    ).order_by(Review.id)
                )
                return [tuple(r) for r in rows]  # type: ignore[misc]
        finally:
            engine.dispose()


def _desk(url: str, ids: dict[str, int]) -> Iterator[Desk]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            token = add_editor(session, "ana")
        with TestClient(create_app(session_factory(engine), follows())) as client:
            yield Desk(client, url, ids, token)
    finally:
        engine.dispose()


@pytest.fixture
def empty_desk(database_url: str) -> Iterator[Desk]:
    """The desk on a migrated database with one editor and no outputs."""
    yield from _desk(database_url, {})


@pytest.fixture
def desk(database_url: str, tmp_path: Path) -> Iterator[Desk]:
    """The desk on a database with outputs: pending ones and flagged ones (the attack too)."""
    yield from _desk(database_url, generate(database_url, tmp_path))


def test_no_page_but_the_login_answers_without_a_session(empty_desk: Desk) -> None:
    """Pages redirect to the login, forms get 401, the login page answers; a wrong token is
    refused and a login without its form token is 403."""
    client = empty_desk.client
    for path in ("/", "/queue", "/article/1", "/output/1/history", "/queue?task=summary"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next=%2F"), path
    for path in ("/output/1/decide", "/article/1/approve-all", "/logout"):
        answer = client.post(path, data={"action": "approve"}, follow_redirects=False)
        assert answer.status_code == 401, path
    page = client.get("/login")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert "'nonce-" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    wrong = client.post("/login", data={"csrf": csrf_of(page.text), "token": "cgdesk_guess"})
    assert wrong.status_code == 401 and "nobody" in wrong.text
    no_csrf = client.post("/login", data={"token": empty_desk.token}, follow_redirects=False)
    assert no_csrf.status_code == 403
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_session_cookie_is_httponly_strict_and_forms_need_the_token(empty_desk: Desk) -> None:
    """The session cookie is HttpOnly and SameSite=Strict; a POST without the session's CSRF
    token (or with another) is refused with 403; logging out ends the session."""
    page = empty_desk.client.get("/login")
    answer = empty_desk.client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": empty_desk.token},
        follow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert "contentgen_desk=" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower() and "Path=/" in cookie
    queue = empty_desk.client.get("/queue")
    assert queue.status_code == 200 and "ana" in queue.text
    token = csrf_of(queue.text)
    assert empty_desk.client.post("/logout", data={}).status_code == 403
    assert empty_desk.client.post("/logout", data={"csrf": "x" + token}).status_code == 403
    out = empty_desk.client.post("/logout", data={"csrf": token}, follow_redirects=False)
    assert out.status_code == 303
    assert empty_desk.client.get("/queue", follow_redirects=False).status_code == 303
    page = empty_desk.client.get("/login?next=//evil.example/x")
    elsewhere = empty_desk.client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": empty_desk.token, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/queue"  # never off the site


def test_decisions_from_the_desk_are_recorded_with_the_editor(desk: Desk) -> None:
    """Approve, edit (diff shown), reject with regenerate and approve-all go through
    review.decide with the logged-in editor; a POST without CSRF changes nothing; a refused
    decision shows its reason on the page."""
    csrf = desk.login()
    article = desk.ids["nm-2025-0001"] if "nm-2025-0001" in desk.ids else min(desk.ids.values())
    page = desk.client.get(f"/article/{article}")
    assert page.status_code == 200
    gens = {task: int(g) for g, task in re.findall(r'id="out-(\d+)" data-task="(\w+)"', page.text)}
    assert set(gens) == {"summary", "headline"}
    summary, headline = gens["summary"], gens["headline"]

    refused = desk.client.post(f"/output/{summary}/decide", data={"action": "approve"})
    assert refused.status_code == 403 and desk.reviews() == []

    def post(gen: int, **data: str) -> int:
        form = {"csrf": csrf, "article": str(article), "q": "", **data}
        return desk.client.post(
            f"/output/{gen}/decide", data=form, follow_redirects=False
        ).status_code

    assert post(summary, action="approve") == 303
    assert post(headline, action="edit", text="A <b>bold</b> new headline") == 303
    page = desk.client.get(f"/article/{article}").text
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<ins>" in page and "<b>bold" not in page
    no_note = desk.client.post(
        f"/output/{summary}/decide",
        data={"csrf": csrf, "article": str(article), "action": "reject", "note": " "},
    )
    assert no_note.status_code == 400 and "needs a note" in no_note.text
    assert post(summary, action="reject", note="Misses the vote", regenerate="1") == 303

    other = sorted(desk.ids.values())[1]
    done = desk.client.post(
        f"/article/{other}/approve-all",
        data={"csrf": csrf, "article": str(other), "q": ""},
        follow_redirects=False,
    )
    assert done.status_code == 303
    rows = desk.reviews()
    assert [(r[0], r[1], r[2]) for r in rows[:3]] == [
        (summary, "ana", "approved"),
        (headline, "ana", "edited"),
        (summary, "ana", "rejected"),
    ]
    assert rows[2][3:] == ("Misses the vote", True)
    assert [(r[1], r[2]) for r in rows[3:]] == [("ana", "approved"), ("ana", "approved")]
    engine = make_engine(desk.url)
    try:
        with session_factory(engine)() as session:
            state = session.scalar(
                select(Job.state).where(Job.article_id == article, Job.task == "summary")
            )
    finally:
        engine.dispose()
    assert state == "queued"
    history = desk.client.get(f"/output/{headline}/history").text
    assert "edited" in history and "ana" in history and "headline@" in history
    again = desk.client.post(
        f"/article/{other}/approve-all", data={"csrf": csrf, "article": str(other)}
    )
    assert again.status_code == 400 and "nothing waits" in again.text


def test_queue_shows_flagged_first_with_counts_and_filters(desk: Desk) -> None:
    """Flagged outputs come before pending ones; counts and the task filter apply."""
    desk.login()
    page = desk.client.get("/queue").text
    states = re.findall(r'<td><span class="state state-(\w+)">', page)
    assert states and "flagged" in states and "pending" in states
    assert states == sorted(states, key=lambda s: 0 if s == "flagged" else 1)
    assert f"{len(states)}</strong> to review" in page
    only = desk.client.get("/queue?task=headline&section=").text
    rows = re.findall(r"<td>(summary|headline)</td>", only)
    assert rows and set(rows) == {"headline"}
    engine = make_engine(desk.url)
    try:
        with session_factory(engine)() as session:
            second = session.scalar(
                select(Generation.run_id)
                .join(Job, Job.id == Generation.job_id)
                .where(Job.article_id == desk.ids["xss-1"])
            )
    finally:
        engine.dispose()
    by_run = desk.client.get(f"/queue?run={second}").text
    assert "xss-1" in by_run and "nm-2025-0001" not in by_run
    bad = desk.client.get("/queue?run=1;drop")
    assert bad.status_code == 400 and "not a run id" in bad.text


def test_hostile_article_text_shows_as_text(desk: Desk) -> None:
    """An article whose title and body hold <script> and an onerror image is escaped on the
    queue, the article page and the history."""
    desk.login()
    article = desk.ids["xss-1"]
    for path in ("/queue", f"/article/{article}"):
        html = desk.client.get(path).text
        assert SCRIPT not in html and "<img" not in html, path
        assert "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;" in html, path
    html = desk.client.get(f"/article/{article}").text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert IMG not in html
    gen = int(re.search(r'id="out-(\d+)"', html).group(1))  # type: ignore[union-attr]
    assert "<img" not in desk.client.get(f"/output/{gen}/history").text


def test_editors_from_the_command_line(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """add prints the token once and stores only its hash; a second add of the name, or
    removing nobody, is one line and exit 2; remove ends the editor's sessions."""
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        added = runner.invoke(cli_app, ["desk", "editors", "add", "bo", "--json"])
        assert added.exit_code == 0, added.output
        token = json.loads(added.stdout)["token"]
        engine = make_engine(sqlite_url)
        with session_factory(engine)() as session:
            stored = session.scalar(select(Editor.token_hash).where(Editor.name == "bo"))
        assert stored == hashlib.sha256(token.encode()).hexdigest()
        again = runner.invoke(cli_app, ["desk", "editors", "add", "bo"])
        assert again.exit_code == 2 and "exists" in again.stderr
        with TestClient(create_app(session_factory(engine), follows())) as client:
            desk = Desk(client, sqlite_url, {}, token)
            desk.login()
            listed = json.loads(
                runner.invoke(cli_app, ["desk", "editors", "list", "--json"]).stdout
            )
            assert [(e["name"], e["sessions"]) for e in listed] == [("bo", 1)]
            gone = runner.invoke(cli_app, ["desk", "editors", "remove", "bo"])
            assert gone.exit_code == 0
            assert client.get("/queue", follow_redirects=False).status_code == 303
        nobody = runner.invoke(cli_app, ["desk", "editors", "remove", "bo"])
        assert nobody.exit_code == 2 and "no editor 'bo'" in nobody.stderr
        engine.dispose()
    finally:
        get_settings.cache_clear()


def test_failed_checks_mark_their_phrases_and_edits_diff_by_word() -> None:
    """Quoted phrases and figures of failed checks are marked (longest first, whole words);
    passed checks mark nothing; the diff keeps the model's words as removed."""
    notes = phrases(
        [
            {
                "check": "facts",
                "passed": False,
                "reason": "not in the article: 4,501 (number), 'Smith' (name)",
            },
            {"check": "banned", "passed": False, "reason": "uses banned wording 'slams'"},
            {"check": "max_words", "passed": True, "reason": "'ignored' 10 words"},
        ]
    )
    assert set(notes) == {"4,501", "Smith", "slams"}
    segments = marked("Smith slams 4,501 smithy plans", notes)
    assert [s.text for s in segments if s.note] == ["Smith", "slams", "4,501"]
    assert "".join(s.text for s in segments) == "Smith slams 4,501 smithy plans"
    assert marked("", notes) == [Segment("")]
    changes = word_diff("The council voted", "The board voted")
    assert [(c.kind, c.text) for c in changes] == [
        ("same", "The "),
        ("removed", "council "),
        ("added", "board "),
        ("same", "voted"),
    ]


def test_serving_says_what_it_listens_on_and_refuses_a_busy_port(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loopback by default; any other address gets the proxy note; a port in use is one
    line and exit 2, not a traceback."""
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("desk.example")
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            taken = CliRunner().invoke(cli_app, ["desk", "--port", str(port)])
        assert taken.exit_code == 2 and "cannot listen on 127.0.0.1" in taken.stderr
    finally:
        get_settings.cache_clear()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "CONTENTGEN_DATABASE_URL": sqlite_url}
    command = [str(Path(sys.executable).with_name("contentgen")), "desk", "--host", "0.0.0.0"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert lines[0].startswith(f"Review desk on http://0.0.0.0:{port}")
    assert "behind the newsroom's HTTPS proxy" in lines[1]
    assert "no editors yet" in lines[2]


def test_a_graders_reason_marks_the_phrase_it_quotes(desk: Desk) -> None:
    """A failed grade flags the output; the phrase its reason quotes is marked in the text,
    and the grader's verdict and reasons are listed (escaped)."""
    engine = make_engine(desk.url)
    article = desk.ids["nm-2025-0001"]
    try:
        with session_factory(engine)() as session:
            gen, text = session.execute(
                select(Generation.id, Generation.output_text)
                .join(Job, Job.id == Generation.job_id)
                .where(Job.article_id == article, Job.task == "summary")
            ).one()
            quoted = " ".join(text.split()[1:4])
            grader_job = Job(
                article_id=article, task="grade_summary", state="succeeded", content_hash="h"
            )
            session.add(grader_job)
            session.flush()
            session.add(
                Generation(
                    job_id=grader_job.id,
                    task="grade_summary",
                    status="completed",
                    request_model="gpt-4.1-mini",
                    graded_generation_id=gen,
                    flagged=True,
                    needs_review=False,
                    checks=[
                        {"check": "accurate", "passed": True, "reason": "matches"},
                        {
                            "check": "neutral",
                            "passed": False,
                            "reason": f'"{quoted}" takes a side <b>',
                        },
                    ],
                )
            )
            session.commit()
    finally:
        engine.dispose()
    desk.login()
    html = desk.client.get(f"/article/{article}").text
    card = html[html.index(f'id="out-{gen}"') :]
    card = card[: card.index("</article>")]
    assert 'class="state state-flagged"' in card
    assert "grader grade_summary: flagged" in card
    assert "takes a side &lt;b&gt;" in card
    assert re.search(r'<mark title="neutral: [^"]*">' + re.escape(quoted) + "</mark>", card)
