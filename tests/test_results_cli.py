"""``contentgen results`` and the ``v_latest_generations`` view: what people read of a run.

Seeded tests run on SQLite and PostgreSQL (``database_url``) through the real Typer app; the
end-to-end test runs the installed ``contentgen`` script in an empty directory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from typer.testing import Result

from pipeline.cli import common
from pipeline.db import queue
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Article, Generation, Job, Run
from pipeline.intake.reader import ArticleIn

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "config"
CONTENTGEN = Path(sys.executable).parent / "contentgen"
T0 = dt.datetime(2026, 11, 30, 8, 0, 0)
# A text a CSV writer must quote: commas, quotes, newlines and non-ASCII.
TRICKY = 'Line one, with "quotes"\nLine two: café — naïve, 10% off; ünïcödé ✓'
LONG = "word " * 400

Invoke = Callable[..., Result]


@dataclass(frozen=True)
class Seeded:
    """Ids of what ``seed`` stored."""

    jobs: dict[tuple[str, str], int]  # (source id, task) -> job id
    runs: tuple[int, int]


def _article(n: int, title: str | None = None) -> ArticleIn:
    return ArticleIn(
        id=f"art-{n}",
        title=title or f"Article number {n}",
        body=f"The body of article {n}.",
        section="news",
        url=f"https://example.org/{n}",
    )


def _gen(
    job_id: int, task: str, status: str, minutes: int, run_id: int, **kw: object
) -> Generation:
    values: dict[str, object] = {
        "job_id": job_id,
        "run_id": run_id,
        "task": task,
        "status": status,
        "request_model": "gpt-4.1-mini",
        "model": "gpt-4.1-mini-2025-04-14",
        "input_tokens": 1000,
        "cached_tokens": 512,
        "cache_write_tokens": 3,
        "output_tokens": 40,
        "reasoning_tokens": 7,
        "cost_usd": Decimal("0.0001234567"),
        "list_cost_usd": Decimal("0.0002"),
        "created_at": T0 + dt.timedelta(minutes=minutes),
        "output_text": None if status == "failed" else f"{task} text {job_id} at {minutes}",
        "error": "HTTP 500 boom" if status == "failed" else None,
    }
    values.update(kw)
    return Generation(**values)


def seed(engine: Engine) -> Seeded:
    """Three articles, summary and headline each, with history, failures and a prewarm.

    - art-1: summary completed (run 1), then regenerated (run 2, newer text); headline
      completed in run 1, then a *newer* failed attempt in run 2 (latest = the completed one).
    - art-2 (batch "evening"): summary with the tricky text; headline incomplete only.
    - art-3: summary failed for good (job failed, 3 attempts); headline completed, plus a
      prewarm row that is never shown.
    """
    sessions = session_factory(engine)
    with sessions() as session:
        queue.enqueue(
            session, [_article(1), _article(3, "Ärger über Preise")], ["summary", "headline"]
        )
        queue.enqueue(session, [_article(2)], ["summary", "headline"], batch_label="evening")
        ids = {
            (source_id, task): job_id
            for job_id, source_id, task in session.execute(
                select(Job.id, Article.source_id, Job.task).join(Article)
            )
        }
        runs = []
        for started in (T0, T0 + dt.timedelta(days=1)):
            run = Run(kind="cli", trigger="cli", started_at=started, state="finished")
            session.add(run)
            session.flush()
            runs.append(run.id)
        r1, r2 = runs
        day2 = 24 * 60
        session.add_all(
            [
                _gen(ids["art-1", "summary"], "summary", "completed", 1, r1),
                _gen(ids["art-1", "summary"], "summary", "completed", day2 + 1, r2),
                _gen(ids["art-1", "headline"], "headline", "completed", 2, r1),
                _gen(ids["art-1", "headline"], "headline", "failed", day2 + 2, r2),
                _gen(ids["art-2", "summary"], "summary", "completed", 3, r1, output_text=TRICKY),
                _gen(
                    ids["art-2", "headline"],
                    "headline",
                    "incomplete",
                    4,
                    r1,
                    incomplete_reason="max_output_tokens",
                    output_text="Cut sh",
                    cost_usd=Decimal("0.5"),
                ),
                _gen(ids["art-3", "summary"], "summary", "failed", 5, r1, attempts=3),
                _gen(ids["art-3", "headline"], "headline", "completed", 6, r1, output_text=LONG),
                _gen(ids["art-3", "headline"], "headline", "prewarm", 7, r1, output_text=""),
            ]
        )
        session.flush()
        for key in ids:
            if key != ("art-3", "summary"):
                session.execute(
                    Job.__table__.update().where(Job.id == ids[key]).values(state="succeeded")
                )
        session.execute(
            Job.__table__.update()
            .where(Job.id == ids["art-3", "summary"])
            .values(state="failed", attempts=3, last_error="RetryableAPIError: HTTP 500 boom")
        )
        session.commit()
    return Seeded(ids, (r1, r2))


@pytest.fixture
def seeded(engine: Engine) -> Seeded:
    """The database of ``seed``."""
    return seed(engine)


def _jsonl(result: Result) -> list[dict[str, object]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _keys(rows: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(r["source_id"], r["task"]) for r in rows]


def test_latest_is_the_newest_success_else_the_newest_attempt(cli: Invoke, seeded: Seeded) -> None:
    """Per (article, task): the newest completed text; without one, the newest attempt."""
    rows = _jsonl(cli("results", "--format", "jsonl"))
    by_key = {(r["source_id"], r["task"]): r for r in rows}
    assert _keys(rows) == [
        ("art-1", "headline"),
        ("art-1", "summary"),
        ("art-3", "headline"),
        ("art-3", "summary"),
        ("art-2", "headline"),
        ("art-2", "summary"),
    ]
    assert by_key["art-1", "summary"]["text"] == "summary text 1 at 1441"  # the regeneration
    assert by_key["art-1", "headline"]["status"] == "completed"  # not the newer failure
    assert by_key["art-2", "headline"]["status"] == "incomplete"
    assert by_key["art-3", "summary"]["status"] == "failed"
    assert by_key["art-3", "summary"]["error"] == "HTTP 500 boom"
    assert by_key["art-3", "headline"]["text"] == LONG  # not the prewarm row
    first = by_key["art-1", "headline"]
    assert first["title"] == "Article number 1" and first["url"] == "https://example.org/1"
    assert first["model"] == "gpt-4.1-mini-2025-04-14"
    assert (first["input_tokens"], first["cached_tokens"], first["cache_write_tokens"]) == (
        1000,
        512,
        3,
    )
    assert (first["output_tokens"], first["reasoning_tokens"]) == (40, 7)
    assert first["cost_usd"] == "0.0001234567"  # exact text, never a float
    assert first["run_id"] == seeded.runs[0] and first["job_state"] == "succeeded"


def test_all_lists_every_generation_but_prewarms(cli: Invoke, seeded: Seeded) -> None:
    """--all is the history: every generation, oldest first within a task."""
    rows = _jsonl(cli("results", "--all", "--json"))
    assert len(rows) == 8
    summaries = [r["text"] for r in rows if r["source_id"] == "art-1" and r["task"] == "summary"]
    assert summaries == ["summary text 1 at 1", "summary text 1 at 1441"]
    assert "prewarm" not in {r["status"] for r in rows}


def test_csv_is_proper_csv_with_full_text(cli: Invoke, seeded: Seeded, tmp_path: Path) -> None:
    """CSV: header row, quoted multi-line UTF-8 text in full, exact cost; to stdout or -o."""
    result = cli("results", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6
    by_key = {(r["source_id"], r["task"]): r for r in rows}
    assert by_key["art-2", "summary"]["text"] == TRICKY
    assert by_key["art-3", "headline"]["text"] == LONG
    assert by_key["art-2", "headline"]["cost_usd"] == "0.50"
    assert by_key["art-3", "summary"]["text"] == ""
    assert {"input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens"} <= set(rows[0])
    out = tmp_path / "export.csv"
    written = cli("results", "-o", str(out))  # the format from the name
    assert written.exit_code == 0, written.output
    assert written.stdout == ""
    with out.open(encoding="utf-8", newline="") as f:
        assert list(csv.DictReader(f)) == rows


def test_markdown_is_one_document_per_article_and_task(
    cli: Invoke, seeded: Seeded, tmp_path: Path
) -> None:
    """Markdown: a heading per article, one per task with its full text and numbers."""
    out = tmp_path / "texts.md"
    result = cli("results", "--format", "markdown", "--output", str(out))
    assert result.exit_code == 0, result.output
    doc = out.read_text(encoding="utf-8")
    assert doc.startswith("# Generated texts\n")
    assert doc.count("\n## ") == 3 and "\n## Ärger über Preise\n" in doc
    assert doc.count("\n### summary\n") == 3 and doc.count("\n### headline\n") == 3
    assert TRICKY in doc and LONG.strip() in doc
    assert "$0.000123 ·" in doc and "run " in doc
    # art-1's section holds its texts, before art-3's heading.
    art1 = doc.index("## Article number 1")
    assert art1 < doc.index("summary text 1 at 1441") < doc.index("## Ärger über Preise")


def test_table_fits_the_terminal_and_cuts_the_text(
    cli: Invoke, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table keeps every row within the width, long text cut with an ellipsis."""
    monkeypatch.setattr(common.console, "_width", 100)
    result = cli("results", "--format", "table")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100
    for source_id in ("art-1", "art-2", "art-3"):
        assert source_id in result.stdout
    assert "word word" in result.stdout and "…" in result.stdout
    assert LONG.strip() not in result.stdout
    # The total rounded as format_usd rounds it (exact in --format csv/jsonl), and a title.
    assert "6 generation(s), $0.5006\n" in result.stdout
    assert "Generated texts" in lines[0]
    monkeypatch.setattr(common.console, "_width", 60)
    narrow = cli("results", "--format", "table")
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 60


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--batch", "evening"], [("art-2", "headline"), ("art-2", "summary")]),
        (
            ["--tasks", "summary"],
            [("art-1", "summary"), ("art-3", "summary"), ("art-2", "summary")],
        ),
        (
            ["-t", "summary,headline", "--article", "art-2"],
            [("art-2", "headline"), ("art-2", "summary")],
        ),
        (
            ["-t", "headline", "--tasks", "summary", "--article", "art-1", "--article", "art-3"],
            [
                ("art-1", "headline"),
                ("art-1", "summary"),
                ("art-3", "headline"),
                ("art-3", "summary"),
            ],
        ),
        (["--state", "failed"], [("art-3", "summary")]),
        (
            ["--state", "incomplete", "--state", "failed"],
            [("art-3", "summary"), ("art-2", "headline")],
        ),
        (["--run", "2"], [("art-1", "headline"), ("art-1", "summary")]),
        (["--run", "last", "--state", "failed"], [("art-1", "headline")]),
        (["--since", "2026-12-01"], [("art-1", "headline"), ("art-1", "summary")]),
        (["--until", "2026-11-30"], None),  # every article, as of the first day
        (
            ["--since", "2026-11-30T08:03", "--until", "2026-11-30T08:04:30"],
            [("art-2", "headline"), ("art-2", "summary")],
        ),
        (["--limit", "2"], [("art-1", "headline"), ("art-1", "summary")]),
    ],
)
def test_filters(cli: Invoke, seeded: Seeded, args: list[str], expected: object) -> None:
    """Each filter selects what its help says (runs are 1 and 2 on a fresh database)."""
    run_args = [a.replace("2", str(seeded.runs[1])) if a == "2" else a for a in args]
    rows = _jsonl(cli("results", "--json", *run_args))
    if expected is None:  # --until the first day: run 1's texts only, art-1 as first written
        assert len(rows) == 6 and {r["run_id"] for r in rows} == {seeded.runs[0]}
        art1 = next(r for r in rows if r["source_id"] == "art-1" and r["task"] == "summary")
        assert art1["text"] == "summary text 1 at 1"
        return
    assert _keys(rows) == expected


def test_failed_lists_failed_jobs_with_their_error(
    cli: Invoke, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--failed: jobs in state failed with article, task, attempts and last error."""
    rows = _jsonl(cli("results", "--failed", "--json"))
    assert rows == [
        {
            "source_id": "art-3",
            "title": "Ärger über Preise",
            "url": "https://example.org/3",
            "task": "summary",
            "attempts": 3,
            "last_error": "RetryableAPIError: HTTP 500 boom",
            "batch_label": None,
            "updated_at": rows[0]["updated_at"],
            "job_id": seeded.jobs["art-3", "summary"],
            "reason": None,
        }
    ]
    monkeypatch.setattr(common.console, "_width", 120)
    table = cli("results", "--failed", "--format", "table")
    assert "art-3" in table.stdout and "HTTP 500 boom" in table.stdout
    assert "1 failed job(s)" in table.stdout
    as_csv = list(csv.DictReader(io.StringIO(cli("results", "--failed", "--format", "csv").stdout)))
    assert as_csv[0]["attempts"] == "3"
    none = cli("results", "--failed", "--batch", "evening", "--format", "table")
    assert none.exit_code == 0 and none.stdout == "no failed jobs match (batch=evening)\n"


def test_show_prints_one_articles_full_texts(cli: Invoke, seeded: Seeded) -> None:
    """`results show ID`: the title, each task's full text and numbers; --all the history."""
    result = cli("results", "show", "art-3")
    assert result.exit_code == 0, result.output
    assert "Ärger über Preise" in result.stdout and LONG.strip() in result.stdout
    assert "(no text: HTTP 500 boom)" in result.stdout
    assert "1,000 in (512 cached, 3 cache writes), 40 out (7 reasoning)" in result.stdout
    assert "$0.000123 ·" in result.stdout
    history = cli("results", "show", "art-1", "--all", "--json")
    assert [r["text"] for r in json.loads(history.stdout) if r["task"] == "summary"] == [
        "summary text 1 at 1",
        "summary text 1 at 1441",
    ]
    by_job = cli("results", "show", "--job", str(seeded.jobs["art-2", "summary"]))
    assert by_job.exit_code == 0 and TRICKY in by_job.stdout and "art-2" in by_job.stdout
    missing = cli("results", "show", "nope")
    assert missing.exit_code == 2 and "no article with external id 'nope'" in missing.stderr


def test_empty_result_is_one_line_and_exit_0(cli: Invoke, seeded: Seeded) -> None:
    """Nothing matches: one line naming the filters; exports stay empty on stdout. A batch
    label no job ever carried is a mistake, not an empty result: exit 2 naming the known."""
    result = cli("results", "-b", "evening", "--article", "nope", "--format", "table")
    assert result.exit_code == 0
    assert result.stdout == "no generations match (batch=evening, article=nope)\n"
    as_csv = cli("results", "--article", "nope", "--format", "csv")
    assert as_csv.exit_code == 0 and as_csv.stdout == ""
    assert as_csv.stderr == "no generations match (article=nope)\n"
    typo = cli("results", "-b", "evenin", "--format", "table")
    assert typo.exit_code == 2 and typo.stdout == ""
    assert "no job has ever carried the batch label 'evenin'" in typo.stderr
    assert "the known labels are evening" in typo.stderr


def test_unknown_task_and_state_are_exit_2_naming_the_known(cli: Invoke, seeded: Seeded) -> None:
    """A task not in profiles.toml, or a bad state, is one line on stderr and exit 2."""
    result = cli("results", "--task", "headlin")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "unknown task(s) headlin" in result.stderr
    assert "headline" in result.stderr and "summary" in result.stderr
    state = cli("results", "--state", "succeeded")
    assert state.exit_code == 2 and "completed, incomplete, failed" in state.stderr
    day = cli("results", "--since", "last tuesday")
    assert day.exit_code == 2 and "not a date or time" in day.stderr


def test_help_has_an_example(cli: Invoke) -> None:
    """`results --help` and `results show --help` end with an example."""
    for args in (
        ["results", "--help"],
        ["results", "show", "--help"],
        ["jobs", "regenerate", "--help"],
    ):
        result = cli(*args)
        assert result.exit_code == 0 and "Example:" in result.stdout, args


def test_view_has_the_latest_successful_generation(engine: Engine, seeded: Seeded) -> None:
    """v_latest_generations: one row per job with a generation, as `contentgen results` has it."""
    with Session(engine) as session:
        rows = session.execute(
            text(
                "SELECT source_id, task, status, output_text, cost_usd_e10, run_id, batch_label,"
                " input_tokens, cached_tokens, cache_write_tokens, output_tokens,"
                " reasoning_tokens, model, title, url, created_at, job_state"
                " FROM v_latest_generations ORDER BY source_id, task"
            )
        ).all()
    got = {(r.source_id, r.task): r for r in rows}
    assert sorted(got) == [
        ("art-1", "headline"),
        ("art-1", "summary"),
        ("art-2", "headline"),
        ("art-2", "summary"),
        ("art-3", "headline"),
        ("art-3", "summary"),
    ]
    assert got["art-1", "summary"].output_text == "summary text 1 at 1441"
    assert got["art-1", "summary"].run_id == seeded.runs[1]
    assert got["art-1", "headline"].status == "completed"
    assert got["art-2", "summary"].output_text == TRICKY
    assert got["art-2", "summary"].batch_label == "evening"
    assert got["art-3", "summary"].status == "failed"
    assert got["art-3", "headline"].output_text == LONG
    assert int(got["art-2", "headline"].cost_usd_e10) == 5_000_000_000
    first = got["art-1", "headline"]
    assert (first.input_tokens, first.cached_tokens, first.cache_write_tokens) == (1000, 512, 3)
    assert (first.output_tokens, first.reasoning_tokens) == (40, 7)
    assert first.model == "gpt-4.1-mini-2025-04-14" and first.url == "https://example.org/1"


# -- end to end: the installed script, from an empty directory ------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTGEN_")}
    env["COLUMNS"] = "120"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def test_demo_then_results_csv_has_every_latest_text(tmp_path: Path) -> None:
    """`contentgen demo` then `contentgen results --format csv` in an empty directory: every
    headline and summary the demo generated, in full, as the database has them."""
    env = _env(tmp_path)
    demo = subprocess.run(
        [str(CONTENTGEN), "demo", "--quiet", "--tasks", "summary,headline"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    result = subprocess.run(
        [str(CONTENTGEN), "results", "--format", "csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"reading the demo database contentgen-demo.db" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode("utf-8"))))

    engine = make_engine(f"sqlite:///{tmp_path / 'contentgen-demo.db'}")
    try:
        with Session(engine) as session:
            stored = session.execute(
                select(
                    Article.source_id, Generation.task, Generation.output_text, Generation.cost_usd
                )
                .join(Job, Job.id == Generation.job_id)
                .join(Article, Article.id == Job.article_id)
                .where(Generation.status == "completed")
                .order_by(Generation.created_at, Generation.id)
            ).all()
            n_jobs = session.scalar(select(Job.id).order_by(Job.id.desc()).limit(1))
    finally:
        engine.dispose()
    latest = {(s, t): (text_, cost) for s, t, text_, cost in stored}  # the newest wins
    assert {r["task"] for r in rows} == {"summary", "headline"}
    assert len(rows) == n_jobs == len(latest)
    for row in rows:
        text_, cost = latest[row["source_id"], row["task"]]
        assert row["status"] == "completed"
        assert row["text"] == text_ and Decimal(row["cost_usd"]) == cost
