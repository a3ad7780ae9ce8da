"""Engines and sessions for SQLite and PostgreSQL, and the schema-revision check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import DatabaseError

# The driver of postgresql:// URLs is an extra (pyproject.toml), not a dependency.
POSTGRES_EXTRA = "pip install 'contentgen[postgres]'"
MISSING_DRIVER = (
    f"PostgreSQL URLs need the psycopg driver, which is not installed: {POSTGRES_EXTRA}"
)


# The databases the claims, migrations and views are written and tested for.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def is_sqlite(engine: Engine) -> bool:
    """True for SQLite engines (claims and locking differ)."""
    return engine.dialect.name == "sqlite"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run during a write; busy_timeout waits for the write lock instead of
    # failing at once when several processes claim from one file.
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL itself may wait
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's implicit BEGIN is deferred; a claim needs the write lock from the start, and
    # BEGIN IMMEDIATE for every transaction keeps lock upgrades (and their deadlocks) away.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, a busy timeout and immediate transactions.

    A PostgreSQL URL without its driver installed is a ``DatabaseError`` naming the extra to
    install, here where the driver is imported, so the CLI and the flows both say it in one line.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"invalid database URL {url!r}: {exc}") from exc
    # postgres:// is what many hosts hand out (Heroku, Render, Supabase); SQLAlchemy knows
    # only postgresql://, and a bare postgresql:// would pick psycopg2, which we do not ship.
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        shown = parsed.render_as_string(hide_password=True)
        raise DatabaseError(
            f"CONTENTGEN_DATABASE_URL: {backend} is not supported ({shown}); use "
            "sqlite:///FILE or postgresql://USER@HOST/DATABASE"
        )
    if backend == "sqlite":
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    try:
        return create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:  # SQLAlchemy imports the dialect's driver here
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise DatabaseError(MISSING_DRIVER) from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (results are read after recording)."""
    return sessionmaker(engine, expire_on_commit=False)
