"""Batch mode through the simulator's Files/Batches API over HTTP (the real SDK), on SQLite and
PostgreSQL: round trip, crash and re-attach, expiry, failed lines, the token-limit split,
cancelling; plus the file writer and splitter."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.batchmode.files import (
    Line,
    batch_line,
    custom_id,
    parse_custom_id,
    parse_lines,
    split,
)
from pipeline.batchmode.remote import OpenAIBatchAPI, RemoteBatch
from pipeline.batchmode.run import BatchRunSummary, cancel_batch_async, run_batch_mode_async
from pipeline.client.clock import FakeClock
from pipeline.client.retry import RetryPolicy
from pipeline.db import leases, queue
from pipeline.db.models import Batch, BatchItem, Generation, Job, utcnow
from pipeline.intake.reader import ArticleIn
from pipeline.run.dryrun import dry_run
from pipeline.run.runner import RunOptions
from pipeline.settings import Settings
from pipeline.simulator.server import SimulatorServer
from pipeline.simulator.testing import TEST_API_KEY, async_client, start_test_simulator
from tests.conftest import CONFIG_DIR

TASKS = ("summary", "headline")
MODEL = "gpt-4.1-mini"  # both tasks' model in config/profiles.toml
_WORDS = [
    "council", "budget", "vote", "river", "bridge",
    "housing", "transport", "election", "market", "school",
]  # fmt: skip


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


def articles(n: int) -> list[ArticleIn]:
    """``n`` distinct articles over three sections."""
    out = []
    for i in range(n):
        words = [_WORDS[(i * 7 + k * 3) % len(_WORDS)] for k in range(220)]
        out.append(
            ArticleIn(
                id=f"art-{i}",
                title=f"The {_WORDS[i % len(_WORDS)]} story {i}",
                body=" ".join(words).capitalize() + ".",
                section=("politics", "business", "sport")[i % 3],
            )
        )
    return out


def enqueue(sessions: sessionmaker[Session], n: int, tasks: tuple[str, ...] = TASKS) -> int:
    """Queue ``n`` articles for ``tasks``; the number of jobs."""
    with sessions() as session:
        return queue.enqueue(session, articles(n), list(tasks)).accepted


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    """A simulator with a frozen clock: batches move only when a test's sleep advances it."""
    server = start_test_simulator()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def batch_settings(settings: Settings, sim: SimulatorServer) -> Settings:
    """Settings pointing at the simulator."""
    return settings.model_copy(
        update={"openai_base_url": sim.base_url, "openai_api_key": SecretStr(TEST_API_KEY)}
    )


class API(OpenAIBatchAPI):
    """The real Batch API client on the simulator; ``crash_at`` makes one step fail once."""

    def __init__(self, sim: SimulatorServer, crash_at: str | None = None) -> None:
        self.sdk = async_client(sim)
        super().__init__(self.sdk, retry=RetryPolicy(clock=FakeClock()))
        self.crash_at = crash_at

    def _maybe_crash(self, point: str) -> None:
        if self.crash_at == point:
            self.crash_at = None
            raise Crash(point)

    async def upload(self, filename: str, data: bytes) -> str:
        file_id = await super().upload(filename, data)
        self._maybe_crash("after_upload")
        return file_id

    async def create(self, input_file_id: str, metadata: Mapping[str, str]) -> RemoteBatch:
        self._maybe_crash("before_create")
        batch = await super().create(input_file_id, metadata)
        self._maybe_crash("after_create")
        return batch

    async def get(self, batch_id: str) -> RemoteBatch:
        self._maybe_crash("first_poll")
        return await super().get(batch_id)


def run(
    settings: Settings,
    sim: SimulatorServer,
    *,
    crash_at: str | None = None,
    wait: bool = True,
    submit: bool = True,
    options: RunOptions | None = None,
) -> BatchRunSummary:
    """One batch-mode run whose polling sleeps move the simulator's clock instead."""

    async def sleep(seconds: float) -> None:
        sim.advance(seconds)
        await asyncio.sleep(0)

    async def main() -> BatchRunSummary:
        api = API(sim, crash_at)
        try:
            return await run_batch_mode_async(
                settings, options or RunOptions(), api=api, sleep=sleep, wait=wait, submit=submit
            )
        finally:
            await api.sdk.close()

    return asyncio.run(main())


def input_files(sim: SimulatorServer) -> list[bytes]:
    """The batch input files uploaded to the simulator."""
    files = sim.state.batches.files.files.values()
    return [f.data for f in files if f.purpose == "batch"]


def job_states(sessions: sessionmaker[Session]) -> dict[str, int]:
    """How many jobs are in each state."""
    with sessions() as session:
        counts: dict[str, int] = {}
        for state in session.execute(select(Job.state)).scalars():
            counts[state] = counts.get(state, 0) + 1
        return counts


def generations(sessions: sessionmaker[Session]) -> list[Generation]:
    """Every generation, oldest first."""
    with sessions() as session:
        return list(session.execute(select(Generation).order_by(Generation.id)).scalars())


def batch_rows(sessions: sessionmaker[Session]) -> list[Batch]:
    """Every batch row, oldest first."""
    with sessions() as session:
        return list(session.execute(select(Batch).order_by(Batch.id)).scalars())


# -- files: pure ------------------------------------------------------------------------------


def _line(job_id: int, size: int = 10) -> Line:
    cid = custom_id(job_id, 1)
    return Line(cid, job_id, 1, "summary", "instructions_first", None, b"x" * (size - 1) + b"\n")


def test_custom_id_is_stable_and_parses_back() -> None:
    """A job's attempt always gets the same custom_id, and it maps back to the job."""
    assert custom_id(17, 2) == "job-17-a2"
    assert parse_custom_id("job-17-a2") == (17, 2)
    assert parse_custom_id("request-1") is None


def test_split_keeps_order_and_respects_both_limits() -> None:
    """Files never pass the request or byte limit, and no line is lost or reordered."""
    lines = [_line(i, size=10 + i % 7) for i in range(53)]
    parts = split(lines, max_requests=10, max_bytes=100)
    assert [line for part in parts for line in part] == lines
    assert all(len(part) <= 10 and sum(len(x.data) for x in part) <= 100 for part in parts)
    with pytest.raises(ValueError, match="exceeds"):
        split([_line(1, size=101)], max_bytes=100)


def test_batch_line_is_the_documented_envelope() -> None:
    """A line is {custom_id, method POST, url /v1/responses, body}."""
    line = json.loads(batch_line("job-1-a1", {"model": MODEL, "input": "hi"}))
    assert line == {
        "custom_id": "job-1-a1",
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": MODEL, "input": "hi"},
    }


def test_output_and_error_lines_are_read_out_of_order() -> None:
    """Answered, HTTP-error and never-run lines are told apart; junk lines are skipped."""
    data = b"\n".join(
        [
            json.dumps(
                {
                    "custom_id": "job-2-a1",
                    "response": {
                        "status_code": 500,
                        "request_id": "r",
                        "body": {"error": {"code": "server_error", "message": "boom"}},
                    },
                    "error": None,
                }
            ).encode(),
            b"not json",
            json.dumps(
                {
                    "custom_id": "job-1-a1",
                    "response": {"status_code": 200, "body": {"status": "completed"}},
                    "error": None,
                }
            ).encode(),
            json.dumps(
                {
                    "custom_id": "job-3-a1",
                    "response": None,
                    "error": {"code": "batch_expired", "message": "late"},
                }
            ).encode(),
        ]
    )
    got = {r.custom_id: r for r in parse_lines(data)}
    assert got["job-1-a1"].answered
    assert (got["job-2-a1"].status_code, got["job-2-a1"].error_code) == (500, "server_error")
    assert (got["job-3-a1"].status_code, got["job-3-a1"].error_code) == (None, "batch_expired")


# -- through the simulator ------------------------------------------------------------------


def test_batch_round_trip_records_every_job_at_batch_price(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Jobs go out as one planned JSONL file and come back recorded at the batch tier, billed
    exactly as the simulator billed them, each with one attempt."""
    n = enqueue(sessions, 6)
    summary = run(batch_settings, sim)
    assert summary.state == "finished" and summary.open_batches == 0
    assert job_states(sessions) == {"succeeded": n}
    with sessions() as session:  # counted once, at the claim that sent it, not again
        assert set(session.scalars(select(Job.attempts))) == {1}
    gens = generations(sessions)
    assert len(gens) == n
    assert {g.price_tier for g in gens} == {"batch"}
    ledger = sim.ledger()["models"][MODEL]["batch"]
    assert sum((g.cost_usd for g in gens), Decimal(0)) == Decimal(ledger["cost_usd"])
    assert summary.totals.cost_usd == Decimal(ledger["cost_usd"])
    (row,) = batch_rows(sessions)
    assert row.status == "completed" and row.ingested_at is not None
    assert {g.batch_id for g in gens} == {row.batch_id}
    assert row.cost_usd == summary.totals.cost_usd and row.list_cost_usd > row.cost_usd
    (data,) = input_files(sim)
    lines = [json.loads(x) for x in data.splitlines()]
    assert {line["custom_id"] for line in lines} == {f"job-{g.job_id}-a1" for g in gens}
    keys = {line["custom_id"]: line["body"].get("prompt_cache_key") for line in lines}
    assert all(keys[f"job-{g.job_id}-a1"] == g.prompt_cache_key for g in gens)
    assert all("service_tier" not in line["body"] for line in lines)
    # Provenance and checks as in realtime: the version each line was submitted with.
    with sessions() as session:
        submitted = set(session.scalars(select(BatchItem.profile_version)))
    assert {g.profile_version for g in gens} == submitted and None not in submitted
    assert all(g.checks and g.content_hash for g in gens)


def test_jobs_in_a_batch_are_not_requeued_when_run_leases_expire(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """A submitted batch holds its jobs for 25 h: requeue_expired hours later leaves them."""
    n = enqueue(sessions, 3)
    summary = run(batch_settings, sim, wait=False)
    assert summary.open_batches == 1 and summary.state == "stopped"
    with sessions() as session:
        later = utcnow() + dt.timedelta(hours=24)
        assert leases.requeue_expired(session, max_attempts=5, now=later) == 0
        owners = set(session.execute(select(Job.lease_owner)).scalars())
    (row,) = batch_rows(sessions)
    assert owners == {f"batch:{row.id}"}
    assert job_states(sessions) == {"running": n}


@pytest.mark.parametrize(
    "crash_at", ["after_upload", "before_create", "after_create", "first_poll"]
)
def test_a_crashed_run_is_resumed_without_a_second_upload(
    crash_at: str,
    batch_settings: Settings,
    sim: SimulatorServer,
    sessions: sessionmaker[Session],
) -> None:
    """Crash anywhere between upload and recording: the next run re-attaches to the same file
    and batch, and every job is recorded once."""
    n = enqueue(sessions, 4)
    with pytest.raises(Crash):
        run(batch_settings, sim, crash_at=crash_at)
    assert job_states(sessions) == {"running": n}
    summary = run(batch_settings, sim)
    assert summary.reattached == 1
    assert summary.submitted.claimed == 0  # nothing was queued: the jobs stayed with the batch
    assert len(input_files(sim)) == 1
    assert len(sim.state.batches.batches) == 1
    assert job_states(sessions) == {"succeeded": n}
    gens = generations(sessions)
    assert len(gens) == n and len({g.job_id for g in gens}) == n
    assert sum((g.cost_usd for g in gens), Decimal(0)) == sim.state.ledger.total_cost()


def test_an_expired_batch_records_what_finished_and_requeues_the_rest(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Lines the 24 h window cut off send their jobs back to the queue with the reason (when
    they are not re-submitted: tests/test_batch_salvage.py)."""
    sim.configure(batch_expire_rate=1.0, batch_expire_unfinished=0.5)
    n = enqueue(sessions, 4)
    # Polls up to an hour apart: the window is 24 simulated hours.
    settings = batch_settings.model_copy(
        update={"batch_poll_max_s": 3600.0, "batch_resubmit_expired": False}
    )
    summary = run(settings, sim)
    states = job_states(sessions)
    assert states["succeeded"] == summary.counts["recorded"] > 0
    assert states["queued"] == summary.counts["requeued"] == n - states["succeeded"]
    with sessions() as session:
        errors = session.execute(select(Job.last_error).where(Job.state == "queued")).scalars()
        assert all("expired" in (e or "") for e in errors)
    (row,) = batch_rows(sessions)
    assert row.status == "expired"
    assert len(generations(sessions)) == states["succeeded"]


def test_failed_lines_are_recorded_and_their_jobs_requeued(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """A line that failed with a 5xx is a failed generation; its job goes back to the queue."""
    sim.configure(batch_line_failure_rate=0.5)
    n = enqueue(sessions, 6)
    run(batch_settings, sim)
    states = job_states(sessions)
    assert 0 < states.get("queued", 0) < n and states["queued"] + states["succeeded"] == n
    failed = [g for g in generations(sessions) if g.status == "failed"]
    assert len(failed) == states["queued"]
    assert all("HTTP 500" in (g.error or "") and g.cost_usd == 0 for g in failed)
    with sessions() as session:
        items = session.execute(select(BatchItem.state)).scalars().all()
    assert sorted(set(items)) == ["failed", "succeeded"]


def test_a_batch_over_the_enqueued_token_limit_is_split_in_halves(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """token_limit_exceeded: the batch is re-submitted as two halves, one after the other."""
    n = enqueue(sessions, 6)
    tokens = dry_run(batch_settings, RunOptions()).input_tokens
    sim.configure(model_batch_queue_limit={MODEL: int(tokens * 0.7)})
    summary = run(batch_settings, sim)
    assert summary.counts["split"] == 1
    rows = batch_rows(sessions)
    assert [r.status for r in rows] == ["failed", "completed", "completed"]
    assert rows[1].parent_id == rows[0].id == rows[2].parent_id
    assert rows[1].requests + rows[2].requests == n
    assert "token_limit_exceeded" in (rows[0].error or "")
    assert job_states(sessions) == {"succeeded": n}
    assert len(input_files(sim)) == 3


def test_a_cancelled_batch_returns_its_jobs_to_the_queue(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """Cancel before anything ran: the next poll records the cancellation and requeues all."""
    n = enqueue(sessions, 3)
    run(batch_settings, sim, wait=False)
    (row,) = batch_rows(sessions)

    async def cancel() -> Any:
        api = API(sim)
        try:
            return await cancel_batch_async(batch_settings, str(row.id), api=api)
        finally:
            await api.sdk.close()

    assert asyncio.run(cancel()).status == "cancelling"
    summary = run(batch_settings, sim, submit=False)
    assert summary.counts["requeued"] == n
    assert job_states(sessions) == {"queued": n}
    (row,) = batch_rows(sessions)
    assert row.status == "cancelled" and row.ingested_at is not None


def test_files_are_split_under_the_configured_request_limit(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session]
) -> None:
    """More requests than a file may hold: several batches, each job in exactly one."""
    n = enqueue(sessions, 5)
    settings = batch_settings.model_copy(update={"batch_max_requests": 4})
    summary = run(settings, sim)
    assert summary.counts["submitted"] == 3 == len(input_files(sim))
    assert [r.requests for r in batch_rows(sessions)] == [4, 4, 2]
    assert job_states(sessions) == {"succeeded": n}


def test_a_chained_task_goes_in_a_second_batch_as_the_next_turn(
    batch_settings: Settings, sim: SimulatorServer, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A follower is queued when its parent's line is recorded and sent in the next round, as
    the turn after the parent's answer, under the parent's cache key."""
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    with (config / "profiles.toml").open("a", encoding="utf-8") as fh:
        fh.write(
            '\n[profiles.teaser]\nmodel = "gpt-4.1-mini"\ninstructions = "Now one teaser line."\n'
            'max_output_tokens = 60\nfollows = "summary"\n'
        )
    settings = batch_settings.model_copy(update={"config_dir": config})
    with sessions() as session:
        queue.enqueue(
            session, articles(3), ["summary", "teaser"], start_states={"teaser": "waiting"}
        )
    summary = run(settings, sim)
    assert summary.counts["submitted"] == 2
    assert job_states(sessions) == {"succeeded": 6}
    first, second = input_files(sim)
    parents = {g.job_id: g for g in generations(sessions) if g.task == "summary"}
    children = [json.loads(x)["body"] for x in second.splitlines()]
    assert len(children) == 3
    for body in children:
        answers = [m["content"] for m in body["input"] if m["role"] == "assistant"]
        assert len(answers) == 1 and answers[0] in {g.output_text for g in parents.values()}
        assert body["prompt_cache_key"] in {g.prompt_cache_key for g in parents.values()}
    assert all(json.loads(x)["body"]["metadata"]["task"] == "summary" for x in first.splitlines())
