"""The database going away mid-run: a short outage is ridden out, a long one stops the run
cleanly, and nothing paid for is lost either way.

PostgreSQL is reached through a TCP proxy the test can cut (every connection dropped, no new
ones accepted) and restore, as a restart or a network failure would. Through the real SDK
against the simulator over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pipeline.client.wiring import build_client_stack
from pipeline.run.runner import RunOptions, run_batch_async
from tests.conftest import _truncate_all
from tests.edge_support import CONTENTGEN, cli_env, lines
from tests.engine_support import (
    completed_per_job,
    engine_settings,
    finish,
    generations,
    recorded_cost,
    run_engine,
    seed,
    simulator,
    states,
    wait_until,
    worker,
)


class Proxy:
    """A TCP proxy to ``target`` on a free local port that can be cut and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.up = True
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._done:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self.up = False
        with self._lock:
            for s in self._open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._open.clear()

    def restore(self) -> None:
        """Accept connections again."""
        self.up = True

    def close(self) -> None:
        self._done = True
        self.cut()
        self._listener.close()


# A connection to lose needs a server: PostgreSQL only (SQLite is a local file).
pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(_postgres_database: str) -> str:
    """This module's database: the PostgreSQL scratch database, emptied."""
    _truncate_all(_postgres_database)
    return _postgres_database


@pytest.fixture
def proxied(database_url: str) -> tuple[str, Proxy]:
    """The test database reached through a cuttable proxy."""
    url = make_url(database_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    yield url.set(port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.close()


def run_with_outage(
    settings_url: str,
    proxy: Proxy,
    tmp_path: Path,
    sim: object,
    *,
    down_s: float,
    **updates: object,
) -> object:
    """A run during which the database is cut for ``down_s`` seconds, 1 s after it starts."""
    settings = engine_settings(settings_url, sim, tmp_path, **updates)  # type: ignore[arg-type]

    async def main() -> object:
        stack = build_client_stack(settings)
        task = asyncio.create_task(
            run_batch_async(settings, RunOptions(concurrency=2), stack=stack)
        )
        await asyncio.sleep(1.0)
        proxy.cut()
        await asyncio.sleep(down_s)
        proxy.restore()
        return await task

    return asyncio.run(main())


def test_short_database_outage_is_ridden_out(
    proxied: tuple[str, Proxy], engine: Engine, tmp_path: Path
) -> None:
    """A 2 s outage mid-run: retried, the run finishes, every job once, cost == bill."""
    url, proxy = proxied
    ids = seed(engine, ["summary"], n=10)
    with simulator(latency_scale=0.3) as sim:
        summary = run_with_outage(url, proxy, tmp_path, sim, down_s=2.0)
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])
    assert summary.state == "finished"  # type: ignore[attr-defined]
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert recorded_cost(engine) == billed


def test_long_database_outage_stops_the_run_and_loses_nothing(
    proxied: tuple[str, Proxy], engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage past CONTENTGEN_DB_OUTAGE_S stops the worker with one reason; the next run
    records what was paid meanwhile (the journal), takes back the dead worker's jobs and
    finishes: every job once, cost == bill."""
    url, proxy = proxied
    ids = seed(engine, ["summary"], n=10)
    monkeypatch.setenv("CONTENTGEN_DB_OUTAGE_S", "2")
    with simulator(latency_scale=0.3) as sim:
        settings = engine_settings(url, sim, tmp_path)
        with worker(settings, concurrency=2) as proc:
            wait_until(lambda: len(generations(engine)) >= 1, proc=proc)
            proxy.cut()
            stopped = finish(proc, timeout_s=60)
        proxy.restore()
        assert stopped["stop_reason"] == "database unreachable"
        assert "did not answer" in (stopped["fatal"] or "")
        monkeypatch.delenv("CONTENTGEN_DB_OUTAGE_S")
        rerun = run_engine(engine_settings(url, sim, tmp_path))
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])
    assert rerun.state == "finished"
    assert states(engine) == {"succeeded": len(ids)}
    assert completed_per_job(engine) == dict.fromkeys(ids, 1)
    assert recorded_cost(engine) == billed
    assert {g.status for g in generations(engine)} == {"completed"}


def test_database_gone_for_good_stops_in_the_window_with_one_line(
    proxied: tuple[str, Proxy], engine: Engine, tmp_path: Path
) -> None:
    """`contentgen run` with the database cut for good mid-run: stopped about
    CONTENTGEN_DB_OUTAGE_S after the cut (not a window per waiting call), with one line on
    stderr (not one per retry), exit 3; the paid answers are in the journal for the next run."""
    url, proxy = proxied
    seed(engine, ["summary"], n=40)
    window_s = 3.0
    with simulator(latency_scale=0.5) as sim:
        settings = engine_settings(url, sim, tmp_path)
        env = cli_env(settings, tmp_path, CONTENTGEN_DB_OUTAGE_S=str(window_s))
        proc = subprocess.Popen(
            [str(CONTENTGEN), "run", "-q", "--concurrency", "4"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: len(generations(engine)) >= 2, proc=proc)  # type: ignore[arg-type]
            proxy.cut()
            cut_at = time.monotonic()
            out, err = proc.communicate(timeout=120)
            stopped_after = time.monotonic() - cut_at
        finally:
            if proc.poll() is None:
                proc.kill()
        proxy.restore()
        rerun = run_engine(engine_settings(url, sim, tmp_path))
        billed = Decimal(sim.ledger()["totals"]["cost_usd"])
    assert proc.returncode == 3, out + err
    assert lines(err) == [lines(err)[0]] and "database" in err and "did not answer" in err, err
    # The window, plus the requests in flight finishing (latency x0.5) and the stop itself.
    assert stopped_after < window_s + 12, stopped_after
    assert rerun.state == "finished"
    assert recorded_cost(engine) == billed
