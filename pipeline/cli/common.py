"""What every CLI command shares: error printing, JSON output, opening the database."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import Run, check_label, make_engine, require_migrated, session_factory
from pipeline.errors import DatabaseError, InputError, PipelineError
from pipeline.prompts import Profile, load_profiles
from pipeline.reports import latest_run_id
from pipeline.settings import Settings, get_settings

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


def say(text: str, *, err: bool = False) -> None:
    """Print ``text`` as it is (no markup, no highlighting), on stderr with ``err``."""
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def database_errors() -> Iterator[None]:
    """A connection lost or a database locked mid-way as one ``DatabaseError`` line, not a
    traceback; what was committed before stays committed."""
    try:
        yield
    except OperationalError as exc:
        raise DatabaseError(f"database error: {exc.orig or exc}") from exc


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
        try:
            require_migrated(engine)
        except DatabaseError as exc:
            engine.dispose()
            if "not migrated" in str(exc) and DEMO_DATABASE.exists():
                # After `contentgen demo`, `db upgrade` would make a second, empty database.
                raise DatabaseError(
                    f"{exc}; or, for the demo's database here, set "
                    f"CONTENTGEN_DATABASE_URL=sqlite:///{DEMO_DATABASE}"
                ) from exc
            raise
    return engine, session_factory(engine)


def check_batch_label(settings: Settings, label: str | None) -> None:
    """Refuse a ``--batch`` label no job has ever carried (exit 2, listing the known ones):
    a typo would otherwise select nothing and look like a run with nothing to do."""
    if label is None:
        return
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            check_label(session, label)
    finally:
        engine.dispose()


# `contentgen demo` leaves this file behind in the working directory; the default database.
DEMO_DATABASE = Path("contentgen-demo.db")
DEFAULT_DATABASE = Path("contentgen.db")


def settings_reading_demo() -> Settings:
    """The settings, reading ``contentgen demo``'s database when none is configured.

    Right after `contentgen demo` the only database in the directory is the demo's; without
    CONTENTGEN_DATABASE_URL and without ./contentgen.db, that is the one to read (said on
    stderr), instead of an error advising `db upgrade`, which would create an empty one.
    """
    settings = get_settings()
    if (
        "database_url" not in settings.model_fields_set
        and not DEFAULT_DATABASE.exists()
        and DEMO_DATABASE.exists()
    ):
        say(f"reading the demo database {DEMO_DATABASE} (no {DEFAULT_DATABASE} here)", err=True)
        return settings.model_copy(update={"database_url": f"sqlite:///{DEMO_DATABASE}"})
    return settings


def say_which_database(settings: Settings) -> None:
    """After an empty result: which database was read (on stderr), and where the demo's texts
    are when ``contentgen-demo.db`` is here and was not the one read."""
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    line = f"(read {url})"
    if DEMO_DATABASE.exists() and DEMO_DATABASE.name not in settings.database_url:
        line += (
            f"; the demo's texts are in {DEMO_DATABASE}: "
            f"CONTENTGEN_DATABASE_URL=sqlite:///{DEMO_DATABASE} contentgen ..."
        )
    say(line, err=True)


def output_format(output: Path, suffixes: dict[str, str]) -> str:
    """The format an ``--output`` file's suffix names (one of ``suffixes``' values)."""
    found = suffixes.get(output.suffix.lower())
    if found is None:
        names = ", ".join(sorted(set(suffixes.values())))
        raise InputError(
            f"--output {output}: say --format ({names}) or name it {'/'.join(suffixes)}"
        )
    return found


@contextmanager
def stdout_to(output: Path | None) -> Iterator[None]:
    """Standard output as it is, or the file ``output`` in its place."""
    if output is None:
        yield
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as stream, redirect_stdout(stream):
            yield
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc


def split_tasks(tasks: str | None) -> list[str]:
    """``"summary, headline"`` -> ``["summary", "headline"]`` (empty items dropped)."""
    return [t.strip() for t in (tasks or "").split(",") if t.strip()]


def joined_tasks(values: Sequence[str]) -> list[str]:
    """A repeatable ``--tasks`` (``-t a,b -t c``) as one list, in order, repeats dropped."""
    return list(dict.fromkeys(t for value in values for t in split_tasks(value)))


def validate_task_names(names: Sequence[str], known: Sequence[str], where: str = "") -> None:
    """Refuse task names that no profile defines, before anything is read or sent.

    Raises one ``InputError`` line (exit 2 through ``handle_errors``) naming the unknown tasks
    and listing the known ones; ``where`` (e.g. the profiles file) is added when given. An
    empty ``names`` is accepted: callers treat it as "every task".
    """
    unknown = [name for name in names if name not in known]
    if unknown:
        source = f" in {where}" if where else ""
        raise InputError(
            f"unknown task(s) {', '.join(unknown)}: the known tasks{source} are "
            f"{', '.join(sorted(known))}"
        )


def check_task_names(settings: Settings, names: Sequence[str]) -> dict[str, Profile]:
    """The profiles of ``settings``' config, after refusing (``validate_task_names``) task
    names that none of them defines."""
    profiles = load_profiles(settings.config_dir)
    validate_task_names(names, list(profiles), str(settings.config_dir / "profiles.toml"))
    return profiles


def run_id_of(session: Session, run: str | None) -> int | None:
    """A ``--run`` value: a run id, or ``last`` for the newest run (None: no filter). A run
    that does not exist is an ``InputError`` (exit 2), in every command alike."""
    if run is None:
        return None
    if run.strip().lower() == "last":
        return latest_run_id(session)
    try:
        run_id = int(run)
    except ValueError:
        raise InputError(f"--run: not a run id: {run!r} (a number or `last`)") from None
    if session.get(Run, run_id) is None:
        raise InputError(f"no run with id {run_id}")
    return run_id
