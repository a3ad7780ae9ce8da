"""An API that accepts connections and never answers: the run stops about the outage window
after the first request it swallowed, and says how long it really was silent.

Issue 23: such a server held a run for 728 s with the window at 120 s (the primer's five
timeouts came before the window started), and the message said 120 s. Here a socket server
accepts every connection, reads what it is sent and never writes a byte; the window and the
request timeout are a few seconds.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from pipeline.settings import Settings
from tests.engine_support import API_KEY, CONFIG_DIR, job_rows, run_engine, seed


class SilentServer:
    """Accepts TCP connections on a free port, reads, never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._done = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._done:
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            conn.setblocking(False)
            self._held.append(conn)  # kept open, never written to

    def close(self) -> None:
        self._done = True
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()
        self._listener.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    """The server that never answers."""
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the database plays no part
def test_a_server_that_never_answers_stops_the_run_after_the_window(
    database_url: str, engine: Engine, tmp_path: Path, silent: SilentServer
) -> None:
    """Window 3 s, timeout 3 s: the run stops within a few seconds of the first hang, says
    the API did not answer for about the time it really waited, and leaves the jobs queued."""
    ids = seed(engine, ["summary", "headline"], n=4)
    window_s = 3.0
    settings = Settings(
        database_url=database_url,
        config_dir=CONFIG_DIR,
        cache_dir=tmp_path / "cache",
        openai_base_url=f"http://127.0.0.1:{silent.port}/v1",
        openai_api_key=SecretStr(API_KEY),
        outage_window_s=window_s,
        request_timeout_s=window_s,
    )
    started = time.monotonic()
    summary = run_engine(settings)
    wall_s = time.monotonic() - started

    assert silent.accepted >= 1
    assert summary.state == "failed" and summary.stop_reason == "fatal unreachable"
    fatal = summary.fatal or ""
    silent_s = re.search(r"did not answer for (\d+)s", fatal)
    assert silent_s is not None, fatal
    # True: it was silent at least the window, and not longer than the run lasted.
    assert window_s <= int(silent_s.group(1)) <= wall_s + 1, (fatal, wall_s)
    assert "no answer" in fatal or "sent no answer" in fatal
    # About the window after the first hang (the timeout ends the first attempt at 3 s), not
    # five timeouts and then the window (18 s and more).
    assert wall_s < 2 * window_s + 4, wall_s
    assert [(j.state, j.attempts, j.lease_owner) for j in job_rows(engine)] == [
        ("queued", 0, None)
    ] * len(ids)
