"""Running the Alembic migrations from code (``contentgen db upgrade``, tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from pipeline.db.engine import MIGRATIONS_DIR


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations (and at ``url`` when given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)
