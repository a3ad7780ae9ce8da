"""The ``contentgen`` command: a thin layer over the library (each module registers commands)."""

from __future__ import annotations

import os
import sys
from importlib import metadata

import typer

from pipeline.cli import (
    alerts_cmd,
    batches_cmd,
    cache_cmd,
    db_cmd,
    deliver_cmd,
    demo_cmd,
    desk_cmd,
    enqueue_cmd,
    init_cmd,
    jobs_cmd,
    prices_cmd,
    profiles_cmd,
    report_cmd,
    results_cmd,
    review_cmd,
    run_cmd,
    serve_cmd,
    simulate_cmd,
)
from pipeline.db import MISSING_DRIVER

app = typer.Typer(
    name="contentgen",
    help=(
        "ContentGen: batch content generation with the OpenAI Responses API.\n\n"
        "Typical night: `contentgen enqueue articles.jsonl --tasks summary,headline`, then "
        "`contentgen run`. Try it offline with `contentgen demo`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (
    db_cmd,
    enqueue_cmd,
    jobs_cmd,
    run_cmd,
    batches_cmd,
    demo_cmd,
    simulate_cmd,
    init_cmd,
    prices_cmd,
    profiles_cmd,
    report_cmd,
    results_cmd,
    review_cmd,
    desk_cmd,
    deliver_cmd,
    cache_cmd,
    serve_cmd,
    alerts_cmd,
):
    module.register(app)


def _version(value: bool) -> None:
    if value:
        print(f"contentgen {metadata.version('contentgen')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
) -> None:
    pass


def usage_line(exc: typer.TyperException) -> str:
    """A usage error as one line: what is wrong, and where the command's help is."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "contentgen"
    return f"error: {message} (see `{path} --help`)"


def main(argv: list[str] | None = None) -> int:
    """The ``contentgen`` console script: the Typer app with usage errors (missing argument,
    unknown option, bad value) as one line on stderr with exit 2 instead of Rich's boxed
    panel. A missing PostgreSQL driver is a ``DatabaseError`` from ``make_engine``, printed by
    each command's ``handle_errors``; the same line is printed here should psycopg be imported
    anywhere else."""
    try:
        result = app(args=argv, prog_name="contentgen", standalone_mode=False)
    except typer.TyperException as exc:  # Typer's own copy of Click's exceptions
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr)  # `contentgen` alone: the help
        else:
            print(usage_line(exc), file=sys.stderr)
        return exc.exit_code
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `contentgen results | head`: the reader has what it wanted. Quietly, and with no
        # second error when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit as exc:
        # Click turns a broken pipe into exit 1 after wrapping stdout to silence the flush;
        # for `| head` that is success, not an error.
        if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            return 0
        raise
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        print(f"error: {MISSING_DRIVER}", file=sys.stderr)
        return 2
    # Without standalone mode Click returns a command's exit code (typer.Exit) or its value.
    return result if isinstance(result, int) else 0
