"""What every CLI command shares: error printing, JSON output, opening the database."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db.engine import make_engine, require_migrated, session_factory
from pipeline.errors import PipelineError
from pipeline.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")

console = Console()
err_console = Console(stderr=True)

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print a ``PipelineError`` as one line on stderr and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PipelineError as exc:
            # Messages quote config text such as [models."gpt-5"]: print it, not as markup.
            message = escape(" ".join(str(exc).splitlines()))
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def print_json(data: Any) -> None:
    """Write ``data`` as JSON on stdout (Decimals as strings, dates as ISO 8601)."""
    sys.stdout.write(json.dumps(data, default=_default, indent=2) + "\n")


def open_db(settings: Settings, *, check: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for the configured database, checked to be migrated."""
    engine = make_engine(settings.database_url)
    if check:
        require_migrated(engine)
    return engine, session_factory(engine)
