"""``contentgen cache``: what the local response cache holds, per endpoint and account; clear it."""

from __future__ import annotations

from enum import StrEnum

import typer
from rich.table import Table

from pipeline.cli.common import JSON_OPTION, console, handle_errors, print_json, say
from pipeline.client import ScopeEntries, cache_stats, clear_cache, current_cache_scope
from pipeline.errors import ConfigError
from pipeline.settings import get_settings

cache_app = typer.Typer(
    help="The local response cache (CONTENTGEN_CACHE_DIR): entries per endpoint and account; "
    "clear them.\n\nExample: `contentgen cache stats`",
    no_args_is_help=True,
)


class Scope(StrEnum):
    """Which scope `cache clear --scope` means."""

    current = "current"


def _size_text(size_bytes: int) -> str:
    size = float(size_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _scope_table(title: str, scopes: tuple[ScopeEntries, ...]) -> Table:
    table = Table(title=title)
    table.add_column("endpoint", no_wrap=True)
    table.add_column("account")
    table.add_column("entries", justify="right")
    for s in scopes:
        if s.scope is None:
            table.add_row("(no scope: old v1 entries, never served)", "-", f"{s.entries:,}")
        else:
            table.add_row(s.scope.endpoint, s.scope.fingerprint, f"{s.entries:,}")
    return table


@cache_app.command("stats")
@handle_errors
def stats(as_json: bool = JSON_OPTION) -> None:
    """Where the response cache is, its entries and size on disk, and entries per scope.

    A scope is the endpoint (OPENAI_BASE_URL) and the account (the first
    8 hex digits of a hash of the organization and project, else of the
    API key): an answer is only ever served within its scope.

    Example: `contentgen cache stats --json`
    """
    found = cache_stats(get_settings().cache_dir)
    if as_json:
        print_json(found.as_dict())
        return
    say(f"Response cache: {found.directory}" + ("" if found.exists else " (not created yet)"))
    say(f"{found.entries:,} entries, {_size_text(found.size_bytes)} on disk")
    if found.scopes:
        console.print(_scope_table("Entries per scope", found.scopes))


@cache_app.command("clear")
@handle_errors
def clear(
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="Only the entries of this base URL (every account)."
    ),
    scope: Scope | None = typer.Option(
        None,
        "--scope",
        help="current: only the entries of the endpoint and account a run would use now "
        "(OPENAI_BASE_URL, OPENAI_API_KEY or OPENAI_ORG_ID/OPENAI_PROJECT_ID).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove the response cache's entries (all of them by default), without asking.

    Prints what it removed, per scope. Later runs pay for these requests again.

    Example: `contentgen cache clear --endpoint http://127.0.0.1:8000/v1`
    """
    if endpoint is not None and scope is not None:
        raise ConfigError("give --endpoint or --scope, not both")
    settings = get_settings()
    current = current_cache_scope(settings) if scope is Scope.current else None
    removed = clear_cache(settings.cache_dir, endpoint=endpoint, scope=current)
    total = sum(s.entries for s in removed)
    if as_json:
        print_json(
            {
                "directory": str(settings.cache_dir),
                "removed": total,
                "scopes": [s.as_dict() for s in removed],
            }
        )
        return
    which = (
        f" of {endpoint}" if endpoint is not None else " of the current scope" if current else ""
    )
    say(f"Removed {total:,} entries{which} from {settings.cache_dir}.")
    if removed:
        console.print(_scope_table("Removed per scope", removed))


def register(app: typer.Typer) -> None:
    """Add the ``cache`` command group to ``app``."""
    app.add_typer(cache_app, name="cache")
