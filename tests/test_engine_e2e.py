"""The engine end to end: queue -> plan -> real SDK over HTTP -> simulator -> recorded results.

Every test runs on SQLite and PostgreSQL (``database_url``) against an in-process simulator
with no latency, a handful of sample articles, and the production client stack (fast backoff
where a test makes the simulator fail). The database and the simulator's ledger are the
witnesses: what was recorded, and what was billed.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from sqlalchemy import Engine

from pipeline.client.retry import RetryPolicy
from pipeline.errors import PricingError
from pipeline.run.dryrun import dry_run
from pipeline.run.runner import RunOptions, run_batch
from pipeline.settings import Settings
from tests.engine_support import (
    API_KEY,
    CONFIG_DIR,
    KEY_POINTS_SCHEMA,
    RequestLog,
    billed_usd,
    completed_per_job,
    config_with,
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    recorded_cost,
    requeue_succeeded,
    run_engine,
    run_row,
    run_rows,
    sample_articles,
    seed,
    simulator,
    states,
    texts_containing,
)


def test_run_completes_every_job_once_and_records_the_bill(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Every job ends with one completed generation, and the recorded cost equals the bill."""
    ids = seed(engine, ["summary", "headline"], n=3)
    with simulator() as sim:
        summary = run_batch(engine_settings(database_url, sim, tmp_path))
        ledger = sim.ledger()

    rows = generations(engine)
    assert sorted(g.job_id for g in rows) == ids
    assert {g.status for g in rows} == {"completed"}
    assert all(job.state == "succeeded" and job.attempts == 1 for job in job_rows(engine))
    for g in rows:
        assert g.run_id == summary.run_id
        assert g.attempts == 1 and not g.from_cache
        assert g.input_tokens > 0 and g.output_tokens > 0 and g.output_text
        assert g.cost_usd > 0 and g.list_cost_usd >= g.cost_usd
        assert g.model == "gpt-4.1-mini" and g.response_id and g.prompt_cache_key
        assert g.latency_ms is not None
    assert ledger["totals"]["requests"]["completed"] == len(ids)
    assert sum(ledger["totals"]["requests"].values()) == len(ids)

    billed = Decimal(ledger["totals"]["cost_usd"])
    assert recorded_cost(engine) == billed
    assert summary.totals.cost_usd == billed
    # Summary and headline of one article share it in the prompt cache.
    cached = sum(g.cached_tokens for g in rows)
    assert cached > 0
    assert cached == ledger["totals"]["cached_tokens"]
    assert sum(g.input_tokens for g in rows) == ledger["totals"]["input_tokens"]

    run = run_row(engine, summary.run_id)
    assert (run.state, run.stop_reason) == ("finished", None)
    assert run.finished_at is not None
    assert (run.requests, run.succeeded, run.failed) == (len(ids), len(ids), 0)
    assert run.cost_usd == billed
    assert run.cached_tokens == cached
    assert run.forecast_cost_usd is not None and run.forecast_cost_usd > 0
    assert run.forecast_cached_ratio is not None and run.forecast_cached_ratio > 0


def test_rate_limited_requests_are_retried_and_billed_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """429s with a retry hint are retried after the hint; each job is billed exactly once."""
    ids = seed(engine, ["summary", "headline"], n=3)
    storm = 5
    with simulator() as sim:
        sim.script(*["429:200"] * storm)
        summary = run_engine(engine_settings(database_url, sim, tmp_path))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    assert counts["429"] == storm
    assert counts["completed"] == len(ids)
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert len(generations(engine)) == len(ids)
    attempts = [g.attempts for g in generations(engine)]
    assert sum(attempts) == len(ids) + storm
    assert max(attempts) > 1
    assert states(engine) == {"succeeded": len(ids)}
    assert summary.totals.cost_usd == billed == recorded_cost(engine)
    assert summary.wall_s >= 0.2  # the server's retry-after-ms was waited out


def test_server_errors_and_dropped_connections_are_retried(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """500, 503 and a dropped connection are retried; every job is generated exactly once."""
    ids = seed(engine, ["summary", "headline"], n=3)
    with simulator() as sim:
        sim.script("500", "drop", "503", "500")
        summary = run_engine(engine_settings(database_url, sim, tmp_path))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    assert (counts["5xx"], counts["dropped"]) == (3, 1)
    assert counts["completed"] == len(ids)
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert len(generations(engine)) == len(ids)
    assert sum(g.attempts for g in generations(engine)) == len(ids) + 4
    assert states(engine) == {"succeeded": len(ids)}
    assert summary.totals.succeeded == len(ids)
    assert recorded_cost(engine) == billed


def test_poison_job_fails_for_good_after_max_attempts_with_its_error(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A job whose calls keep failing is re-queued, then failed at max_attempts, error kept."""
    [job_id] = seed(engine, ["headline"], n=1)
    retry = RetryPolicy(max_attempts=3, base_s=0.01, max_backoff_s=0.02)
    message = "The server had an error while processing your request."
    with simulator(fail_rate=1.0) as sim:
        settings = engine_settings(database_url, sim, tmp_path, max_attempts=2)
        run_engine(settings, retry=retry)
        [job] = job_rows(engine)
        assert (job.state, job.attempts) == ("queued", 1)
        assert job.last_error is not None and message in job.last_error
        run_engine(settings, retry=retry)
        counts = ledger_requests(sim)

    [job] = job_rows(engine)
    assert (job.id, job.state, job.attempts) == (job_id, "failed", 2)
    assert job.last_error is not None and message in job.last_error
    rows = generations(engine)
    assert [(g.status, g.attempts, g.cost_usd) for g in rows] == [("failed", 3, Decimal(0))] * 2
    assert all(g.error is not None and message in g.error for g in rows)
    assert counts["5xx"] == 6 and sum(counts.values()) == 6


def test_reasoning_profile_sends_effort_and_records_reasoning(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """fact_check on o4-mini sends reasoning effort without sampling; reasoning is recorded."""
    ids = seed(engine, ["fact_check"], n=2)
    log = RequestLog()
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        run_engine(settings, sdk=log.sdk(settings))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    assert len(log.bodies) == len(ids)
    for body in log.bodies:
        assert body["model"] == "o4-mini"
        assert body["reasoning"] == {"effort": "low", "summary": "auto"}
        assert "temperature" not in body and "top_p" not in body
    assert counts["4xx"] == 0 and counts["completed"] == len(ids)
    for g in generations(engine):
        assert g.status == "completed"
        assert g.reasoning_tokens > 0
        assert g.output_tokens >= g.reasoning_tokens
        assert g.reasoning_summary
    assert recorded_cost(engine) == billed


def test_json_schema_profile_stores_valid_json(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """key_points asks for a strict JSON schema and stores output_json valid against it."""
    ids = seed(engine, ["key_points"], n=3)
    log = RequestLog()
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        run_engine(settings, sdk=log.sdk(settings))

    for body in log.bodies:
        fmt = body["text"]["format"]
        assert (fmt["type"], fmt["name"], fmt["strict"]) == ("json_schema", "key_points", True)
        assert fmt["schema"] == KEY_POINTS_SCHEMA
    rows = generations(engine)
    assert sorted(g.job_id for g in rows) == ids
    for g in rows:
        assert g.status == "completed"
        assert g.output_json is not None
        jsonschema.validate(g.output_json, KEY_POINTS_SCHEMA)


def test_incomplete_output_is_recorded_as_such_and_fails_the_job(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """An answer cut at max_output_tokens is an incomplete generation, paid, not retried."""
    [job_id] = seed(engine, ["summary"], n=1)
    with simulator() as sim:
        sim.script("incomplete")
        summary = run_engine(engine_settings(database_url, sim, tmp_path))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    [g] = generations(engine)
    assert (g.job_id, g.status, g.incomplete_reason) == (job_id, "incomplete", "max_output_tokens")
    assert g.attempts == 1
    assert g.output_tokens > 0 and g.cost_usd > 0
    assert g.cost_usd == billed
    assert counts["incomplete"] == 1 and sum(counts.values()) == 1
    [job] = job_rows(engine)
    assert job.state == "failed"
    assert job.last_error is not None and "max_output_tokens" in job.last_error
    assert (summary.totals.incomplete, summary.totals.succeeded) == (1, 0)
    assert run_row(engine, summary.run_id).failed == 1


def test_reasoning_that_eats_the_output_allowance_is_incomplete(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A reasoning profile whose max_output_tokens is spent thinking yields priced incompletes."""
    config = config_with(
        tmp_path,
        """
[profiles.terse_check]
model = "o4-mini"
instructions_file = "prompts/fact_check.md"
contexts = ["style_guide"]
reasoning_effort = "medium"
max_output_tokens = 100
job_template = "Check the claims of: {title}"
""",
    )
    ids = seed(engine, ["terse_check"], n=2)
    with simulator() as sim:
        run_engine(engine_settings(database_url, sim, tmp_path, config_dir=config))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    assert counts["incomplete"] == len(ids) and sum(counts.values()) == len(ids)
    rows = generations(engine)
    assert sorted(g.job_id for g in rows) == ids
    for g in rows:
        assert (g.status, g.incomplete_reason) == ("incomplete", "max_output_tokens")
        assert g.output_tokens == 100 and g.reasoning_tokens == 100
        assert g.cost_usd > 0 and g.attempts == 1
    assert recorded_cost(engine) == billed
    assert states(engine) == {"failed": len(ids)}


def test_unknown_model_stops_the_run_with_the_api_message(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A model the API does not know is fatal: tried once, the run stops, the job stays queued
    with its attempts, nothing is recorded; the key is never stored."""
    # Our price table knows a model the account cannot use: the API answers 400.
    config = config_with(
        tmp_path,
        """
[profiles.preview_summary]
model = "gpt-4.2-mini"
instructions_file = "prompts/summary.md"
contexts = ["style_guide"]
max_output_tokens = 200
""",
        """
[[prices]]
model = "gpt-4.2-mini"
effective_date = 2025-11-30
standard = { input = "0.40", cached_input = "0.10", output = "1.60" }

[models."gpt-4.2-mini"]
regime = "grid"
""",
    )
    [job_id] = seed(engine, ["preview_summary"], n=1)
    with simulator() as sim:
        summary = run_engine(engine_settings(database_url, sim, tmp_path, config_dir=config))
        counts = ledger_requests(sim)

    message = "The requested model 'gpt-4.2-mini' does not exist."
    assert counts["4xx"] == 1 and sum(counts.values()) == 1
    assert generations(engine) == []
    [job] = job_rows(engine)
    assert (job.id, job.state, job.attempts) == (job_id, "queued", 0)
    assert summary.stop_reason == "fatal model"
    assert summary.fatal is not None and message in summary.fatal
    assert "profiles.toml" in summary.fatal
    assert texts_containing(engine, API_KEY) == []


def test_profile_tier_without_a_price_fails_before_claiming(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A profile asking for a tier its model has no price for stops the run up front, loudly."""
    config = config_with(
        tmp_path,
        """
[profiles.flex_summary]
model = "gpt-4.1-mini"
instructions_file = "prompts/summary.md"
contexts = ["style_guide"]
max_output_tokens = 200
service_tier = "flex"
""",
    )
    seed(engine, ["flex_summary"], n=1)
    with simulator() as sim, pytest.raises(PricingError, match="flex"):
        run_engine(engine_settings(database_url, sim, tmp_path, config_dir=config))
    assert states(engine) == {"queued": 1}


def test_jobs_of_a_task_without_a_profile_do_not_block_the_queue(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Jobs of a task whose profile was removed leave the others to run and are never stranded."""
    summaries = seed(engine, ["summary"], n=2)
    orphans = seed(engine, ["retired_task"], n=1)
    with simulator() as sim:
        run_engine(engine_settings(database_url, sim, tmp_path))

    rows = {job.id: job for job in job_rows(engine)}
    assert completed_per_job(engine) == dict.fromkeys(summaries, 1)
    assert all(rows[i].state == "succeeded" for i in summaries)
    for i in orphans:
        orphan = rows[i]
        assert orphan.state in ("queued", "failed")
        if orphan.state == "failed":
            assert orphan.last_error is not None and "retired_task" in orphan.last_error


def test_response_cache_serves_a_rerun_for_free(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Re-running jobs already paid for is served from the response cache at zero cost."""
    ids = seed(engine, ["summary", "headline"], n=2)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        first = run_engine(settings)
        before = sim.ledger()["totals"]
        assert requeue_succeeded(engine) == len(ids)
        second = run_engine(settings)
        after = sim.ledger()["totals"]

    assert after == before  # not one request reached the API
    again = generations(engine, second.run_id)
    assert sorted(g.job_id for g in again) == ids
    for g in again:
        assert g.status == "completed" and g.from_cache
        assert g.cost_usd == 0 and g.list_cost_usd == 0 and g.attempts == 0
        assert g.output_text
    paid = {g.job_id: g.output_text for g in generations(engine, first.run_id)}
    assert {g.job_id: g.output_text for g in again} == paid
    assert (second.totals.from_cache, second.totals.cost_usd) == (len(ids), Decimal(0))
    assert states(engine) == {"succeeded": len(ids)}


def test_identical_requests_in_one_run_are_paid_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Two jobs that render the same request are sent once; the other is a free cache hit."""
    article = sample_articles()[0]
    twin = article.model_copy(update={"source_id": article.source_id + "-twin"})
    ids = seed(engine, ["summary"], articles=[article, twin])
    with simulator() as sim:
        run_engine(engine_settings(database_url, sim, tmp_path))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    assert counts["completed"] == 1 and sum(counts.values()) == 1
    rows = generations(engine)
    assert sorted(g.job_id for g in rows) == ids
    assert sorted(g.from_cache for g in rows) == [False, True]
    assert len({g.output_text for g in rows}) == 1
    assert recorded_cost(engine) == billed
    assert states(engine) == {"succeeded": 2}


def test_streaming_profile_records_ttft_and_retries_a_failed_stream(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A streamed profile stores the text and time to first token; a failed stream is retried."""
    config = config_with(
        tmp_path,
        """
[profiles.live_summary]
model = "gpt-4.1-mini"
instructions_file = "prompts/summary.md"
contexts = ["style_guide", "section_brief"]
temperature = 0.3
max_output_tokens = 120
stream = true
job_template = "Write the summary for: {title}"
""",
    )
    ids = seed(engine, ["live_summary"], n=3)
    log = RequestLog()
    with simulator(latency_scale=0.01) as sim:
        sim.script("stream_fail")
        settings = engine_settings(database_url, sim, tmp_path, config_dir=config)
        run_engine(settings, sdk=log.sdk(settings))
        counts = ledger_requests(sim)
        billed = billed_usd(sim)

    assert all(body.get("stream") is True for body in log.bodies)
    assert len(log.bodies) == len(ids) + 1
    assert counts["failed"] == 1 and counts["completed"] == len(ids)
    rows = generations(engine)
    assert sorted(g.job_id for g in rows) == ids
    for g in rows:
        assert g.status == "completed" and g.output_text
        assert g.ttft_ms is not None and g.latency_ms is not None
        assert 0 <= g.ttft_ms <= g.latency_ms
    assert sorted(g.attempts for g in rows) == [1] * (len(ids) - 1) + [2]
    assert recorded_cost(engine) == billed


def test_dry_run_changes_nothing_and_forecasts(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A dry run plans and prices the queue without claiming, sending or recording anything."""
    seed(engine, ["summary", "headline"], n=3)
    before = job_rows(engine)
    settings = Settings(database_url=database_url, config_dir=CONFIG_DIR, cache_dir=tmp_path)

    report = dry_run(settings, RunOptions())

    assert job_rows(engine) == before
    assert generations(engine) == [] and run_rows(engine) == []
    assert report.jobs == len(before)
    assert report.by_task == {"summary": 3, "headline": 3}
    assert report.cost_usd > 0
    assert report.uncached_cost_usd > report.cost_usd
    assert report.cached_ratio > 0


def test_dry_run_with_a_limit_forecasts_the_jobs_the_run_takes(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """With a limit, the dry run plans the jobs a run would claim: highest priority first."""
    seed(engine, ["summary"], n=3)
    [urgent] = seed(engine, ["headline"], start=5, n=1, priority=5)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        report = dry_run(settings, RunOptions(limit=1))
        run_engine(settings, RunOptions(limit=1))

    assert [g.job_id for g in generations(engine)] == [urgent]
    assert report.by_task == {"headline": 1}
