"""Account-wide errors stop the run: jobs stay queued and untouched, one line, a distinct exit.

A wrong key (401), an account out of quota and an API that stops answering are not the
jobs' fault: the run stops claiming at once, records nothing for the requests they hit, hands
every job back with its attempts as they were, and says what happened and what to do. A stop
(SIGTERM, Ctrl-C) ends waits at once instead of sitting out a retry schedule. Through the real
SDK against the simulator over HTTP, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy import Engine

from pipeline.client.retry import RetryPolicy
from pipeline.client.wiring import build_client_stack
from pipeline.run.runner import RunOptions, run_batch_async
from tests.engine_support import (
    CONFIG_DIR,
    engine_settings,
    generations,
    job_rows,
    run_engine,
    seed,
    simulator,
)

ROOT = Path(__file__).resolve().parents[1]
CONTENTGEN = ROOT / ".venv" / "bin" / "contentgen"


def untouched(engine: Engine) -> bool:
    """Every job queued, never attempted, no generation recorded."""
    rows = job_rows(engine)
    return (
        bool(rows)
        and all(j.state == "queued" and j.attempts == 0 for j in rows)
        and not generations(engine)
    )


def test_wrong_key_stops_the_run_and_leaves_the_queue_untouched(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A 401 stops the run: 'fatal auth', what to do, every job queued with 0 attempts."""
    seed(engine, ["summary", "headline"], n=10)
    with simulator(api_keys=("sk-the-right-one",)) as sim:
        summary = run_engine(engine_settings(database_url, sim, tmp_path))
        sent = sum(sim.ledger()["totals"]["requests"].values())
    assert summary.stop_reason == "fatal auth"
    assert summary.fatal is not None and "401" in summary.fatal
    assert "OPENAI_API_KEY" in summary.fatal
    assert untouched(engine)
    assert sent <= 20  # the first wave at most: no retries, no second chunk


def test_out_of_quota_stops_the_run(database_url: str, engine: Engine, tmp_path: Path) -> None:
    """insufficient_quota is fatal: the run stops, nothing is failed, nothing recorded."""
    seed(engine, ["summary"], n=6)
    with simulator() as sim:
        sim.script(*["quota"] * 6)
        summary = run_engine(engine_settings(database_url, sim, tmp_path, concurrency=2))
    assert summary.stop_reason == "fatal quota"
    assert summary.fatal is not None and "quota" in summary.fatal
    assert untouched(engine)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_api_stops_after_the_outage_window(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """Nothing listens: the breaker pauses sending, then stops the run as 'unreachable'."""
    seed(engine, ["summary", "headline"], n=5)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
    settings = settings.model_copy(update={"openai_base_url": f"http://127.0.0.1:{free_port()}/v1"})
    stack = build_client_stack(
        settings, retry=RetryPolicy(base_s=0.05, max_backoff_s=0.2), outage_window_s=2.0
    )
    started = time.monotonic()
    summary = asyncio.run(run_batch_async(settings, RunOptions(), stack=stack))
    assert time.monotonic() - started < 30
    assert summary.stop_reason == "fatal unreachable"
    assert summary.fatal is not None and "did not answer" in summary.fatal
    assert untouched(engine)


def test_stop_ends_a_long_retry_wait_at_once(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A 429 that asks for 60 s: stop() ends the wait; the run is over in seconds."""
    seed(engine, ["summary"], n=3)
    with simulator() as sim:
        sim.script(*["429:60000"] * 3)
        settings = engine_settings(database_url, sim, tmp_path)

        async def main() -> float:
            stack = build_client_stack(settings)
            holder: list = []
            task = asyncio.create_task(
                run_batch_async(settings, RunOptions(), stack=stack, on_runner=holder.append)
            )
            await asyncio.sleep(1.5)
            stopped = time.monotonic()
            holder[0].stop("signal SIGTERM")
            summary = await task
            assert summary.stop_reason == "signal SIGTERM"
            return time.monotonic() - stopped

        took = asyncio.run(main())
    assert took < 5
    assert untouched(engine)


def test_cli_wrong_key_prints_one_line_and_exits_3(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """`contentgen run` with a refused key: exit 3, one stderr line saying what to do."""
    seed(engine, ["summary"], n=3)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    with simulator(api_keys=("sk-the-right-one",)) as sim:
        env = {
            **os.environ,
            "CONTENTGEN_DATABASE_URL": database_url,
            "CONTENTGEN_CONFIG_DIR": str(CONFIG_DIR),
            "CONTENTGEN_CACHE_DIR": str(tmp_path / "cache"),
            "OPENAI_BASE_URL": sim.base_url,
            "OPENAI_API_KEY": "sk-wrong-key-123456",
        }
        done = subprocess.run(
            [str(CONTENTGEN), "run", "--quiet"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 3, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "API key was refused" in lines[0] and "Traceback" not in done.stderr
    assert "sk-wrong-key-123456" not in done.stdout + done.stderr
    assert untouched(engine)
