"""Migrations bring a blank SQLite or PostgreSQL database to head, and agree with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from pipeline.db.engine import make_engine
from pipeline.db.migrate import (
    EXPRESSION_INDEXES,
    alembic_config,
    head_revision,
    include_object,
    require_migrated,
    upgrade,
)
from pipeline.db.models import Base
from pipeline.errors import DatabaseError


def assert_matches_models(url: str) -> None:
    """What `alembic check` does: autogenerate against the database finds nothing to do."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_object}
            )
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() == head_revision()
            tables = set(inspect(conn).get_table_names())
        assert set(Base.metadata.tables) <= tables
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("jobs")}
        assert indexes >= EXPRESSION_INDEXES
        require_migrated(engine)  # the check every command runs first
    finally:
        engine.dispose()
    command.check(alembic_config(url))  # and the real thing, through migrations/env.py


def test_blank_sqlite_upgrades_to_head(tmp_path: Path) -> None:
    """A new SQLite file reaches head and matches the models."""
    url = f"sqlite:///{tmp_path / 'blank.db'}"
    upgrade(url)
    assert_matches_models(url)


@pytest.mark.postgres
def test_blank_postgres_upgrades_to_head(blank_postgres_url: str) -> None:
    """A new PostgreSQL database reaches head and matches the models."""
    upgrade(blank_postgres_url)
    assert_matches_models(blank_postgres_url)


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    """Every revision can be undone and redone (SQLite's batch mode included)."""
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            assert set(inspector.get_table_names()) <= {"alembic_version"}
            assert inspector.get_view_names() == []
    finally:
        engine.dispose()
    upgrade(url)
    assert_matches_models(url)


def test_unmigrated_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A blank database gets one line telling the user to run `contentgen db upgrade`."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(DatabaseError, match="contentgen db upgrade"):
            require_migrated(engine)
    finally:
        engine.dispose()


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path) -> None:
    """Checking a SQLite database that does not exist leaves no empty file behind."""
    path = tmp_path / "missing.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with pytest.raises(DatabaseError, match=r"missing\.db is not migrated: run `contentgen db"):
            require_migrated(engine)
    finally:
        engine.dispose()
    assert list(tmp_path.iterdir()) == []
