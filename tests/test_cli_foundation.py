"""The foundation commands through the real `contentgen` app: db upgrade, enqueue, jobs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Job, Price
from pipeline.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "samples"
Run = Callable[..., Result]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Run]]:
    """``cli(url)`` gives a runner of `contentgen` against the database at ``url``."""

    def bind(url: str) -> Run:
        monkeypatch.setenv("CONTENTGEN_DATABASE_URL", url)
        monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(REPO_ROOT / "config"))
        get_settings.cache_clear()

        def run(*args: str) -> Result:
            return CliRunner().invoke(app, list(args))

        return run

    yield bind
    get_settings.cache_clear()


def count(url: str, query: object) -> int:
    """One number from the database at ``url``."""
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session:
            return int(session.execute(query).scalar_one())  # type: ignore[call-overload]
    finally:
        engine.dispose()


def test_every_command_has_help_with_an_example(cli: Callable[[str], Run], tmp_path: Path) -> None:
    """`--help` of each foundation command ends with an example."""
    run = cli(f"sqlite:///{tmp_path / 'x.db'}")
    for command in (
        ["db", "upgrade"],
        ["db", "current"],
        ["enqueue"],
        ["jobs"],
        ["jobs", "requeue"],
    ):
        result = run(*command, "--help")
        assert result.exit_code == 0, result.output
        assert "Example:" in result.output, command
        assert "--json" in result.output


def upgrade_blank(run: Run, url: str) -> None:
    """`db upgrade` on a blank database migrates it and loads the prices, then is a no-op."""
    first = run("db", "upgrade")
    assert first.exit_code == 0, first.output
    assert "upgraded from a blank database" in first.stdout
    added = count(url, select(func.count()).select_from(Price))
    assert added > 0
    again = run("db", "upgrade", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["prices_added"] == 0 and report["revision"] == report["revision_before"]
    assert json.loads(run("db", "current", "--json").stdout)["up_to_date"] is True


def test_db_upgrade_on_blank_sqlite(cli: Callable[[str], Run], tmp_path: Path) -> None:
    """A new SQLite file is created, migrated and priced."""
    url = f"sqlite:///{tmp_path / 'new.db'}"
    upgrade_blank(cli(url), url)


@pytest.mark.postgres
def test_db_upgrade_on_blank_postgres(cli: Callable[[str], Run], blank_postgres_url: str) -> None:
    """A new PostgreSQL database is migrated and priced."""
    upgrade_blank(cli(blank_postgres_url), blank_postgres_url)


def test_unmigrated_database_is_one_line(cli: Callable[[str], Run], tmp_path: Path) -> None:
    """Commands on a blank database say to run `contentgen db upgrade`, without a traceback."""
    run = cli(f"sqlite:///{tmp_path / 'blank.db'}")
    for args in (["jobs"], ["enqueue", str(SAMPLES / "articles.jsonl"), "-t", "summary"]):
        result = run(*args)
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and "run `contentgen db upgrade`" in result.stderr
        assert "Traceback" not in result.output
    current = run("db", "current")
    assert current.exit_code == 0 and "run `contentgen db upgrade`" in current.stdout


def test_unreachable_database_is_one_line(cli: Callable[[str], Run], tmp_path: Path) -> None:
    """A database that cannot be opened is one line on stderr, exit 2."""
    run = cli(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    for args in (["db", "upgrade"], ["db", "current"], ["jobs"]):
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_enqueue_the_sample_then_again(cli: Callable[[str], Run], database_url: str) -> None:
    """The sample file goes in whole; a second time nothing changes."""
    run = cli(database_url)
    sample = str(SAMPLES / "articles.jsonl")
    result = run("enqueue", sample, "--tasks", "summary,headline", "--batch", "demo")
    assert result.exit_code == 0, result.output
    assert "72 accepted, 0 unchanged, 0 re-queued; 0 rows rejected" in result.stdout
    again = run("enqueue", sample, "-t", "summary,headline", "--json")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert (report["accepted"], report["unchanged"], report["rejected"]) == (0, 72, 0)
    counts = json.loads(run("jobs", "--json").stdout)
    assert counts["by_state"]["queued"] == 72 and counts["total"] == 72
    assert {(c["task"], c["batch_label"]) for c in counts["counts"]} == {
        ("summary", "demo"),
        ("headline", "demo"),
    }
    table = run("jobs")
    assert table.exit_code == 0 and "headline" in table.stdout and "demo" in table.stdout


def test_bad_rows_are_reported_and_the_rest_kept(
    cli: Callable[[str], Run], database_url: str
) -> None:
    """Each bad row is `FILE:LINE: reason` on stderr, valid rows are committed, exit code 1."""
    run = cli(database_url)
    path = SAMPLES / "bad_articles.jsonl"
    result = run("enqueue", str(path), "--tasks", "summary")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{path}:")]
    assert [int(line.split(":")[1]) for line in lines] == list(range(2, 12))
    assert "2 accepted, 0 unchanged, 0 re-queued; 10 rows rejected" in result.stdout
    assert count(database_url, select(func.count()).select_from(Job)) == 2
    report = json.loads(run("enqueue", str(path), "-t", "summary", "--json").stdout)
    assert (report["unchanged"], report["rejected"]) == (2, 10)
    assert report["rejections"][0] == {"line": 2, "reason": report["rejections"][0]["reason"]}


def test_changed_article_is_requeued_via_cli(
    cli: Callable[[str], Run], sqlite_url: str, write_file: Callable[[str, bytes | str], Path]
) -> None:
    """Re-sending an article with a new body re-queues its jobs and says so."""
    run = cli(sqlite_url)
    first = write_file("v1.csv", "id,title,body\n1,T,old body\n2,T,same\n")
    second = write_file("v2.csv", "id,title,body\n1,T,new body\n2,T,same\n")
    assert run("enqueue", str(first), "-t", "summary").exit_code == 0
    result = run("enqueue", str(second), "-t", "summary", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert (report["requeued"], report["unchanged"], report["articles_updated"]) == (1, 1, 1)


def test_input_problems_are_one_line(
    cli: Callable[[str], Run], sqlite_url: str, write_file: Callable[[str, bytes | str], Path]
) -> None:
    """Missing file, unknown task, bad CSV header and bad --format: one line each, exit 2."""
    run = cli(sqlite_url)
    header = write_file("h.csv", "id,name\n1,x\n")
    cases = {
        ("enqueue", "missing.jsonl", "-t", "summary"): "missing.jsonl: file not found",
        ("enqueue", str(SAMPLES / "articles.jsonl"), "-t", "summary,nope"): (
            "unknown task(s) nope:"
        ),
        ("enqueue", str(header), "-t", "summary"): "CSV header must name",
        ("enqueue", str(header), "-t", "summary", "--format", "xml"): "--format must be",
        ("jobs", "requeue"): "--failed and/or --expired",
        ("enqueue", str(header), "-t", "summary", "--batch", "b" * 129): "--batch must have",
    }
    for args, message in cases.items():
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    unknown = run("enqueue", str(SAMPLES / "articles.jsonl"), "-t", "nope")
    assert "headline" in unknown.stderr and "summary" in unknown.stderr  # lists the known tasks


def test_requeue_failed(cli: Callable[[str], Run], database_url: str) -> None:
    """`jobs requeue --failed` puts failed jobs back, narrowed by task."""
    run = cli(database_url)
    assert run("enqueue", str(SAMPLES / "articles.jsonl"), "-t", "summary,headline").exit_code == 0
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            session.execute(Job.__table__.update().values(state="failed", last_error="boom"))
            session.commit()
    finally:
        engine.dispose()
    result = run("jobs", "requeue", "--failed", "--tasks", "headline", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"failed_requeued": 36, "expired_requeued": 0}
    plain = run("jobs", "requeue", "--failed", "--expired")
    assert "re-queued 36 failed job(s)" in plain.stdout
    counts = json.loads(run("jobs", "--json").stdout)["by_state"]
    assert (counts["queued"], counts["failed"]) == (72, 0)
