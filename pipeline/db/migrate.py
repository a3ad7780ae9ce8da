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


# Indexes with an ordering expression: SQLite reflects them without it, so Alembic's
# comparison would report a difference that is not there. They are checked by name only.
EXPRESSION_INDEXES = frozenset({"ix_jobs_claim"})


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, other: object
) -> bool:
    """Alembic ``include_object`` hook: leave expression indexes out of autogenerate diffs."""
    return not (type_ == "index" and name in EXPRESSION_INDEXES)
