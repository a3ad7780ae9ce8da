"""Requests that can never fit fail their job at once; the rest of the queue is not held up.

Issue 23: ``max_output_tokens = 10000000`` was accepted and held the run 300 s (the limiter took
the request and every later one waited behind its debt), and one article with a
1,000,000-character title made 20 other jobs take 214 s instead of 0.5 s. Now a profile over
its model's output limit is a config error naming it, a title is trimmed like a body, and a
request larger than the account's tokens per minute fails its job at once with
``failure_reason`` ``too_large``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pipeline.db.models import Job
from pipeline.intake.reader import ArticleIn
from tests.edge_support import cli_env, contentgen, lines
from tests.engine_support import (
    config_with,
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    run_engine,
    sample_articles,
    seed,
    simulator,
)

HUGE_PROFILE = """
[profiles.huge]
model = "gpt-4.1-mini"
instructions = "Write everything you know."
max_output_tokens = 30000
"""


def failure_reasons(engine: Engine) -> dict[int, str | None]:
    """Each job's failure reason."""
    with Session(engine) as session:
        return {row[0]: row[1] for row in session.execute(select(Job.id, Job.failure_reason))}


def test_output_limit_over_the_models_is_a_config_error_naming_the_profile(
    sqlite_url: str, tmp_path: Path
) -> None:
    """max_output_tokens = 10,000,000: `contentgen run` says which profile, the model's limit
    and the file, in one line, exit 2."""
    config = config_with(
        tmp_path,
        '[profiles.greedy]\nmodel = "gpt-4.1-mini"\ninstructions = "x"\n'
        "max_output_tokens = 10000000\n",
    )
    with simulator() as sim:
        settings = engine_settings(sqlite_url, sim, tmp_path, config_dir=config)
        result = contentgen(["run", "-q"], cli_env(settings, tmp_path), tmp_path)
        assert sum(ledger_requests(sim).values()) == 0
    assert result.returncode == 2, result.stdout + result.stderr
    [line] = lines(result.stderr)
    assert "profiles.greedy.max_output_tokens" in line and "10,000,000" in line, line
    assert "32,768" in line and "gpt-4.1-mini" in line, line


@pytest.mark.parametrize("known", [True, False], ids=["tpm-configured", "tpm-from-headers"])
def test_request_over_the_tpm_fails_at_once_and_the_rest_go_on(
    database_url: str, engine: Engine, tmp_path: Path, known: bool
) -> None:
    """With a TPM of 25,000, a profile asking for 30,000 output tokens: its jobs fail at
    once (too_large; refused before sending when the TPM is known, by the server's "Request
    too large" otherwise), the 6 others finish in seconds."""
    config = config_with(tmp_path, HUGE_PROFILE)
    huge = seed(engine, ["huge"], n=2)
    others = seed(engine, ["summary", "headline"], n=3, start=2)
    with simulator(tpm=25_000, rpm=1000) as sim:
        settings = engine_settings(
            database_url, sim, tmp_path, config_dir=config, tpm_limit=25_000 if known else None
        )
        started = time.monotonic()
        summary = run_engine(settings)
        wall_s = time.monotonic() - started
        sent = ledger_requests(sim)

    reasons = failure_reasons(engine)
    assert {j.id: j.state for j in job_rows(engine) if j.id in huge} == dict.fromkeys(
        huge, "failed"
    )
    assert [reasons[i] for i in huge] == ["too_large", "too_large"]
    said = "larger than the account's 25,000 tokens per minute" if known else "Request too large"
    assert all(said in (j.last_error or "") for j in job_rows(engine) if j.id in huge)
    assert {j.state for j in job_rows(engine) if j.id in others} == {"succeeded"}
    assert sent.get("completed", 0) == len(others)
    assert sent.get("429", 0) <= (0 if known else len(huge))
    assert summary.totals.failed == 2
    assert wall_s < 15, wall_s


def test_a_million_character_title_is_trimmed_like_a_body(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """One article's 1,000,000-character title is cut to its budget (and the cut recorded);
    the other jobs are not held up behind it."""
    base = sample_articles()[0]
    long_title = ArticleIn(
        source_id="long-title", title="Council " * 125_000, body=base.body, section=base.section
    )
    [long_job] = seed(engine, ["headline"], articles=[long_title])
    others = seed(engine, ["headline"], n=10, start=1)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        started = time.monotonic()
        run_engine(settings)
        wall_s = time.monotonic() - started

    assert {j.state for j in job_rows(engine)} == {"succeeded"}
    [trimmed] = [g for g in generations(engine) if g.job_id == long_job]
    assert trimmed.trimmed is not None and trimmed.trimmed["title_tokens_removed"] > 100_000
    assert trimmed.input_tokens < 10_000
    assert len(others) == 10 and wall_s < 30, wall_s
