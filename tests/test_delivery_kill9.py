"""The deliverer killed with SIGKILL mid-batch ten times: every approved version reaches a
real receiver that verifies each signature, under one webhook-id per (article, task,
version), is processed there exactly once, and is repeated at most as often as sends were in
flight at the kills; versions the receiver refuses with 500 for a while are retried until
they are accepted (the real ``contentgen deliver`` console script, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from pipeline.db import Delivery, host_id, make_engine, session_factory
from tests.delivery_support import SECRET, Receiver, approve_all, generate, outbox, receiver

CONTENTGEN = Path(sys.executable).with_name("contentgen")
KILLS = 10
CONCURRENCY = 4
ARTICLES = 30  # x 2 tasks = 60 versions


def _env(database_url: str, config_dir: Path, url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTENTGEN_", "OPENAI_"))}
    env.update(
        CONTENTGEN_DATABASE_URL=database_url,
        CONTENTGEN_CONFIG_DIR=str(config_dir),
        CONTENTGEN_DELIVERY_WEBHOOK_URL=url,
        CONTENTGEN_DELIVERY_SECRET=SECRET,
        CONTENTGEN_DELIVERY_BACKOFF_S="0.2",
        CONTENTGEN_DELIVERY_BACKOFF_MAX_S="0.5",
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_STATE_HOME=str(home / "state"),
    )
    return env


def _wait(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"deliverer ended early ({proc.returncode}):\n{err[-3000:]}")
        assert time.monotonic() < deadline, f"not done within {timeout_s} s"
        time.sleep(0.01)


def _held_by(database_url: str, pid: int) -> tuple[int, int]:
    """Versions the dead deliverer ``pid`` held (claimed, not recorded), and versions unsent."""
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            held = session.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.lease_owner.startswith(f"{host_id()}:{pid}:"))
            )
            unsent = session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.state != "sent")
            )
            return int(held or 0), int(unsent or 0)
    finally:
        engine.dispose()


def _requests(cms: Receiver) -> int:
    with cms.lock:
        return cms.requests


def test_ten_kills_mid_batch_deliver_every_version_once_per_webhook_id(
    database_url: str, tmp_path: Path
) -> None:
    """SIGKILL x10 mid-batch, then a last deliverer: all approved versions processed once,
    repeats <= the sends the dead deliverers held, 500s retried until accepted."""
    t0 = time.monotonic()
    generate(database_url, tmp_path, n=ARTICLES, tasks=("summary", "headline"))
    approved = approve_all(database_url)
    prepared_s = time.monotonic() - t0
    assert approved == 2 * ARTICLES
    config = tmp_path / "delivery-config"
    config.mkdir()
    (config / "delivery.toml").write_text(
        f"[delivery]\nconcurrency = {CONCURRENCY}\ntimeout_s = 5\nlease_s = 60\n"
    )
    started = time.monotonic()
    held_at_kills: list[int] = []
    with receiver(delay_s=0.15, fail_every=4) as cms:
        env = _env(database_url, config, cms.url, tmp_path)
        command = [str(CONTENTGEN), "deliver", "--watch", "--poll", "0.05"]

        def start() -> subprocess.Popen[str]:
            return subprocess.Popen(
                command,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )

        for _ in range(KILLS):
            proc = start()
            seen = _requests(cms)
            _wait(lambda seen=seen: _requests(cms) >= seen + 2, proc, timeout_s=30)  # mid-batch
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
            held, unsent = _held_by(database_url, proc.pid)
            assert unsent > 0, "the batch was over before the kill"
            held_at_kills.append(held)

        killed_s = time.monotonic() - started
        last = start()
        _wait(lambda: len(cms.processed) == approved, last, timeout_s=60)
        _wait(lambda: _held_by(database_url, -1)[1] == 0 or bool(time.sleep(0.2)), last, 30)
        last.send_signal(signal.SIGTERM)
        out, err = last.communicate(timeout=30)
        assert last.returncode == 0, err[-3000:]
    elapsed = time.monotonic() - started

    rows = outbox(database_url)
    assert len(rows) == approved and {r.state for r in rows} == {"sent"}
    assert cms.bad_signatures == 0
    assert set(cms.processed) == {r.webhook_id for r in rows}  # each processed once (a dict)
    by_id = {r.webhook_id: r for r in rows}
    assert len({(r.uri, r.version) for r in rows}) == approved  # one id per version
    for message_id, item in cms.processed.items():
        assert (item["uri"], item["version"]) == (by_id[message_id].uri, "1")
    assert cms.repeats <= sum(held_at_kills) <= KILLS * CONCURRENCY
    refused = [m for m, n in cms.failures_sent.items() if n]
    assert refused, "the receiver never refused a send: the retries were not tested"
    assert set(refused) <= set(cms.processed)  # refused twice each, then accepted
    # Their 500s were recorded as failed attempts (unless a kill cut the recording off).
    assert sum(by_id[m].attempts >= 3 for m in refused) >= len(refused) - KILLS
    assert "sent nm-" in out and "outbox: " in out
    shown = subprocess.run(
        [str(CONTENTGEN), "deliveries", "--state", "failing", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(shown.stdout)
    assert report["deliveries"] == [] and report["counts"]["sent"] == approved
    print(
        f"{approved} versions, {KILLS} kills, held at kills {held_at_kills} "
        f"(sum {sum(held_at_kills)}), repeats {cms.repeats}, refused {len(refused)} ids, "
        f"{elapsed:.1f} s (kills {killed_s:.1f} s; generating and approving {prepared_s:.1f} s)"
    )
