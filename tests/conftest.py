"""Fixtures shared by every test: databases (SQLite always, PostgreSQL when reachable), settings.

``database_url`` runs a test twice, on a fresh migrated SQLite file and on a scratch PostgreSQL
database. The PostgreSQL database (``contentgen_test_<pid>``) is created once per session next
to the maintenance database at ``CONTENTGEN_TEST_PG_URL`` (default: ``test`` or ``postgres`` on
127.0.0.1:5432), migrated to head, emptied before each test and dropped at the end; no other
database is touched. When PostgreSQL cannot be reached those tests are skipped, unless
``CI=true``, where they fail.

Tests run offline: tiktoken's cache and Prefect's home are session folders set here, before
anything imports them. No test writes to the user's cache folder: ``XDG_CACHE_HOME`` is a
session folder, and a fresh one per test (``CONTENTGEN_CACHE_DIR`` unset) for the default
location of the response cache.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="contentgen-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ["TIKTOKEN_CACHE_DIR"] = str(_SESSION_DIR / "tiktoken")
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["XDG_CACHE_HOME"] = str(_SESSION_DIR / "xdg-cache")
os.environ["XDG_STATE_HOME"] = str(_SESSION_DIR / "xdg-state")  # the journal of paid results
# pytest-xdist hands its workers COLUMNS=80, which rich's consoles would fix as their width when
# first imported; the tests set COLUMNS themselves where a width matters, as in a serial run.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)

import psycopg  # noqa: E402  (the environment above must be set before these imports)
import pytest  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from pipeline.db.engine import make_engine, session_factory  # noqa: E402
from pipeline.db.migrate import upgrade  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "config"
PG_URL_ENV = "CONTENTGEN_TEST_PG_URL"
_DEFAULT_PG_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string (psycopg does not know ``+psycopg``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    return (
        make_url(url)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(_libpq(url), autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of a maintenance database where scratch databases may be created.

    Skips (fails when ``CI=true``) if PostgreSQL is unreachable; the outcome is cached for
    the session, so an absent server costs one timeout, not one per test.
    """
    candidates = [os.environ[PG_URL_ENV]] if os.environ.get(PG_URL_ENV) else _DEFAULT_PG_URLS
    errors = []
    for url in candidates:
        try:
            with _admin(url):
                return url
        except psycopg.Error as exc:
            errors.append(f"{make_url(url).render_as_string()}: {str(exc).strip()}")
    reason = f"PostgreSQL unreachable ({'; '.join(errors)}); set {PG_URL_ENV}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true requires PostgreSQL: {reason}")
    pytest.skip(reason)


def _create_database(admin_url: str, name: str) -> str:
    with _admin(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a crashed run's leftover
        conn.execute(f'CREATE DATABASE "{name}"')
    return _with_database(admin_url, name)


def _drop_database(admin_url: str, name: str) -> None:
    with _admin(admin_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _postgres_database(postgres_admin_url: str) -> Iterator[str]:
    """This session's scratch database, migrated to head once; dropped at the end."""
    name = f"contentgen_test_{os.getpid()}"
    url = _create_database(postgres_admin_url, name)
    try:
        upgrade(url)
        yield url
    finally:
        _drop_database(postgres_admin_url, name)


def _truncate_all(url: str) -> None:
    with psycopg.connect(_libpq(url), autocommit=True, connect_timeout=3) as conn:
        # A test that left a transaction open would make TRUNCATE wait forever; fail instead.
        conn.execute("SET lock_timeout = '10s'")
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture
def blank_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """An empty (never migrated) scratch PostgreSQL database, dropped after the test."""
    name = f"contentgen_test_{os.getpid()}_blank"
    url = _create_database(postgres_admin_url, name)
    try:
        yield url
    finally:
        _drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    # Fold the WAL into the main file so that copying one file copies everything. The file
    # stays in WAL mode, like every database `contentgen db upgrade` makes: switching modes
    # needs an exclusive lock, which processes opening a copy at once would fight over.
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """URL of a fresh SQLite file migrated to head (for tests that need only SQLite)."""
    path = tmp_path / "contentgen.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: a SQLite file, then a PostgreSQL scratch database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    url = str(request.getfixturevalue("_postgres_database"))
    _truncate_all(url)
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on ``database_url``, disposed after the test."""
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """The session factory production code uses, bound to ``engine``."""
    return session_factory(engine)


@pytest.fixture(autouse=True)
def _private_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The default response cache of each test is a fresh folder, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.delenv("CONTENTGEN_CACHE_DIR", raising=False)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings pointing at ``database_url``, the repository's config/ and a private cache."""
    return Settings(database_url=database_url, config_dir=CONFIG_DIR, cache_dir=tmp_path / "cache")


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, bytes | str], Path]:
    """Write bytes (or UTF-8 text) to a file in ``tmp_path`` and return its path."""

    def write(name: str, content: bytes | str) -> Path:
        path = tmp_path / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """``contentgen`` run in process on the test database and the repository's config: call it
    with the arguments, get typer's ``Result``. A test module may define its own ``cli``."""
    from typer.testing import CliRunner

    from pipeline.cli.main import app
    from pipeline.settings import get_settings

    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", database_url)
    monkeypatch.setenv("CONTENTGEN_CONFIG_DIR", str(CONFIG_DIR))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()
