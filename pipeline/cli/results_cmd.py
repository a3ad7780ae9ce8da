"""``contentgen results``: the generated texts, with their article, numbers and cost.

``contentgen results`` lists (or exports) the latest generation per (article, task);
``contentgen results show ARTICLE_ID`` prints one article's full texts. The queries are in
``pipeline.reports.results``; this module parses options and renders.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

import typer
from rich.table import Table

from pipeline.cli.common import (
    check_task_names,
    console,
    err_console,
    handle_errors,
    joined_tasks,
    open_db,
    print_json,
    run_id_of,
)
from pipeline.errors import InputError
from pipeline.reports import (
    CSV_COLUMNS,
    FAILED_COLUMNS,
    FailedJob,
    ResultFilter,
    ResultRow,
    article_exists,
    body_text,
    check_statuses,
    failed_jobs,
    failed_markdown,
    generations,
    markdown,
    numbers_line,
    parse_when,
    total_cost,
    usd_places,
    usd_text,
    write_csv,
    write_jsonl,
)
from pipeline.settings import Settings, get_settings

# `contentgen demo` leaves this file behind in the working directory.
DEMO_DATABASE = Path("contentgen-demo.db")
_DEFAULT_DATABASE = Path("contentgen.db")
_MIN_TEXT_WIDTH = 40
# On a narrow terminal these columns go first, so the text keeps some room.
_DROP_ORDER = ("cached", "created (UTC)", "model", "out", "in", "status")


class Format(StrEnum):
    """How results are written."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"
    markdown = "markdown"


_SUFFIXES = {
    ".csv": Format.csv,
    ".jsonl": Format.jsonl,
    ".json": Format.jsonl,
    ".md": Format.markdown,
    ".markdown": Format.markdown,
}

results_app = typer.Typer(
    help="The generated texts with their article, model, tokens and cost: list, export, "
    "show one article.\n\n"
    "Example: `contentgen results --tasks headline --format csv -o headlines.csv`",
)


def _say(text: str, *, err: bool = False) -> None:
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


def _settings() -> Settings:
    """The settings, reading ``contentgen demo``'s database when none is configured.

    Right after `contentgen demo` the only database in the directory is the demo's; without
    CONTENTGEN_DATABASE_URL and without ./contentgen.db, that is the one to read (said on
    stderr), instead of an error about an empty default database.
    """
    settings = get_settings()
    if (
        "database_url" not in settings.model_fields_set
        and not _DEFAULT_DATABASE.exists()
        and DEMO_DATABASE.exists()
    ):
        _say(f"reading the demo database {DEMO_DATABASE} (no {_DEFAULT_DATABASE} here)", err=True)
        return settings.model_copy(update={"database_url": f"sqlite:///{DEMO_DATABASE}"})
    return settings


def _tasks(values: list[str], settings: Settings) -> tuple[str, ...]:
    tasks = tuple(joined_tasks(values))
    if tasks:
        check_task_names(settings, tasks)
    return tasks


def _format(fmt: Format | None, as_json: bool, output: Path | None) -> Format:
    if as_json:
        return Format.jsonl
    if fmt is not None:
        if fmt is Format.table and output is not None:
            raise InputError("--output writes csv, jsonl or markdown, not a table")
        return fmt
    if output is not None:
        by_suffix = _SUFFIXES.get(output.suffix.lower())
        if by_suffix is None:
            raise InputError(
                f"--output {output}: say --format csv, jsonl or markdown (or name the file "
                ".csv, .jsonl or .md)"
            )
        return by_suffix
    return Format.table if console.is_terminal else Format.jsonl


@contextmanager
def _destination(output: Path | None) -> Iterator[TextIO]:
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as stream:
            yield stream
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror}") from exc


def _cells(row: ResultRow, places: int) -> dict[str, str]:
    return {
        "article": row.source_id,
        "task": row.task,
        "status": row.status,
        "model": row.model,
        "in": f"{row.input_tokens:,}",
        "cached": f"{row.cached_tokens:,}",
        "out": f"{row.output_tokens:,}",
        "cost $": usd_text(row.cost_usd, places),
        "created (UTC)": f"{row.created_at:%Y-%m-%d %H:%M}",
    }


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def print_results_table(rows: list[ResultRow], width: int) -> None:
    """A table with the text cut to fit ``width``; narrow terminals lose columns first."""
    places = usd_places(r.cost_usd for r in rows)
    cells = [_cells(r, places) for r in rows]
    headers = list(cells[0])
    widths = {h: max(len(h), *(len(c[h]) for c in cells)) for h in headers}
    shown = list(headers)

    def room() -> int:
        # Each column costs its width plus 3 (borders and padding); the text column too.
        return width - sum(widths[h] + 3 for h in shown) - 4

    for name in _DROP_ORDER:
        if room() >= _MIN_TEXT_WIDTH:
            break
        shown.remove(name)
    text_width = max(room(), 10)
    table = Table(title=None)
    right = {"in", "cached", "out", "cost $"}
    for h in shown:
        table.add_column(h, justify="right" if h in right else "left", no_wrap=True)
    table.add_column("text", no_wrap=True, overflow="ellipsis", max_width=text_width)
    for row, cell in zip(rows, cells, strict=True):
        table.add_row(*(cell[h] for h in shown), _clip(body_text(row), text_width))
    console.print(table)


def print_failed_table(rows: list[FailedJob], width: int) -> None:
    """Failed jobs with their last error cut to fit ``width``."""
    table = Table()
    for h in ("article", "task", "attempts", "failed at (UTC)"):
        table.add_column(h, no_wrap=True, justify="right" if h == "attempts" else "left")
    used = sum(
        max(len(h), *(len(v) for v in values)) + 3
        for h, values in (
            ("article", [r.source_id for r in rows]),
            ("task", [r.task for r in rows]),
            ("attempts", [str(r.attempts) for r in rows]),
            ("failed at (UTC)", ["0000-00-00 00:00"]),
        )
    )
    error_width = max(width - used - 4, 10)
    table.add_column("last error", no_wrap=True, overflow="ellipsis", max_width=error_width)
    for r in rows:
        table.add_row(
            r.source_id,
            r.task,
            str(r.attempts),
            f"{r.updated_at:%Y-%m-%d %H:%M}",
            _clip(r.last_error or "-", error_width),
        )
    console.print(table)


@results_app.callback(invoke_without_command=True)
@handle_errors
def results_cmd(
    ctx: typer.Context,
    batch: str | None = typer.Option(
        None, "--batch", "-b", help="Only jobs with this batch label."
    ),
    tasks: list[str] = typer.Option(
        [], "--tasks", "-t", help="Only these tasks (a,b; repeatable)."
    ),
    task_alias: list[str] = typer.Option([], "--task", hidden=True),  # the first spelling
    articles: list[str] = typer.Option(
        [], "--article", help="Only this article, by its external id (repeatable)."
    ),
    run: str | None = typer.Option(
        None, "--run", help="Only generations of this run: a run id or `last`."
    ),
    states: list[str] = typer.Option(
        [],
        "--state",
        help="Only generations with this status: completed, incomplete or failed (repeatable).",
    ),
    since: str | None = typer.Option(
        None, "--since", help="Generated from: YYYY-MM-DD, YYYY-MM-DDTHH:MM, today, 7d (UTC)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Generated up to: a day (inclusive) or a time (UTC)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many rows."),
    history: bool = typer.Option(
        False, "--all", help="Every generation (history), not only the latest per task."
    ),
    failed: bool = typer.Option(
        False, "--failed", help="List failed jobs with their last error and attempts instead."
    ),
    fmt: Format | None = typer.Option(
        None,
        "--format",
        help="table, jsonl, csv or markdown (default: from --output's name, else a table on "
        "a terminal and JSON Lines when piped).",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", dir_okay=False, help="Write to this file instead of stdout."
    ),
    as_json: bool = typer.Option(False, "--json", help="Same as --format jsonl."),
) -> None:
    """List or export the generated texts: latest per (article, task), or --all.

    "Latest" is the newest successful generation, else the newest attempt. --run, --since
    and --until choose which generations count; --state filters by generation status.
    CSV and JSON Lines carry the full text, tokens (input, cached, cache writes, output,
    reasoning) and exact cost in USD; Markdown is one document with a heading per article.

    Example: `contentgen results --batch evening --format markdown -o evening.md`
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    task_list = _tasks([*tasks, *task_alias], settings)
    check_statuses(states)
    today = dt.datetime.now(dt.UTC).date()
    kind = _format(fmt, as_json, output)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session:
            flt = ResultFilter(
                batch_label=batch,
                tasks=task_list,
                articles=tuple(articles),
                run_id=run_id_of(session, run),
                statuses=tuple(states),
                since=parse_when(since, end=False, today=today) if since else None,
                until=parse_when(until, end=True, today=today) if until else None,
                limit=limit,
                history=history,
            )
            if failed:
                failures = failed_jobs(session, flt)
            else:
                rows = generations(session, flt)
    finally:
        engine.dispose()
    if failed:
        _emit_failed(failures, flt, kind, output)
    else:
        _emit(rows, flt, kind, output)


def _empty(what: str, flt: ResultFilter, kind: Format) -> None:
    # On stderr when stdout is data, so an export of nothing stays a valid (empty) file.
    _say(f"no {what} match ({flt.describe()})", err=kind is not Format.table)


def _emit(rows: list[ResultRow], flt: ResultFilter, kind: Format, output: Path | None) -> None:
    _export(
        rows,
        flt,
        kind,
        output,
        noun="generation(s)",
        print_table=print_results_table,
        columns=CSV_COLUMNS,
        markdown_of=markdown,
        footer=(
            f"{len(rows):,} generation(s), ${usd_text(total_cost(rows))}\n"
            "full texts: `contentgen results show ID` or --format csv"
        ),
    )


def _emit_failed(
    rows: list[FailedJob], flt: ResultFilter, kind: Format, output: Path | None
) -> None:
    _export(
        rows,
        flt,
        kind,
        output,
        noun="failed job(s)",
        print_table=print_failed_table,
        columns=FAILED_COLUMNS,
        markdown_of=failed_markdown,
        footer=f"{len(rows):,} failed job(s). Again: `contentgen jobs requeue --failed`",
    )


def _export(
    rows: Sequence[Any],
    flt: ResultFilter,
    kind: Format,
    output: Path | None,
    *,
    noun: str,
    print_table: Callable[[Any, int], None],
    columns: Sequence[str],
    markdown_of: Callable[[Any], str],
    footer: str,
) -> None:
    """``rows`` as a table on the terminal (then ``footer``), or as JSONL, CSV or Markdown to
    ``output`` or stdout; an empty result is one line."""
    if not rows:
        _empty(noun.replace("(s)", "s"), flt, kind)
        return
    if kind is Format.table:
        print_table(rows, console.width)
        for line in footer.splitlines():
            _say(line)
        return
    with _destination(output) as stream:
        if kind is Format.jsonl:
            write_jsonl(rows, stream)
        elif kind is Format.csv:
            write_csv(rows, stream, list(columns))
        else:
            stream.write(markdown_of(rows))
    if output is not None:
        _say(f"wrote {len(rows):,} {noun} to {output} ({kind.value})", err=True)


@results_app.command("show")
@handle_errors
def show_cmd(
    article: str | None = typer.Argument(
        None, metavar="ARTICLE_ID", help="The article's external id.", show_default=False
    ),
    job: int | None = typer.Option(None, "--job", help="A job id instead of an article."),
    history: bool = typer.Option(False, "--all", help="Every generation, oldest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Print the full texts of one article (each task's latest, or --all) with their numbers.

    Example: `contentgen results show a-1042`
    """
    if (article is None) == (job is None):
        raise InputError("say which: ARTICLE_ID or --job ID")
    settings = _settings()
    flt = ResultFilter(articles=(article,) if article else (), job_id=job, history=history)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session:
            rows = generations(session, flt)
            if not rows and article is not None and not article_exists(session, article):
                raise InputError(f"no article with external id {article!r}")
    finally:
        engine.dispose()
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    if not rows:
        _say(f"no generations yet ({flt.describe()})")
        return
    first = rows[0]
    _say(first.title)
    _say(f"article {first.source_id}" + (f" · {first.url}" if first.url else ""))
    for row in rows:
        console.rule(f"{row.task}", style="dim")
        _say(numbers_line(row))
        _say("")
        _say(body_text(row))
    console.rule(style="dim")
    _say(f"{len(rows):,} generation(s), ${usd_text(total_cost(rows))}")


def register(app: typer.Typer) -> None:
    """Add ``results`` to ``app``."""
    app.add_typer(results_app, name="results")
