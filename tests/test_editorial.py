"""The editorial layer end to end: provenance, checks and their retry, staleness, corrections,
review decisions and the grader, through the real SDK and the simulator, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import shutil
import socket
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from pipeline.db import (
    CURRENT_OUTPUTS,
    OUTPUTS,
    ProfileVersion,
    RegenerateFilter,
    queue,
    regenerate,
    session_factory,
)
from pipeline.errors import InputError
from pipeline.prompts import load_profiles
from pipeline.reports import PUBLISHABLE, ResultFilter
from pipeline.reports import generations as result_rows
from pipeline.review import decide, find, review_report
from pipeline.run.journal import Journal, journal_dir
from pipeline.run.recovery import drain_journals
from tests.engine_support import (
    CONFIG_DIR,
    RequestLog,
    billed_usd,
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    run_engine,
    sample_articles,
    seed,
    simulator,
)
from tests.test_journal import dead_pid

TASKS = ("summary", "headline")


def config_copy(tmp_path: Path, **edits: tuple[str, str]) -> Path:
    """A copy of config/ with ``file=(old, new)`` replacements (``__`` for ``/`` in names)."""
    target = tmp_path / "config"
    if not target.exists():
        shutil.copytree(CONFIG_DIR, target)
    for name, (old, new) in edits.items():
        path = target / name.replace("__", "/").replace("_md", ".md").replace("_toml", ".toml")
        body = path.read_text(encoding="utf-8")
        assert old in body, (path, old)
        path.write_text(body.replace(old, new, 1), encoding="utf-8")
    return target


def outputs(engine: Engine, view: Any = CURRENT_OUTPUTS) -> list[dict[str, Any]]:
    """Rows of a view as dicts, by job then generation."""
    with Session(engine) as session:
        rows = session.execute(select(view).order_by(view.c.job_id, view.c.generation_id))
        return [dict(row._mapping) for row in rows]


def test_every_output_names_its_version_and_its_check_results(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Each generation records its profile version (stored with its texts), the article
    content it was made from and its checks with reasons; the bill still matches."""
    seed(engine, TASKS, n=3)
    with simulator() as sim:
        summary = run_engine(engine_settings(database_url, sim, tmp_path))
        bill = billed_usd(sim)
    profiles = load_profiles(CONFIG_DIR)
    gens = generations(engine)
    assert summary.totals.cost_usd == bill
    assert {g.job_id for g in gens if g.status == "completed"} == {j.id for j in job_rows(engine)}
    for g in gens:
        assert g.profile_version == profiles[g.task].version
        assert g.content_hash is not None
        assert g.checks and all({"check", "passed", "reason"} <= set(c) for c in g.checks)
        assert g.flagged == (not all(c["passed"] for c in g.checks))
    with Session(engine) as session:
        stored = {v.version: v for v in session.scalars(select(ProfileVersion))}
    assert {p.version for p in profiles.values()} <= set(stored)
    summary_version = stored[profiles["summary"].version]
    assert summary_version.definition["instructions"] == profiles["summary"].instructions
    rows = outputs(engine)
    assert len(rows) == 6 and {r["version"] for r in rows} == {
        profiles[t].version_label for t in TASKS
    }
    assert {r["review_state"] for r in rows} <= {"pending", "flagged"}


def test_a_headline_over_its_bound_is_retried_once_then_flagged(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """With a model that never keeps the limit, each headline is followed up once after its
    cached prompt, both answers are recorded and billed once, and the output is flagged."""
    jobs = seed(engine, ["headline"], n=3)
    log = RequestLog()
    with simulator(obey_rate=0.0) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        summary = run_engine(settings, sdk=log.sdk(settings))
        requests = ledger_requests(sim)
        bill = billed_usd(sim)
    assert requests["completed"] == 2 * len(jobs)
    assert summary.totals.cost_usd == bill
    gens = generations(engine)
    assert Counter((g.job_id, g.status) for g in gens) == Counter(
        {(job, status): 1 for job in jobs for status in ("retried", "completed")}
    )
    for g in gens:
        assert g.flagged and "max_words" in [c["check"] for c in g.checks if not c["passed"]]
    retries = [b for b in log.bodies if b["input"][-2]["role"] == "assistant"]
    assert len(retries) == len(jobs)
    for body in retries:
        first = next(b for b in log.bodies if b["input"] == body["input"][:-2])
        assert "at most 12 words" in body["input"][-1]["content"]
        assert body.get("prompt_cache_key") == first.get("prompt_cache_key")
    retried_answers = [g for g in gens if g.status == "completed"]
    assert all(g.cached_tokens >= 1024 for g in retried_answers)  # the prefix, from cache
    assert [r["review_state"] for r in outputs(engine)] == ["flagged"] * len(jobs)
    assert [s for s in (r["review_state"] for r in outputs(engine, OUTPUTS))].count("retried") == 3


def test_a_retry_that_passes_leaves_a_pending_output(sqlite_url: str, tmp_path: Path) -> None:
    """A headline that fails a bound, then keeps it when told, is pending review, not flagged."""
    config = config_copy(tmp_path, profiles_toml=("max_words = 12", "max_words = 4"))
    from pipeline.db import make_engine

    engine = make_engine(sqlite_url)
    try:
        jobs = seed(engine, ["headline"], n=2)
        with simulator(obey_rate=1.0) as sim:
            run_engine(engine_settings(sqlite_url, sim, tmp_path, config_dir=config))
        rows = outputs(engine)
        assert len(rows) == len(jobs)
        assert {r["review_state"] for r in rows} == {"pending"}, [
            [c for c in r["checks"] if not c["passed"]] for r in rows
        ]
        assert Counter(g.status for g in generations(engine)) == {"retried": 2, "completed": 2}
    finally:
        engine.dispose()


def test_a_changed_summary_prompt_makes_exactly_the_summaries_stale(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """After prompts/summary.md changes, the summaries (and nothing else) are stale, and
    regenerating the stale jobs re-queues only them; afterwards nothing is stale."""
    config = config_copy(tmp_path)
    seed(engine, TASKS, n=3)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        run_engine(settings)
        config_copy(tmp_path, prompts__summary_md=("Write two or three", "Write two"))
        current = tuple((t, p.version) for t, p in load_profiles(config).items())
        sessions = session_factory(engine)
        with sessions() as session:
            stale = result_rows(session, ResultFilter(stale=current))
            assert sorted({r.task for r in stale}) == ["summary"] and len(stale) == 3
            result = regenerate(session, RegenerateFilter(stale=current))
        assert result.queued == 3
        assert Counter(j.task for j in job_rows(engine) if j.state == "queued") == {"summary": 3}
        run_engine(settings)
    with sessions() as session:
        assert result_rows(session, ResultFilter(stale=current)) == []
    new_version = dict(current)["summary"]
    summaries = [r for r in outputs(engine) if r["task"] == "summary"]
    assert {r["profile_version"] for r in summaries} == {new_version}


def test_a_corrected_article_supersedes_its_outputs_and_regenerates_them(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Re-enqueueing a changed article (for one task) re-queues all its jobs; its old outputs
    are kept but superseded, and the next run makes current ones from the new text."""
    articles = list(sample_articles()[:2])
    seed(engine, TASKS, articles=articles)
    corrected = articles[0].model_copy(update={"body": articles[0].body + "\n\nCorrection."})
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        run_engine(settings)
        with session_factory(engine)() as session:
            result = queue.enqueue(session, [corrected, articles[1]], ["summary"])
        assert (result.requeued, result.unchanged) == (2, 1)
        before = outputs(engine)
        assert {r["source_id"] for r in before} == {articles[1].source_id}
        run_engine(settings)
    after = outputs(engine)
    assert len(after) == 4 and {r["review_state"] for r in after} <= {"pending", "flagged"}
    history = outputs(engine, OUTPUTS)
    superseded = [r for r in history if r["review_state"] == "superseded"]
    assert {(r["source_id"], r["task"]) for r in superseded} == {
        (articles[0].source_id, t) for t in TASKS
    }
    with Session(engine) as session:
        latest = session.execute(text("SELECT generation_id FROM v_latest_generations")).all()
    assert {row[0] for row in latest} == {r["generation_id"] for r in after}


def test_decisions_are_appended_and_shown_in_the_views(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Approve, edit and reject are recorded with who and when; results and the views show
    them; the editor's text is kept beside the model's; history cannot be rewritten."""
    a1, a2, a3 = (a.source_id for a in sample_articles()[:3])
    seed(engine, ["summary"], n=3)
    with simulator() as sim:
        run_engine(engine_settings(database_url, sim, tmp_path))
    sessions = session_factory(engine)
    with sessions() as session:
        decide(session, find(session, f"{a1}:summary"), "approved", editor="ana")
        edited = find(session, f"{a2}:summary")
        decide(session, edited, "edited", editor="bo", edited_text="An editor's summary.")
        decide(session, find(session, f"{a3}:summary"), "rejected", editor="cy", note="Wrong")
        session.commit()
        with pytest.raises(InputError, match="needs a note"):
            decide(session, find(session, f"{a3}:summary"), "rejected", editor="cy")
        with pytest.raises(InputError, match="unchanged"):
            again = find(session, f"{a2}:summary")
            decide(session, again, "edited", editor="bo", edited_text="An editor's summary.")
        publishable = result_rows(session, ResultFilter(review_states=PUBLISHABLE))
        report = review_report(session)
    states = {r["source_id"]: r for r in outputs(engine)}
    assert (states[a1]["review_state"], states[a1]["editor"]) == ("approved", "ana")
    assert states[a2]["final_text"] == "An editor's summary."
    assert states[a2]["output_text"] != "An editor's summary."
    assert states[a2]["digital_source_type"].endswith("/compositeWithTrainedAlgorithmicMedia")
    assert states[a1]["digital_source_type"].endswith("/trainedAlgorithmicMedia")
    assert (states[a3]["review_state"], states[a3]["note"]) == ("rejected", "Wrong")
    assert [(r.source_id, r.review_state) for r in publishable] == [
        (a1, "approved"),
        (a2, "edited"),
    ]
    [version] = report.versions
    assert (version.approved, version.edited, version.rejected) == (1, 1, 1)
    assert version.approval_rate == pytest.approx(2 / 3) and version.edit_rate == 0.5
    assert version.cost_per_approved_usd == version.cost_usd / 2
    for statement in ("UPDATE reviews SET editor = 'x'", "DELETE FROM reviews"):
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))


def test_a_rejection_regenerates_with_the_note_after_the_cached_prompt(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """`reject --regenerate`: the job is re-queued in the same transaction, and its next
    request is the original prompt (read from cache), the rejected answer and the note."""
    [article] = sample_articles()[:1]
    seed(engine, ["headline"], articles=[article])
    log = RequestLog()
    with simulator(obey_rate=1.0) as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        run_engine(settings, sdk=log.sdk(settings))
        sessions = session_factory(engine)
        with sessions() as session:
            rejected = find(session, f"{article.source_id}:headline")
            decided = decide(
                session,
                rejected,
                "rejected",
                editor="cy",
                note="Name the player in the headline.",
                regenerate_job=True,
                follows={},
            )
            session.commit()
        assert decided.requeued
        run_engine(settings, sdk=log.sdk(settings))
    first, again = log.bodies[0], log.bodies[-1]
    assert again["input"][: len(first["input"])] == first["input"]
    assert again["input"][-2] == {"role": "assistant", "content": rejected.output_text}
    assert "Name the player in the headline." in again["input"][-1]["content"]
    [current] = outputs(engine)
    assert current["generation_id"] != rejected.generation_id
    assert current["review_state"] == "pending"
    newest = max(generations(engine), key=lambda g: g.id)
    assert newest.cached_tokens >= 1024


def test_the_grader_reads_the_summary_from_the_cache_and_flags_it(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A grader, turned on, follows the summary as the next turn (its prefix from the prompt
    cache); a summary its newest grade fails is flagged, others are not."""
    articles = list(sample_articles()[:4])
    with session_factory(engine)() as session:
        queue.enqueue(
            session,
            articles,
            ["summary", "grade_summary"],
            start_states={"grade_summary": "waiting"},
        )
    with simulator() as sim:
        run_engine(engine_settings(database_url, sim, tmp_path))
    gens = generations(engine)
    grades = {g.graded_generation_id: g for g in gens if g.task == "grade_summary"}
    summaries = [g for g in gens if g.task == "summary" and g.status == "completed"]
    assert set(grades) == {g.id for g in summaries}
    assert all(g.cached_tokens >= 1024 for g in grades.values())
    assert all(
        [c["check"] for c in g.checks] == ["accurate", "attributed", "neutral"]
        for g in grades.values()
    )
    states = {r["generation_id"]: r["review_state"] for r in outputs(engine)}
    for s in summaries:
        expected = "flagged" if grades[s.id].flagged or s.flagged else "pending"
        assert states[s.id] == expected
    assert {states[g.id] for g in grades.values()} == {"auto"}


def test_a_crash_during_a_retry_loses_nothing_and_bills_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """The journal of a run killed after a retry: both answers recorded once, the retried
    one as such; draining again adds nothing."""
    [job_id] = seed(engine, ["headline"], n=1)
    common = {
        "job_id": job_id,
        "task": "headline",
        "request_model": "gpt-4.1-mini",
        "model": "gpt-4.1-mini",
        "input_tokens": 2100,
        "output_tokens": 20,
        "attempts": 1,
        "list_cost_usd": "0.001",
    }
    first = {**common, "status": "retried", "response_id": "resp_first", "cost_usd": "0.0003"}
    second = {**common, "status": "completed", "response_id": "resp_second", "cost_usd": "0.0002"}
    folder = journal_dir(None, database_url)
    journal = Journal(folder, f"{socket.gethostname()}:{dead_pid()}:run7")
    # What the run wrote: the first answer before the retry, then both, then done(first).
    paid_first = journal.write({"generation": {**first, "status": "completed"}, "succeeded": True})
    journal.write({"generation": second, "succeeded": True, "earlier": [first]})
    journal.close()  # killed before done(first): both entries pending
    sessions = session_factory(engine)
    assert drain_journals(sessions, folder).recorded >= 2
    assert drain_journals(sessions, folder).recorded == 0
    gens = generations(engine)
    assert sorted(g.response_id or "" for g in gens) == ["resp_first", "resp_second"]
    assert sum((g.cost_usd for g in gens), Decimal(0)) == Decimal("0.0005")
    assert [j.state for j in job_rows(engine)] == ["succeeded"]
    [current] = outputs(engine)
    assert current["response_id"] == "resp_second"
    assert paid_first  # the first entry existed before the retry was sent
    json.dumps([r for r in outputs(engine, OUTPUTS)], default=str)  # every row reads back
