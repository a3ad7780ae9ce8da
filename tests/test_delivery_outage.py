"""A watching deliverer rides out a PostgreSQL outage: it says so, waits, and goes on sending
what is approved after it, each version once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from pipeline.db import upgrade
from pipeline.delivery import deliver
from tests.delivery_support import approve_all, generate, outbox, receiver
from tests.test_delivery import webhook_settings

pytestmark = pytest.mark.postgres


def _admin_sql(admin_url: str, *statements: str) -> None:
    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True, connect_timeout=3) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_a_watching_deliverer_rides_out_a_database_outage(
    blank_postgres_url: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    """Connections refused and cut for a while: the deliverer notes the error, keeps
    running, and delivers the approvals made after the database is back; no repeats."""
    upgrade(blank_postgres_url)
    settings = generate(blank_postgres_url, tmp_path, n=4, tasks=("summary", "headline"))
    name = make_url(blank_postgres_url).database
    notes: list[str] = []
    stop = threading.Event()
    with receiver() as cms:
        hook = webhook_settings(settings, cms.url)
        worker = threading.Thread(
            target=deliver,
            args=(hook,),
            kwargs={"watch": True, "poll_s": 0.05, "stop": stop, "on_note": notes.append},
        )
        worker.start()
        try:
            time.sleep(0.5)  # watching an empty outbox
            _admin_sql(
                postgres_admin_url,
                f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
            )
            _until(lambda: bool(notes))
            time.sleep(1.0)
            _admin_sql(postgres_admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            approved = approve_all(blank_postgres_url)
            _until(lambda: len(cms.processed) == approved)
        finally:
            stop.set()
            _admin_sql(postgres_admin_url, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            worker.join(timeout=30)
    assert not worker.is_alive()
    assert approved == 8 and cms.repeats == 0 and cms.bad_signatures == 0
    assert "database error" in notes[0] and "trying again" in notes[0]
    assert {r.state for r in outbox(blank_postgres_url)} == {"sent"}
