"""The schema's migrations: running them from code (``contentgen db upgrade``, tests) and
checking that a database is at the revision this code expects."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import OperationalError

from pipeline.errors import DatabaseError

if TYPE_CHECKING:
    from alembic.config import Config

# pipeline/data/migrations: a link to the checkout's migrations/, real files in a wheel.
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "data" / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the shipped migrations (and at ``url`` when given)."""
    from alembic.config import Config  # Alembic is loaded only when migrating

    # Alembic's default stdout is the one of its import time, which may be long closed.
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision``."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


# Indexes with an ordering expression: SQLite reflects them without it, so Alembic's
# comparison would report a difference that is not there. They are checked by name only.
EXPRESSION_INDEXES = frozenset({"ix_jobs_claim"})


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, other: object
) -> bool:
    """Alembic ``include_object`` hook: leave expression indexes out of autogenerate diffs."""
    return not (type_ == "index" and name in EXPRESSION_INDEXES)


_REVISION = re.compile(r"^revision(?:: *str)? *= *['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\b[^=]*=(.*)$", re.M)


def head_revision() -> str:
    """The newest Alembic revision shipped with this code.

    Read from the revision files' ``revision`` and ``down_revision`` lines (the revision no
    other names as its parent), without loading Alembic, which every command would otherwise
    pay for at start-up; Alembic itself answers when the files do not give one head.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found, down = _REVISION.search(text), _DOWN.search(text)
        if found is None or down is None:
            return _alembic_head()
        revisions.add(found.group(1))
        parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _missing_sqlite_file(engine: Engine) -> bool:
    """True for a SQLite file database whose file does not exist (yet)."""
    url = engine.url
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or "uri" in url.query:
        return False
    return not name.startswith("file:") and not Path(name).exists()


def require_migrated(engine: Engine) -> None:
    """Raise one clear ``DatabaseError`` if the database is unreachable or not at head.

    A SQLite file that does not exist is refused without connecting: connecting would leave an
    empty database file behind (and ``contentgen results`` would then read it instead of the
    demo's database).
    """
    url = engine.url.render_as_string(hide_password=True)
    if _missing_sqlite_file(engine):
        raise DatabaseError(f"database {url} is not migrated: run `contentgen db upgrade`")
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                raise DatabaseError(f"database {url} is not migrated: run `contentgen db upgrade`")
            current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except OperationalError as exc:
        raise DatabaseError(f"cannot connect to database {url}: {exc.orig}") from exc
    if current != head_revision():
        raise DatabaseError(
            f"database {url} is at revision {current}, code expects {head_revision()}: "
            "run `contentgen db upgrade`"
        )
