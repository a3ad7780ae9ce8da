"""A server that echoes the API key back never gets it printed or stored.

Issue 23: a server that put the key in ``x-request-id`` had it printed, unscrubbed, in every
retry and give-up line (36 lines). Here a small server answers every request 500 with the
key in its request id, in its error message and in a header; the run retries, gives up and
records the failure, and the key appears in no log line and in no database column.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import Engine

from pipeline.client.retry import RetryPolicy
from pipeline.settings import Settings
from tests.edge_support import ThreadedApp
from tests.engine_support import CONFIG_DIR, job_rows, run_engine, seed, texts_containing

KEY = "proj-Secret-0123456789abcdef"  # not sk-shaped: only the configured key can mask it


class EchoingServer:
    """Answers every request 500 with the caller's key in its request id and message."""

    def __init__(self) -> None:
        self.requests = 0
        self.app = ThreadedApp(self._answer)

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests += 1
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return web.json_response(
            {"error": {"message": f"upstream failed for key {key}", "type": "server_error"}},
            status=500,
            headers={"x-request-id": f"req_{key}", "x-debug-key": key},
        )

    def close(self) -> None:
        self.app.close()


@pytest.fixture
def echoing() -> Iterator[EchoingServer]:
    """The echoing server."""
    server = EchoingServer()
    yield server
    server.close()


def test_a_key_echoed_by_the_server_is_never_printed_or_stored(
    database_url: str,
    engine: Engine,
    tmp_path: Path,
    echoing: EchoingServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Retries, give-ups and the recorded failure carry the request id and the server's
    message with the key masked."""
    seed(engine, ["summary"], n=2)
    settings = Settings(
        database_url=database_url,
        config_dir=CONFIG_DIR,
        cache_dir=tmp_path / "cache",
        openai_base_url=echoing.app.base_url,
        openai_api_key=SecretStr(KEY),
    )
    caplog.set_level(logging.DEBUG)
    run_engine(settings, retry=RetryPolicy(max_attempts=3, base_s=0.01, max_backoff_s=0.02))

    assert echoing.requests >= 3
    # Ours at any level, anyone's from INFO up (the HTTP libraries' own DEBUG tracing shows
    # raw headers to whoever turns it on: that is theirs, and off by default).
    printed = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("contentgen") or record.levelno >= logging.INFO
    ]
    retries = [line for line in printed if line.startswith(("retry job=", "giving up job="))]
    assert retries, printed
    assert all("request_id=req_sk-***" in line for line in retries), retries
    assert not [line for line in printed if KEY in line]
    assert all("sk-***" in (job.last_error or "") for job in job_rows(engine))
    assert texts_containing(engine, KEY) == []
