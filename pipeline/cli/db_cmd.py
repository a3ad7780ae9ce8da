"""``contentgen db``: bring the database to the newest schema and the prices up to date."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.cli.common import DEMO_DATABASE, JSON_OPTION, handle_errors, print_json, say
from pipeline.db import head_revision, make_engine, session_factory, sync_prices, upgrade
from pipeline.errors import DatabaseError
from pipeline.money import load_pricing
from pipeline.settings import get_settings

db_app = typer.Typer(
    help="Create and upgrade the job database.\n\nExample: `contentgen db upgrade`",
    no_args_is_help=True,
)


def _display_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None for a blank database)."""
    try:
        with engine.connect() as conn:
            from alembic.migration import MigrationContext  # only this command needs it here

            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise DatabaseError(f"cannot connect to database {_display_url(engine)}: {reason}") from exc


@db_app.command("upgrade")
@handle_errors
def upgrade_cmd(json_out: bool = JSON_OPTION) -> None:
    """Migrate the database to the newest schema, then add new prices from pricing.toml.

    The database is CONTENTGEN_DATABASE_URL (default: contentgen.db here).
    Running it again is harmless. Stored prices are never changed: a new
    price needs a new effective_date in pricing.toml.

    Example: `CONTENTGEN_DATABASE_URL=postgresql://me@dbhost/cg contentgen db upgrade`
    """
    settings = get_settings()
    # Validate the price file before touching the database, so a typo changes nothing.
    table = load_pricing(settings.config_dir / "pricing.toml")
    engine = make_engine(settings.database_url)
    try:
        url = _display_url(engine)
        before = current_revision(engine)
        try:
            upgrade(settings.database_url)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise DatabaseError(f"migrating {url} failed: {reason}") from exc
        after = current_revision(engine)
        with session_factory(engine)() as session:
            added = sync_prices(session, table)
    finally:
        engine.dispose()
    result = {
        "database": url,
        "revision_before": before,
        "revision": after,
        "prices_added": added,
    }
    if json_out:
        print_json(result)
        return
    if before == after:
        say(f"{url}: already at revision {after} (head)")
    else:
        say(f"{url}: upgraded from {before or 'a blank database'} to {after} (head)")
    say(f"prices: {added} added from {settings.config_dir / 'pricing.toml'}")
    if before is None and DEMO_DATABASE.exists() and DEMO_DATABASE.name not in url:
        # After `contentgen demo`, this new database is empty; the demo's texts are elsewhere.
        say(
            f"note: {url} is a new, empty database; the demo's texts are in {DEMO_DATABASE}: "
            f"CONTENTGEN_DATABASE_URL=sqlite:///{DEMO_DATABASE} contentgen results",
            err=True,
        )


@db_app.command("current")
@handle_errors
def current_cmd(json_out: bool = JSON_OPTION) -> None:
    """Show the database's schema revision and whether it needs `contentgen db upgrade`.

    Example: `contentgen db current --json`
    """
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        revision = current_revision(engine)
        url = _display_url(engine)
    finally:
        engine.dispose()
    head = head_revision()
    result: dict[str, Any] = {
        "database": url,
        "revision": revision,
        "head": head,
        "up_to_date": revision == head,
    }
    if json_out:
        print_json(result)
    elif revision == head:
        say(f"{url}: at revision {revision} (head)")
    else:
        say(
            f"{url}: at revision {revision or 'none (blank)'}, code expects {head}: "
            "run `contentgen db upgrade`"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(db_app, name="db")
