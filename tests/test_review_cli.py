"""The editorial commands as an editor uses them: review list/show/approve/edit/reject/report,
results --approved/--stale, report --by version, profiles versions, jobs regenerate --stale,
and the grader's line in the dry run (SQLite, the real simulator, the console script's app)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from pipeline.cli.main import app
from pipeline.db import make_engine
from pipeline.settings import get_settings
from tests.engine_support import (
    CONFIG_DIR,
    engine_settings,
    job_rows,
    run_engine,
    sample_articles,
    seed,
    simulator,
)

Invoke = Callable[..., Result]
A1, A2, A3 = (a.source_id for a in sample_articles()[:3])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """An editable copy of the shipped config (what `contentgen init` writes)."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


@pytest.fixture
def generated(sqlite_url: str, config: Path, tmp_path: Path) -> str:
    """Three articles' summaries and headlines, generated through the simulator."""
    engine = make_engine(sqlite_url)
    try:
        seed(engine, ["summary", "headline"], n=3)
        with simulator(obey_rate=1.0, hallucination_rate=0.0) as sim:
            run_engine(engine_settings(sqlite_url, sim, tmp_path, config_dir=config))
    finally:
        engine.dispose()
    return sqlite_url


@pytest.fixture
def cli(generated: str, config: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """``contentgen`` on the generated database and the config copy."""
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", generated)
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(config))
    monkeypatch.delenv("CONTENTGEN_EDITOR", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def test_an_editor_signs_off_from_the_command_line(
    cli: Invoke, generated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Approve, edit (in $EDITOR and with --text) and reject are recorded with the editor,
    show in review list/show and results, and --approved exports only publishable texts with
    their provenance and IPTC digital source type."""
    waiting = json.loads(cli("review", "list", "--json").stdout)
    assert len(waiting) == 6 and {w["review_state"] for w in waiting} <= {"pending", "flagged"}

    assert "approved by ana" in cli("review", "approve", f"{A1}:summary", "--editor", "ana").stdout
    editor = tmp_path / "fake-editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'Varga reaches the Paris semi-final.\\n' > \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.setenv("CONTENTGEN_EDITOR", "bo")
    get_settings.cache_clear()
    assert "edited by bo" in cli("review", "edit", f"{A1}:headline").stdout
    assert cli("review", "edit", f"{A2}:headline", "--text", "A shorter one").exit_code == 0
    rejected = cli(
        "review", "reject", f"{A3}:summary", "--note", "Misses the point", "--regenerate"
    )
    assert "re-queued" in rejected.stdout
    assert {j.state for j in job_rows(make_engine(generated)) if j.id == 5} == {"queued"}

    no_note = cli("review", "reject", f"{A3}:headline")
    assert no_note.exit_code == 2 and "--note" in no_note.stderr
    missing = cli("review", "approve", "999999")
    assert missing.exit_code == 2 and "no output with generation id 999999" in missing.stderr

    shown = cli("review", "show", f"{A1}:headline").stdout
    assert "Editor's text:" in shown and "Model's text:" in shown and "edited by bo" in shown
    assert "headline@" in shown and "max_words" in shown

    exported = cli("results", "--approved", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["source_id"], r["task"], r["review_state"]) for r in rows] == [
        (A1, "headline", "edited"),
        (A1, "summary", "approved"),
        (A2, "headline", "edited"),
    ]
    by_task = {(r["source_id"], r["task"]): r for r in rows}
    edited = by_task[(A1, "headline")]
    assert edited["final_text"] == "Varga reaches the Paris semi-final."
    assert edited["text"] != edited["final_text"]
    assert edited["editor"] == "bo" and edited["decided_at"]
    assert edited["digital_source_type"].endswith("compositeWithTrainedAlgorithmicMedia")
    assert by_task[(A1, "summary")]["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert all(r["version"].startswith(r["task"] + "@") and r["model"] for r in rows)

    report = json.loads(cli("review", "report", "--json").stdout)
    headline = next(v for v in report["versions"] if v["task"] == "headline")
    assert (headline["edited"], headline["edit_rate"]) == (2, 1.0)
    assert {c["check"] for c in report["checks"]} >= {"max_words", "banned", "facts"}
    assert "Review by task and version" in cli("review", "report").stdout


def test_versions_are_listed_compared_and_a_changed_prompt_makes_summaries_stale(
    cli: Invoke, config: Path
) -> None:
    """profiles versions/version show what made the outputs; after prompts/summary.md changes,
    results --stale and jobs regenerate --stale take exactly the summaries."""
    by_version = json.loads(cli("report", "--by", "version", "--json").stdout)
    labels = {row["version"] for row in by_version["rows"]}
    assert {label.split("@")[0] for label in labels} == {"summary", "headline"}
    assert all(row["mean_output_chars"] > 0 for row in by_version["rows"])

    summary_md = config / "prompts" / "summary.md"
    summary_md.write_text(summary_md.read_text() + "\nNever use the word 'clash'.\n")
    versions = json.loads(cli("profiles", "versions", "--json").stdout)
    old = next(v for v in versions if v["task"] == "summary" and v["generations"] == 3)
    assert not old["current"]
    definition = json.loads(cli("profiles", "version", old["version"]).stdout)
    assert "clash" not in definition["instructions"] and definition["task"] == "summary"

    stale = [json.loads(line) for line in cli("results", "--stale", "--json").stdout.splitlines()]
    assert sorted((s["source_id"], s["task"]) for s in stale) == [
        (a, "summary") for a in (A1, A2, A3)
    ]
    dry = json.loads(cli("jobs", "regenerate", "--stale", "--dry-run", "--json").stdout)
    assert dry["regenerated"] == 3
    assert json.loads(cli("jobs", "regenerate", "--stale", "--json").stdout)["queued"] == 3
    queued = json.loads(cli("jobs", "--json").stdout)["counts"]
    assert {(c["task"], c["state"], c["count"]) for c in queued if c["state"] == "queued"} == {
        ("summary", "queued", 3)
    }


def test_the_dry_run_prices_the_grader_that_is_off(cli: Invoke, generated: str) -> None:
    """The shipped grader is off; the dry run still says what it would cost after the
    queued summaries, with the article read from the cache."""
    engine = make_engine(generated)
    try:
        seed(engine, ["summary"], n=2, start=10)
    finally:
        engine.dispose()
    report = json.loads(cli("run", "--dry-run", "--json").stdout)
    [grader] = report["followers"]
    assert (grader["task"], grader["enabled"], grader["requests"]) == ("grade_summary", False, 2)
    assert grader["expected_cached_tokens"] >= 2 * 1024
    assert float(grader["forecast_cost_usd"]) > 0
    assert "enqueue --tasks summary,grade_summary" in cli("run", "--dry-run").stdout
