"""The frictions a new operator hit (issue 22), each through the exact command as typed, in a
fresh working directory, with the installed ``contentgen`` script: one line and a documented
exit code for a mistake, and readable output for the rest."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, update

from pipeline.db import known_labels, labels_with_queued, make_engine, queue, session_factory
from pipeline.db.models import Article, Generation, Job, Run
from pipeline.intake.reader import ArticleIn
from tests.conftest import CONFIG_DIR
from tests.edge_support import contentgen, lines

SAMPLES = CONFIG_DIR.parent / "samples" / "articles.jsonl"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty working directory."""
    work = tmp_path / "work"
    work.mkdir()
    return work


def env_of(home: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    """A clean environment: no CONTENTGEN_* of the test process, no API key that works."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTENTGEN_", "OPENAI_"))}
    env.update(
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_STATE_HOME=str(home / ".state"),
        COLUMNS="160",
        OPENAI_API_KEY="sk-unused",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",  # never called: nothing is sent
        CONTENTGEN_CONFIG_DIR=str(CONFIG_DIR),
    )
    if database_url is not None:
        env["CONTENTGEN_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def ok(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a command that must succeed; its stdout."""
    result = contentgen(args, env, cwd)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def one_error(args: list[str], env: dict[str, str], cwd: Path, code: int = 2) -> str:
    """Run a command that must fail with ``code`` and one line, no traceback; the line."""
    result = contentgen(args, env, cwd)
    assert result.returncode == code, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    [line] = lines(result.stderr)
    return line


# -- 1. a mistyped batch label ----------------------------------------------------------------


def test_a_label_no_job_ever_carried_is_exit_2_listing_the_known_ones(home: Path) -> None:
    """`run -b adhoc-nosuchlabel` (and `jobs`, `results`, `report`, `jobs requeue`) are
    exit 2 naming the known labels; a label whose jobs are all done is "nothing queued"."""
    url = f"sqlite:///{home / 'cg.db'}"
    env = env_of(home, url)
    ok(["db", "upgrade"], env, home)
    ok(["enqueue", str(SAMPLES), "-t", "headline", "--batch", "evening"], env, home)
    ok(["enqueue", str(SAMPLES), "-t", "summary", "--batch", "morning"], env, home)
    line = one_error(["run", "-b", "adhoc-nosuchlabel"], env, home)
    assert "no job has ever carried the batch label 'adhoc-nosuchlabel'" in line
    assert "the known labels are evening, morning" in line
    for args in (
        ["jobs", "-b", "adhoc-nosuchlabel"],
        ["results", "-b", "adhoc-nosuchlabel"],
        ["report", "-b", "adhoc-nosuchlabel"],
        ["jobs", "requeue", "--failed", "-b", "adhoc-nosuchlabel"],
        ["jobs", "regenerate", "-b", "adhoc-nosuchlabel"],
        ["run", "--dry-run", "-b", "adhoc-nosuchlabel"],
    ):
        assert "evening, morning" in one_error(args, env, home), args

    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            session.execute(
                update(Job).where(Job.batch_label == "evening").values(state="succeeded")
            )
            session.commit()
            assert known_labels(session) == ["evening", "morning"]
            assert labels_with_queued(session) == ["morning"]
    finally:
        engine.dispose()
    done = contentgen(["run", "-b", "evening"], env, home)
    assert done.returncode == 0, done.stderr
    assert "nothing queued" in done.stdout and "batch 'evening'" in done.stdout


# -- 2. the demo's database after `db upgrade` --------------------------------------------------


def test_after_the_demo_an_empty_database_says_which_it_read_and_where_the_demos_is(
    home: Path,
) -> None:
    """With only contentgen-demo.db here, `report` reads it (and says so) instead of advising
    `db upgrade`; after `db upgrade` made an empty contentgen.db, `db upgrade`, `results` and
    `report` say it is empty and name the demo's database."""
    demo_url = "sqlite:///contentgen-demo.db"
    ok(["db", "upgrade"], env_of(home, demo_url), home)
    ok(["enqueue", str(SAMPLES), "-t", "headline"], env_of(home, demo_url), home)
    env = env_of(home)  # no CONTENTGEN_DATABASE_URL, as after the demo
    hint = one_error(["jobs"], env, home)  # a command that does not read the demo's by itself
    assert "run `contentgen db upgrade`; or, for the demo's database here, set " in hint
    assert hint.endswith("CONTENTGEN_DATABASE_URL=sqlite:///contentgen-demo.db")
    report = contentgen(["report"], env, home)
    assert report.returncode == 0, report.stderr
    assert "reading the demo database contentgen-demo.db" in report.stderr

    upgraded = contentgen(["db", "upgrade"], env, home)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "new, empty database" in upgraded.stderr and "contentgen-demo.db" in upgraded.stderr
    for args in (["results", "--format", "table"], ["report"]):
        result = contentgen(args, env, home)
        assert result.returncode == 0, result.stderr
        assert "(read sqlite:///contentgen.db)" in result.stderr, (args, result.stderr)
        assert "the demo's texts are in contentgen-demo.db" in result.stderr, args


# -- 3, 4, 5. structured outputs, local times, money -------------------------------------------


@pytest.fixture
def seeded_url(home: Path) -> Iterator[str]:
    """A database with one key_points output (JSON), one summary, and one run."""
    url = f"sqlite:///{home / 'cg.db'}"
    ok(["db", "upgrade"], env_of(home, url), home)
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            article = ArticleIn(id="a-1", title="Council votes", body="The council voted 7-2.")
            queue.enqueue(session, [article], ["key_points", "summary"], batch_label="evening")
            run = Run(kind="cli", trigger="cli", state="finished")
            session.add(run)
            session.flush()
            jobs = dict(session.execute(select(Job.task, Job.id)).all())
            points = {"points": ["The council voted 7-2", "Budget passes"], "entities": ["Ana"]}
            for task, text, data in (
                ("key_points", json.dumps(points), points),
                ("summary", "The council passed the budget.", None),
            ):
                session.add(
                    Generation(
                        job_id=jobs[task],
                        run_id=run.id,
                        task=task,
                        status="completed",
                        request_model="gpt-4.1-mini",
                        model="gpt-4.1-mini",
                        output_text=text,
                        output_json=data,
                        input_tokens=1000,
                        cached_tokens=0,
                        output_tokens=50,
                        cost_usd=Decimal("0.0012345678"),
                        list_cost_usd=Decimal("0.0023456789"),
                    )
                )
            session.execute(update(Job).values(state="succeeded"))
            session.commit()
            assert session.scalar(select(Article.id)) is not None
        yield url
    finally:
        engine.dispose()


def test_structured_outputs_read_as_bullets_in_the_table_and_markdown(
    home: Path, seeded_url: str
) -> None:
    """`results` (table, titled) shows key_points as labelled items, not raw JSON; the
    Markdown export as labelled bullet lists."""
    env = env_of(home, seeded_url)
    table = ok(["results", "--format", "table"], env, home)
    assert "Generated texts" in table.splitlines()[0]
    assert '{"points"' not in table
    assert "Points: The council voted 7-2 · Budget passes | Ent" in table
    ok(["results", "-o", "out.md"], env, home)
    doc = (home / "out.md").read_text(encoding="utf-8")
    assert "**Points**:\n  - The council voted 7-2\n  - Budget passes" in doc, doc
    assert "**Entities**:\n  - Ana" in doc and "```json" not in doc


def test_times_are_local_with_their_zone(home: Path, seeded_url: str) -> None:
    """With TZ=Asia/Tokyo the created time reads in JST, 9 hours after the stored UTC."""
    engine = make_engine(seeded_url)
    try:
        with session_factory(engine)() as session:
            stored = session.scalars(select(Generation.created_at)).first()
    finally:
        engine.dispose()
    assert stored is not None
    env = env_of(home, seeded_url, TZ="Asia/Tokyo")
    out = ok(["results", "show", "a-1"], env, home)
    tokyo = stored.replace(tzinfo=__import__("datetime").UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Tokyo")
    )
    assert f"{tokyo:%Y-%m-%d %H:%M} JST" in out, out
    assert " UTC" not in out


def test_money_shows_at_most_format_usds_precision_and_never_none(
    home: Path, seeded_url: str
) -> None:
    """`results`, `results show`, `report` and `run --dry-run` print no amount with more than
    six decimals and no `None`; CSV stays exact."""
    env = env_of(home, seeded_url)
    ok(["enqueue", str(SAMPLES), "-t", "headline"], env, home)  # something to plan
    outputs = [
        ok(["results", "--format", "table"], env, home),
        ok(["results", "show", "a-1"], env, home),
        ok(["report"], env, home),
        ok(["report", "--by", "run"], env, home),
        ok(["run", "--dry-run"], env, home),
    ]
    for out in outputs:
        assert not re.search(r"\d\.\d{7,}", out), out
        assert "None" not in out, out
    exact = ok(["results", "--format", "csv"], env, home)
    assert "0.0012345678" in exact


# -- 6. postgres:// URLs ----------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_and_bare_postgresql_urls_simply_work(home: Path, blank_postgres_url: str) -> None:
    """CONTENTGEN_DATABASE_URL=postgres://... (as hosts hand it out) and postgresql://
    (no driver named): `db upgrade` and `jobs` work."""
    rest = blank_postgres_url.split("://", 1)[1]
    for scheme in ("postgres", "postgresql"):
        env = env_of(home, f"{scheme}://{rest}")
        ok(["db", "upgrade"], env, home)
        assert "nothing queued" in ok(["jobs"], env, home)


# -- 7. simulate on a busy port ---------------------------------------------------------------


def test_simulate_on_a_busy_port_is_one_line_and_exit_2(home: Path) -> None:
    """A port another program holds: one line naming it and what to do, exit 2."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error(["simulate", "--port", str(port)], env_of(home), home)
    assert f"cannot listen on 127.0.0.1:{port}" in line and "--port 0" in line


# -- 8. a mistyped model ----------------------------------------------------------------------


def test_a_mistyped_model_names_the_profile_and_its_line(home: Path) -> None:
    """model = "gpt-4.1-minii" in [profiles.summary]: the line names profiles.toml, the line
    number, the field and the nearest known model; `run` and `run --dry-run` alike."""
    config = home / "config"
    config.mkdir()
    for path in CONFIG_DIR.rglob("*"):
        target = config / path.relative_to(CONFIG_DIR)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(path.read_bytes())
    text = (config / "profiles.toml").read_text(encoding="utf-8")
    start = text.index("[profiles.summary]")
    at = text.index('model = "gpt-4.1-mini"', start)
    text = text[:at] + 'model = "gpt-4.1-minii"' + text[at + len('model = "gpt-4.1-mini"') :]
    (config / "profiles.toml").write_text(text, encoding="utf-8")
    line_no = text[:at].count("\n") + 1
    env = env_of(home, f"sqlite:///{home / 'cg.db'}", CONTENTGEN_CONFIG_DIR=str(config))
    ok(["db", "upgrade"], env, home)
    for args in (["run", "--dry-run"], ["run", "-q"]):
        line = one_error(args, env, home)
        assert line.startswith(f"error: {config / 'profiles.toml'}:{line_no}: "), line
        assert "profiles.summary.model = 'gpt-4.1-minii'" in line
        assert "did you mean 'gpt-4.1-mini'" in line


# -- 9. --run of a run that does not exist; report -b/-t/-o -----------------------------------


def test_a_run_that_does_not_exist_is_exit_2_everywhere_and_report_narrows_and_writes(
    home: Path, seeded_url: str
) -> None:
    """`results --run 99` is exit 2 like `report --run 99`; `report -b evening -t summary
    -o cost.csv` writes the narrowed report to the file."""
    env = env_of(home, seeded_url)
    for args in (["results", "--run", "99"], ["report", "--run", "99"]):
        assert one_error(args, env, home) == "error: no run with id 99"
    ok(["report", "-b", "evening", "-t", "summary", "-o", "cost.csv"], env, home)
    rows = (home / "cost.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("task,") and rows[1].startswith("summary,")
    assert rows[-1].startswith("TOTAL,") and len(rows) == 3
    assert "key_points" not in "\n".join(rows)
    ok(["report", "--by", "batch", "-o", "by-batch.json"], env, home)
    data = json.loads((home / "by-batch.json").read_text(encoding="utf-8"))
    assert [r["batch_label"] for r in data["rows"]] == ["evening"]
    assert one_error(["report", "-o", "cost.txt"], env, home).startswith("error: --output")


def test_sqlite3_is_what_the_seed_wrote(seeded_url: str) -> None:
    """The seeded file is a plain SQLite database (the fixture above is what the tests read)."""
    path = seeded_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (2,)


# -- pure helpers behind 3, 4, 5 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0", "0.00"),
        ("1.5", "1.50"),
        ("0.0012345678", "0.001235"),
        ("12.3456789", "12.3457"),
        ("-0.00000004", "-0.000000"),
        ("1234.5", "1234.50"),
    ],
)
def test_usd_shown_rounds_as_format_usd(value: str, shown: str) -> None:
    """At most four decimals, six below a cent, at least two; a column can be aligned."""
    from pipeline.reports import shown_places, usd_shown

    assert usd_shown(Decimal(value)) == shown
    assert shown_places([Decimal("0.5"), Decimal("0.000123456")]) == 6


def test_structured_lines_and_line() -> None:
    """Objects as labelled fields, lists as bullets; one line for a table cell."""
    from pipeline.reports.resultfiles import structured_line, structured_lines

    value = {"points": ["a", "b"], "score": 0.5, "meta": {"lang": "en"}}
    assert structured_lines(value) == ["Points:", "  - a", "  - b", "Score: 0.5", "Meta:",
                                       "  Lang: en"]  # fmt: skip
    assert structured_line(value) == "Points: a · b | Score: 0.5 | Meta: Lang: en"


def test_local_time_names_its_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stored naive-UTC time in the process's zone, with the zone's name."""
    import datetime as dt
    import time

    from pipeline.reports import local_time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert local_time(dt.datetime(2026, 12, 7, 23, 4)) == "2026-12-07 18:04 EST"
        assert local_time(None) == "-"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_summaries_show_a_dash_for_nothing() -> None:
    """with_usd formats money and leaves None to print_summary, which shows `-`."""
    from pipeline.cli import display

    assert display.with_usd({"cost_usd": "0.0012345678", "budget_usd": None}) == {
        "cost_usd": "$0.001235",
        "budget_usd": None,
    }
