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
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import typer

from pipeline.cli.common import (
    check_batch_label,
    check_task_names,
    console,
    err_console,
    handle_errors,
    joined_tasks,
    open_db,
    print_json,
    run_id_of,
    say_which_database,
    settings_reading_demo,
)
from pipeline.cli.result_tables import print_failed_table, print_results_table
from pipeline.db import REASON_FILTERS, check_reason, has_jobs
from pipeline.errors import InputError
from pipeline.prompts import load_profiles
from pipeline.reports import (
    APPROVED_COLUMNS,
    CSV_COLUMNS,
    FAILED_COLUMNS,
    PUBLISHABLE,
    FailedJob,
    ResultFilter,
    ResultRow,
    article_exists,
    body_text,
    check_review_states,
    check_statuses,
    failed_jobs,
    failed_markdown,
    generations,
    markdown,
    numbers_line,
    parse_when,
    review_line,
    shown_text,
    total_cost,
    usd_shown,
    write_csv,
    write_jsonl,
)
from pipeline.settings import Settings


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
        False,
        "--all",
        help="Every generation (history, superseded and retried ones too), not only the "
        "current one per task.",
    ),
    review: list[str] = typer.Option(
        [],
        "--review",
        help="Only outputs in this review state: pending, flagged, approved, edited, rejected, "
        "auto (repeatable).",
    ),
    approved: bool = typer.Option(
        False,
        "--approved",
        help="Only what may be published (approved or edited), with the editor's text, "
        "who signed it off and its provenance.",
    ),
    stale: bool = typer.Option(
        False,
        "--stale",
        help="Only outputs made under an older version of their profile (prompt, context, "
        "settings or checks changed since).",
    ),
    failed: bool = typer.Option(
        False,
        "--failed",
        help="List failed jobs (dead letters) with their reason, last error and attempts.",
    ),
    reason: str | None = typer.Option(
        None,
        "--reason",
        help="With --failed (implied): only jobs that failed for this reason: "
        + ", ".join(REASON_FILTERS)
        + ".",
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
    """List or export the generated texts: the current one per (article, task), or --all.

    "Current" is the newest successful generation, else the newest attempt, among those not
    superseded by a correction of the article. Each shows its profile version
    (summary@3f2a9c1), check results and review state. --run, --since and --until choose
    which generations count; --state filters by generation status, --review by review
    state. CSV and JSON Lines carry the full text, tokens, exact cost in USD, provenance
    (version, model snapshot, tier, ids), checks, the decision and the IPTC
    digital_source_type; Markdown is one document with a heading per article.

    Example: `contentgen results --approved --format csv -o publish.csv`
    """
    if ctx.invoked_subcommand is not None:
        return
    failure_reason = check_reason(reason) if reason is not None else None
    failed = failed or failure_reason is not None
    settings = settings_reading_demo()
    task_list = _tasks([*tasks, *task_alias], settings)
    check_statuses(states)
    check_review_states(review)
    review_states = tuple(review)
    if approved:
        if review:
            raise InputError("--approved is --review approved --review edited: give one")
        review_states = PUBLISHABLE
    current = None
    if stale:
        profiles = load_profiles(settings.config_dir)
        current = tuple((task, p.version) for task, p in profiles.items())
    today = dt.datetime.now(dt.UTC).date()
    kind = _format(fmt, as_json, output)
    check_batch_label(settings, batch)
    failures: list[FailedJob] = []
    rows: list[ResultRow] = []
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
                review_states=review_states,
                stale=current,
                failure_reason=failure_reason,
            )
            if failed:
                failures = failed_jobs(session, flt)
            else:
                rows = generations(session, flt)
            empty = not (failures if failed else rows) and not has_jobs(session)
    finally:
        engine.dispose()
    if empty:
        say_which_database(settings)
    if failed:
        _emit_failed(failures, flt, kind, output)
    else:
        _emit(rows, flt, kind, output, approved=approved)


def _empty(what: str, flt: ResultFilter, kind: Format) -> None:
    # On stderr when stdout is data, so an export of nothing stays a valid (empty) file.
    _say(f"no {what} match ({flt.describe()})", err=kind is not Format.table)


def _title(what: str, flt: ResultFilter) -> str:
    """A table's title: what it lists, and the filters given."""
    described = flt.describe()
    return what if described == "no filter" else f"{what} ({described})"


def _emit(
    rows: list[ResultRow],
    flt: ResultFilter,
    kind: Format,
    output: Path | None,
    *,
    approved: bool = False,
) -> None:
    _export(
        rows,
        flt,
        kind,
        output,
        noun="approved text(s)" if approved else "generation(s)",
        print_table=partial(
            print_results_table,
            title=_title("Approved texts" if approved else "Generated texts", flt),
        ),
        columns=APPROVED_COLUMNS if approved else CSV_COLUMNS,
        markdown_of=markdown,
        footer=(
            f"{len(rows):,} generation(s), ${usd_shown(total_cost(rows))}\n"
            "full texts: `contentgen results show ID` or --format csv\n"
            "sign-off: `contentgen review list`"
        ),
        jsonl_columns=APPROVED_COLUMNS if approved else None,
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
        print_table=partial(print_failed_table, title=_title("Failed jobs", flt)),
        columns=FAILED_COLUMNS,
        markdown_of=failed_markdown,
        footer=f"{len(rows):,} failed job(s). Again: `contentgen jobs requeue --failed"
        + (f" --reason {flt.failure_reason}`" if flt.failure_reason else "`"),
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
    jsonl_columns: Sequence[str] | None = None,
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
            write_jsonl(rows, stream, jsonl_columns)
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
    history: bool = typer.Option(
        False, "--all", help="Every generation (superseded and retried ones too), oldest first."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Print the full texts of one article (each task's latest, or --all) with their numbers.

    Example: `contentgen results show a-1042`
    """
    if (article is None) == (job is None):
        raise InputError("say which: ARTICLE_ID or --job ID")
    settings = settings_reading_demo()
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
        _say(review_line(row))
        _say("")
        _say(shown_text(row))
        if row.decision == "edited":
            _say("")
            _say("(the model's text, before the edit:)")
            _say(body_text(row))
    console.rule(style="dim")
    _say(f"{len(rows):,} generation(s), ${usd_shown(total_cost(rows))}")


def register(app: typer.Typer) -> None:
    """Add ``results`` to ``app``."""
    app.add_typer(results_app, name="results")
