"""``contentgen enqueue`` and ``contentgen jobs``: put articles in the queue and look at it."""

from __future__ import annotations

import datetime as dt
import socket
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from pipeline.cli.common import (
    JSON_OPTION,
    check_task_names,
    console,
    err_console,
    handle_errors,
    joined_tasks,
    open_db,
    print_json,
    validate_task_names,
)
from pipeline.db import jobs
from pipeline.db.models import JOB_STATES, utcnow
from pipeline.db.procs import owner_alive, pid_alive
from pipeline.db.regenerate import RegenerateFilter, regenerate
from pipeline.errors import ConfigError, DatabaseError, InputError, PipelineError
from pipeline.intake.reader import DEFAULT_MAX_BODY_CHARS, Format, Rejection, read_chunks
from pipeline.prompts.profiles import Profile, load_profiles
from pipeline.reports.costs import latest_run_id
from pipeline.settings import get_settings

jobs_app = typer.Typer(
    help="Count jobs by state, task and batch, with who holds the running ones; re-queue "
    "failed ones, release those of dead workers.\n\n"
    "Example: `contentgen jobs --batch evening`",
)
_PLAIN_PROGRESS_BYTES = 5_000_000  # below this a file goes by too fast to need progress lines


def _say(text: str, *, err: bool = False) -> None:
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


def _split(tasks: str | None) -> list[str]:
    return [t.strip() for t in (tasks or "").split(",") if t.strip()]


def with_parents(tasks: Sequence[str], profiles: Mapping[str, Profile]) -> list[str]:
    """``tasks`` plus every task they follow (a chained task is useless without its parent)."""
    result = list(tasks)
    for task in tasks:
        parent = profiles[task].follows
        while parent is not None and parent not in result:
            result.insert(0, parent)
            parent = profiles[parent].follows
    return result


def check_tasks(requested: Sequence[str], known: Sequence[str], where: Path) -> None:
    """Raise one error line when no task is given or a task is unknown (listing the known)."""
    if not requested:
        raise ConfigError(f"no task given: choose from {', '.join(sorted(known))}")
    validate_task_names(requested, known, str(where))


def _check_task_filter(tasks: Sequence[str]) -> None:
    """A ``--tasks`` filter names tasks of profiles.toml (a typo would match nothing)."""
    if tasks:
        check_task_names(get_settings(), tasks)


@contextmanager
def _database_errors() -> Iterator[None]:
    # A connection lost or a database locked mid-way is one line, not a traceback; what was
    # committed before stays committed.
    try:
        yield
    except OperationalError as exc:
        raise DatabaseError(f"database error: {exc.orig or exc}") from exc


class _Progress:
    """A rich bar on a terminal, plain lines every 10% otherwise (only for big files)."""

    def __init__(self, path: Path, size: int, quiet: bool) -> None:
        self.path, self.size, self.rows, self._next = path, size, 0, 10
        self.bar: Progress | None = None
        self.plain = not quiet and not err_console.is_terminal and size >= _PLAIN_PROGRESS_BYTES
        if not quiet and err_console.is_terminal:
            self.bar = Progress(
                TextColumn("enqueue"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[rows]:,} rows"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            self.task = self.bar.add_task("enqueue", total=size or None, rows=0)
            self.bar.start()

    def update(self, bytes_read: int, rows: int) -> None:
        self.rows += rows
        if self.bar is not None:
            self.bar.update(self.task, completed=bytes_read, rows=self.rows)
        elif self.plain and self.size and bytes_read * 100 >= self._next * self.size:
            percent = bytes_read * 100 // self.size
            _say(f"{self.path}: {percent}% read, {self.rows:,} rows", err=True)
            self._next = percent // 10 * 10 + 10

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _check_file(path: Path) -> int:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    return path.stat().st_size


def enqueue_cmd(
    file: Path = typer.Argument(
        ...,
        help="JSONL or CSV file with the fields id, title, body and optionally section, url, "
        "published_at (ISO 8601), metadata (a JSON object).",
        metavar="FILE",
        show_default=False,
    ),
    tasks: str = typer.Option(
        ..., "--tasks", "-t", help="Comma-separated tasks from profiles.toml, e.g. summary,headline"
    ),
    batch: str | None = typer.Option(
        None, "--batch", "-b", help="Label the jobs (ad-hoc runs and counts can select by it)."
    ),
    priority: int = typer.Option(0, "--priority", help="Higher priorities are claimed first."),
    fmt: str | None = typer.Option(
        None, "--format", help="jsonl or csv (default: from the file name or content)."
    ),
    max_body_chars: int = typer.Option(
        DEFAULT_MAX_BODY_CHARS,
        "--max-body-chars",
        min=1,
        envvar="CONTENTGEN_MAX_BODY_CHARS",
        help="Rows with a longer body are rejected.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Add the articles of FILE to the database and queue a job per article and task.

    Enqueueing the same file again changes nothing.
    An article whose title, body or section changed has its jobs re-queued.
    A bad row is reported as FILE:LINE: reason and skipped; the valid rows
    are kept, and the exit code is 1 when any row was rejected.

    Example: `contentgen enqueue samples/articles.jsonl -t summary,headline --batch demo`
    """
    settings = get_settings()
    if fmt not in (None, "jsonl", "csv"):
        raise InputError(f"--format must be jsonl or csv, not {fmt!r}")
    if batch is not None and not 0 < len(batch) <= jobs.MAX_BATCH_LABEL:
        raise InputError(f"--batch must have 1 to {jobs.MAX_BATCH_LABEL} characters")
    size = _check_file(file)
    task_list = _split(tasks)
    profiles_file = settings.config_dir / "profiles.toml"
    profiles = load_profiles(settings.config_dir)
    check_tasks(task_list, list(profiles), profiles_file)
    task_list = with_parents(task_list, profiles)
    follows = {t: p.follows for t, p in profiles.items() if p.follows and t in task_list}
    start_states = {task: "waiting" for task in follows}
    engine, sessions = open_db(settings)
    total, rows = jobs.EnqueueResult(), 0
    rejections: list[Rejection] = []
    progress = _Progress(file, size, quiet=json_out)
    try:
        with sessions() as session, _database_errors():
            chunks = read_chunks(file, max_body_chars=max_body_chars, fmt=cast(Format | None, fmt))
            for chunk in chunks:
                for rejection in chunk.rejections:
                    sys.stderr.write(f"{rejection}\n")
                rejections.extend(chunk.rejections)
                if chunk.articles:
                    total += jobs.enqueue(
                        session,
                        chunk.articles,
                        task_list,
                        batch_label=batch,
                        priority=priority,
                        start_states=start_states,
                    )
                rows += chunk.rows
                progress.update(chunk.bytes_read, chunk.rows)
            if follows:
                jobs.release_ready_followers(session, follows)
    finally:
        progress.close()
        engine.dispose()
    _report_enqueue(file, rows, total, rejections, json_out)
    if rejections:
        raise typer.Exit(1)


def _report_enqueue(
    file: Path,
    rows: int,
    total: jobs.EnqueueResult,
    rejections: list[Rejection],
    json_out: bool,
) -> None:
    if json_out:
        print_json(
            {
                "file": str(file),
                "rows": rows,
                **total.as_dict(),
                "rejected": len(rejections),
                "rejections": [{"line": r.line, "reason": r.reason} for r in rejections],
            }
        )
        return
    _say(
        f"{file}: {rows:,} rows; jobs: {total.accepted:,} accepted, {total.unchanged:,} "
        f"unchanged, {total.requeued:,} re-queued; {len(rejections):,} rows rejected "
        f"(articles: {total.articles_new:,} new, {total.articles_updated:,} updated)"
    )
    if rejections:
        _say(
            f"{len(rejections):,} rows were rejected (listed above); the valid rows were kept",
            err=True,
        )


@jobs_app.callback(invoke_without_command=True)
@handle_errors
def jobs_cmd(
    ctx: typer.Context,
    batch: str | None = typer.Option(
        None, "--batch", "-b", help="Only jobs with this batch label."
    ),
    tasks: str | None = typer.Option(None, "--tasks", "-t", help="Only these tasks (a,b)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Count jobs by state, per task and batch label, and list who holds the running ones.

    Each lease owner is shown with its jobs, the soonest and latest lease expiry, and whether
    its process is alive (checked on this host only; "unknown" elsewhere).

    Example: `contentgen jobs --tasks summary --json`
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    wanted = _split(tasks)
    _check_task_filter(wanted)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, _database_errors():
            counts = jobs.job_counts(session)
            owners = jobs.lease_owners(session, tasks=wanted or None, batch_label=batch)
    finally:
        engine.dispose()
    leases = _leases(owners, socket.gethostname())
    counts = [
        c
        for c in counts
        if (batch is None or c.batch_label == batch) and (not wanted or c.task in wanted)
    ]
    by_state = {state: sum(c.count for c in counts if c.state == state) for state in JOB_STATES}
    if json_out:
        print_json(
            {
                "counts": [vars(c) for c in counts],
                "by_state": by_state,
                "total": sum(by_state.values()),
                "leases": leases,
            }
        )
        return
    _print_counts(counts, by_state, narrowed=bool(wanted) or batch is not None)
    _print_leases(leases)


def _leases(owners: list[jobs.LeaseOwner], host: str) -> list[dict[str, Any]]:
    return [
        {
            "owner": o.owner,
            "jobs": o.jobs,
            "first_expiry": o.first_expiry,
            "last_expiry": o.last_expiry,
            "alive": owner_alive(o.owner, host=host),
        }
        for o in owners
    ]


def _when(at: dt.datetime | None, now: dt.datetime) -> str:
    if at is None:
        return "-"
    seconds = int((at - now).total_seconds())
    span = _span(abs(seconds))
    return f"{at:%Y-%m-%d %H:%M:%S} ({f'in {span}' if seconds >= 0 else f'{span} ago'})"


def _span(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _print_leases(leases: list[dict[str, Any]]) -> None:
    if not leases:
        return
    now = utcnow()
    table = Table("lease owner", "jobs", "first expiry (UTC)", "last expiry (UTC)", "alive")
    for lease in leases:
        alive = {True: "yes", False: "[b red]no[/]", None: "unknown"}[lease["alive"]]
        table.add_row(
            lease["owner"],
            str(lease["jobs"]),
            _when(lease["first_expiry"], now),
            _when(lease["last_expiry"], now),
            alive,
        )
    console.print(table)


def _print_counts(counts: list[jobs.JobCount], by_state: dict[str, int], narrowed: bool) -> None:
    if not counts:
        if narrowed:
            _say("no jobs match --tasks/--batch: `contentgen jobs` shows every job")
        else:
            _say("no jobs: nothing queued (`contentgen enqueue FILE --tasks summary,headline`)")
        return
    grid: dict[tuple[str, str | None], dict[str, int]] = defaultdict(dict)
    for c in counts:
        grid[(c.task, c.batch_label)][c.state] = c.count
    shown = [state for state in JOB_STATES if by_state[state]]  # keeps the table narrow
    table = Table("task", "batch", *shown, "total")
    for (task, label), states in sorted(grid.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        cells = [str(states.get(state, 0)) for state in shown]
        table.add_row(task, label or "-", *cells, str(sum(states.values())))
    totals: list[Any] = [str(by_state[state]) for state in shown]
    table.add_row("[b]all[/]", "", *totals, f"[b]{sum(by_state.values())}[/]", end_section=True)
    console.print(table)


@jobs_app.command("requeue")
@handle_errors
def requeue_cmd(
    failed: bool = typer.Option(False, "--failed", help="Re-queue failed jobs, attempts reset."),
    expired: bool = typer.Option(
        False, "--expired", help="Return jobs whose lease expired (a worker died) to the queue."
    ),
    tasks: str | None = typer.Option(None, "--tasks", "-t", help="Only these tasks (a,b)."),
    batch: str | None = typer.Option(
        None, "--batch", "-b", help="Only jobs with this batch label."
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Put failed jobs back in the queue (--failed), or jobs whose lease expired (--expired).

    --tasks and --batch narrow --failed; --expired applies to every job.

    Example: `contentgen jobs requeue --failed --tasks summary --batch evening`
    """
    if not failed and not expired:
        raise PipelineError("say what to re-queue: --failed and/or --expired")
    _check_task_filter(_split(tasks))
    settings = get_settings()
    engine, sessions = open_db(settings)
    result = {"failed_requeued": 0, "expired_requeued": 0}
    try:
        with sessions() as session, _database_errors():
            if failed:
                result["failed_requeued"] = jobs.requeue_failed(
                    session, tasks=_split(tasks) or None, batch_label=batch
                )
            if expired:
                result["expired_requeued"] = jobs.requeue_expired(
                    session, max_attempts=settings.max_attempts
                )
    finally:
        engine.dispose()
    if json_out:
        print_json(result)
        return
    if failed:
        _say(f"re-queued {result['failed_requeued']:,} failed job(s)")
    if expired:
        _say(
            f"{result['expired_requeued']:,} job(s) with an expired lease returned to the queue "
            "(or failed, when out of attempts)"
        )


@jobs_app.command("release")
@handle_errors
def release_cmd(
    stale: bool = typer.Option(
        False,
        "--stale",
        help="Release running jobs whose worker on this host died, and jobs whose lease "
        "expired (any host).",
    ),
    older_than: float | None = typer.Option(
        None,
        "--older-than",
        min=0,
        metavar="SECONDS",
        help="Only leases that expired more than SECONDS ago (default: any expired lease).",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Give the jobs of dead or stuck workers back to the queue, attempts untouched (--stale).

    On this host, jobs of a worker whose process is gone are released at once and its runs
    closed as abandoned. Jobs of workers elsewhere are released once their lease expired
    (more than --older-than seconds ago). No job is failed and no attempt is used.

    Example: `contentgen jobs release --stale --older-than 600`
    """
    if not stale:
        raise PipelineError("say what to release: --stale")
    settings = get_settings()
    host = socket.gethostname()
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, _database_errors():
            dead = jobs.reclaim_dead(session, host=host, is_alive=pid_alive)
            expired = jobs.release_stale(session, older_than_s=older_than)
    finally:
        engine.dispose()
    if json_out:
        print_json({"host": host, **dead.as_dict(), "stale_released": expired})
        return
    owners = f" ({', '.join(dead.dead_owners)})" if dead.dead_owners else ""
    _say(f"released {dead.jobs_released:,} job(s) of dead workers on {host}{owners}")
    if dead.runs_abandoned:
        _say(f"abandoned run(s) {', '.join(str(r) for r in dead.runs_abandoned)}")
    since = "" if older_than is None else f" more than {older_than:g} s ago"
    _say(f"released {expired:,} job(s) whose lease expired{since}")


@jobs_app.command("regenerate")
@handle_errors
def regenerate_cmd(
    articles: list[str] = typer.Option(
        [], "--article", help="An article's external id (repeatable)."
    ),
    tasks: list[str] = typer.Option(
        [], "--tasks", "-t", help="Only these tasks (a,b; repeatable)."
    ),
    task_alias: list[str] = typer.Option([], "--task", hidden=True),  # the first spelling
    batch: str | None = typer.Option(
        None, "--batch", "-b", help="Only jobs with this batch label."
    ),
    run: str | None = typer.Option(
        None, "--run", help="Jobs with a generation in this run: a run id or `last`."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count them; change nothing."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Generate succeeded jobs again, on purpose: back to the queue with fresh attempts.

    At least one of --article, --tasks, --batch, --run is required; all given must match.
    Earlier generations are kept as history. Queued, waiting, running and failed jobs are
    left alone. The next run calls the API again (a regeneration is a new response-cache
    key). A chained task regenerated with its parent waits for the parent's new answer.

    Example: `contentgen jobs regenerate --article a-1042 --tasks headline`
    """
    settings = get_settings()
    task_list = joined_tasks([*tasks, *task_alias])
    if not (articles or task_list or batch is not None or run is not None):
        raise PipelineError(
            "say what to regenerate: --article, --tasks, --batch and/or --run "
            "(regenerating every job is never implied)"
        )
    profiles = check_task_names(settings, task_list)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, _database_errors():
            run_id = None
            if run is not None:
                if run.strip().lower() == "last":
                    run_id = latest_run_id(session)
                elif run.strip().isdigit():
                    run_id = int(run)
                else:
                    raise InputError(f"--run: not a run id: {run!r} (a number or `last`)")
            result = regenerate(
                session,
                RegenerateFilter(
                    articles=tuple(articles),
                    tasks=tuple(task_list),
                    batch_label=batch,
                    run_id=run_id,
                ),
                follows={task: p.follows for task, p in profiles.items()},
                dry_run=dry_run,
            )
    finally:
        engine.dispose()
    if json_out:
        print_json(result.as_dict())
        return
    waiting = f" ({result.waiting:,} wait for their regenerated parent)" if result.waiting else ""
    if dry_run:
        _say(f"would regenerate {result.jobs:,} succeeded job(s){waiting}; nothing changed")
    else:
        _say(
            f"re-queued {result.jobs:,} succeeded job(s) for regeneration{waiting}; "
            "earlier generations are kept. Next: `contentgen run`"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("enqueue")(handle_errors(enqueue_cmd))
    app.add_typer(jobs_app, name="jobs")
