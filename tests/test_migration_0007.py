"""Migration 0007 on a database with history: outputs stored before it keep working, are not
stale, and are superseded only when their article changed since."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from pipeline.db import make_engine, upgrade
from pipeline.db.migrate import alembic_config


def _with_history(url: str) -> None:
    """A database at 0006 with two articles, a summary each; the second corrected since."""
    command.upgrade(alembic_config(url), "0006")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for n, (article_hash, job_hash) in enumerate((("h1", "h1"), ("h2-new", "h2")), 1):
                conn.execute(
                    text(
                        "INSERT INTO articles (id, source_id, title, body, content_hash, "
                        "created_at, updated_at) VALUES (:n, :s, 'T', 'B', :h, "
                        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"n": n, "s": f"a{n}", "h": article_hash},
                )
                conn.execute(
                    text(
                        "INSERT INTO jobs (id, article_id, task, state, priority, attempts, "
                        "content_hash, created_at, updated_at) VALUES (:n, :n, 'summary', "
                        "'succeeded', 0, 1, :h, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"n": n, "h": job_hash},
                )
                conn.execute(
                    text(
                        "INSERT INTO generations (id, job_id, task, status, request_model, "
                        "output_text, input_tokens, cached_tokens, output_tokens, "
                        "reasoning_tokens, cost_usd, list_cost_usd, price_tier, attempts, "
                        "from_cache, created_at) VALUES (:n, :n, 'summary', 'completed', "
                        "'gpt-4.1-mini', 'old text', 10, 0, 5, 0, 1, 1, 'standard', 1, "
                        ":f, CURRENT_TIMESTAMP)"
                    ),
                    {"n": n, "f": False},
                )
    finally:
        engine.dispose()


def _check_upgraded(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT source_id, version, review_state, superseded FROM v_outputs "
                    "ORDER BY source_id"
                )
            ).all()
            current = conn.execute(text("SELECT source_id FROM v_current_outputs")).all()
            latest = conn.execute(text("SELECT source_id FROM v_latest_generations")).all()
            checks = conn.execute(text("SELECT count(*) FROM v_check_results")).scalar_one()
    finally:
        engine.dispose()
    assert [(r[0], r[1], r[2], bool(r[3])) for r in rows] == [
        ("a1", "summary@?", "pending", False),
        ("a2", "summary@?", "superseded", True),
    ]
    assert [r[0] for r in current] == [r[0] for r in latest] == ["a1"]
    assert checks == 0


def test_sqlite_history_reads_back_after_0007(tmp_path: Path) -> None:
    """On SQLite: old outputs get their job's content hash, no version, review state pending."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _with_history(url)
    _check_upgraded(url)


@pytest.mark.postgres
def test_postgres_history_reads_back_after_0007(blank_postgres_url: str) -> None:
    """The same on PostgreSQL."""
    _with_history(blank_postgres_url)
    _check_upgraded(blank_postgres_url)
