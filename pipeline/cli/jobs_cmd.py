"""``contentgen jobs``: look at the queue, re-queue failed jobs, release dead workers' jobs,
regenerate succeeded ones (``contentgen enqueue`` puts articles in it: enqueue_cmd.py)."""

from __future__ import annotations

import datetime as dt
import socket
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from pipeline.cli.common import (
    JSON_OPTION,
    check_batch_label,
    check_task_names,
    console,
    database_errors,
    handle_errors,
    joined_tasks,
    open_db,
    print_json,
    run_id_of,
    say,
    split_tasks,
)
from pipeline.db import (
    JOB_STATES,
    REASON_FILTERS,
    RegenerateFilter,
    check_label,
    check_reason,
    leases,
    owner_alive,
    pid_alive,
    queue,
    regenerate,
    utcnow,
)
from pipeline.errors import InputError, PipelineError
from pipeline.reports import local_time
from pipeline.settings import get_settings

jobs_app = typer.Typer(
    help="Count jobs by state, task and batch, with who holds the running ones; re-queue "
    "failed ones, release those of dead workers.\n\n"
    "Example: `contentgen jobs --batch evening`",
)


def _check_task_filter(tasks: Sequence[str]) -> None:
    """A ``--tasks`` filter names tasks of profiles.toml (a typo would match nothing)."""
    if tasks:
        check_task_names(get_settings(), tasks)


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
    its run is alive (its process in this machine's pid namespace, else its heartbeat in the
    database; "unknown" for owners that are not runs).

    Example: `contentgen jobs --tasks summary --json`
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    wanted = split_tasks(tasks)
    _check_task_filter(wanted)
    check_batch_label(settings, batch)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            counts = queue.job_counts(session)
            reasons = queue.failure_counts(session, tasks=wanted or None, batch_label=batch)
            owners = leases.lease_owners(session, tasks=wanted or None, batch_label=batch)
            judge = leases.run_liveness(settings.db_outage_s)
            alive = {o.owner: _alive(session, o.owner, judge) for o in owners}
    finally:
        engine.dispose()
    held = _leases(owners, alive)
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
                "failed_by_reason": reasons,
                "leases": held,
            }
        )
        return
    _print_counts(counts, by_state, narrowed=bool(wanted) or batch is not None)
    if reasons:
        shown = ", ".join(f"{reason} {n:,}" for reason, n in reasons.items())
        say(f"failed by reason: {shown} (`contentgen results --failed --reason REASON`)")
    _print_leases(held)


def _alive(session: Session, owner: str, judge: leases.Liveness) -> bool | None:
    """Whether a lease owner's run still runs (its pid here, its heartbeat elsewhere)."""
    dead = leases.owner_dead(session, owner, judge)
    if dead is None:  # not a run's row: by its pid where that means something
        return owner_alive(owner, host=judge.host)
    return not dead


def _leases(owners: list[leases.LeaseOwner], alive: dict[str, bool | None]) -> list[dict[str, Any]]:
    return [
        {
            "owner": o.owner,
            "jobs": o.jobs,
            "first_expiry": o.first_expiry,
            "last_expiry": o.last_expiry,
            "alive": alive.get(o.owner),
        }
        for o in owners
    ]


def _when(at: dt.datetime | None, now: dt.datetime) -> str:
    if at is None:
        return "-"
    seconds = int((at - now).total_seconds())
    span = _span(abs(seconds))
    return f"{local_time(at, seconds=True)} ({f'in {span}' if seconds >= 0 else f'{span} ago'})"


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
    table = Table("lease owner", "jobs", "first expiry", "last expiry", "alive")
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


def _print_counts(counts: list[queue.JobCount], by_state: dict[str, int], narrowed: bool) -> None:
    if not counts:
        if narrowed:
            say("no jobs match --tasks/--batch: `contentgen jobs` shows every job")
        else:
            say("no jobs: nothing queued (`contentgen enqueue FILE --tasks summary,headline`)")
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
    reason: str | None = typer.Option(
        None,
        "--reason",
        help="With --failed: only jobs that failed for this reason: "
        + ", ".join(REASON_FILTERS)
        + ".",
    ),
    stagger: float = typer.Option(
        0.0,
        "--stagger",
        min=0.0,
        help="With --failed: spread the re-queued jobs over this many seconds (each waits "
        "for its turn before a run may claim it), so a recovering API is not hit at once.",
    ),
    json_out: bool = JSON_OPTION,
) -> None:
    """Put failed jobs back in the queue (--failed), or jobs whose lease expired (--expired).

    --tasks, --batch, --reason and --stagger narrow --failed; --expired applies to every
    job. `contentgen results --failed` lists the failed jobs with their reasons.

    Example: `contentgen jobs requeue --failed --reason max_attempts --stagger 600`
    """
    if not failed and not expired:
        raise PipelineError("say what to re-queue: --failed and/or --expired")
    if not failed and (reason is not None or stagger):
        raise InputError("--reason and --stagger go with --failed")
    failure_reason = check_reason(reason) if reason is not None else None
    _check_task_filter(split_tasks(tasks))
    settings = get_settings()
    engine, sessions = open_db(settings)
    result = {"failed_requeued": 0, "expired_requeued": 0}
    try:
        with sessions() as session, database_errors():
            if failed:
                check_label(session, batch)
                result["failed_requeued"] = queue.requeue_failed(
                    session,
                    tasks=split_tasks(tasks) or None,
                    batch_label=batch,
                    reason=failure_reason,
                    stagger_s=stagger,
                )
            if expired:
                result["expired_requeued"] = leases.requeue_expired(
                    session, max_attempts=settings.max_attempts
                )
    finally:
        engine.dispose()
    if json_out:
        print_json(result)
        return
    if failed:
        which = f" ({failure_reason})" if failure_reason else ""
        spread = f", spread over {stagger:g} s" if stagger and result["failed_requeued"] else ""
        say(f"re-queued {result['failed_requeued']:,} failed job(s){which}{spread}")
    if expired:
        say(
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

    Jobs of a worker whose process is gone (checked in this machine's pid namespace) or whose
    run stopped beating in the database are released at once and its runs closed as
    abandoned. Jobs whose lease expired (more than --older-than seconds ago) are released
    too. No job is failed and no attempt is used.

    Example: `contentgen jobs release --stale --older-than 600`
    """
    if not stale:
        raise PipelineError("say what to release: --stale")
    settings = get_settings()
    host = socket.gethostname()
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            judge = leases.run_liveness(settings.db_outage_s)
            dead = leases.reclaim_dead(
                session,
                host=host,
                is_alive=pid_alive,
                host_id=judge.host_id,
                stale_s=judge.stale_s,
            )
            expired = leases.release_stale(session, older_than_s=older_than)
    finally:
        engine.dispose()
    if json_out:
        print_json({"host": host, **dead.as_dict(), "stale_released": expired})
        return
    owners = f" ({', '.join(dead.dead_owners)})" if dead.dead_owners else ""
    say(f"released {dead.jobs_released:,} job(s) of dead workers on {host}{owners}")
    if dead.runs_abandoned:
        say(f"abandoned run(s) {', '.join(str(r) for r in dead.runs_abandoned)}")
    since = "" if older_than is None else f" more than {older_than:g} s ago"
    say(f"released {expired:,} job(s) whose lease expired{since}")


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
    stale: bool = typer.Option(
        False,
        "--stale",
        help="Jobs whose current output was made under an older version of their profile.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count them; change nothing."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Generate succeeded jobs again, on purpose: back to the queue with fresh attempts.

    At least one of --article, --tasks, --batch, --run, --stale is required; all given must
    match. --stale takes the jobs whose current output a changed prompt, context, setting
    or check has made stale (see `contentgen results --stale`).
    Earlier generations are kept as history. Queued, waiting, running and failed jobs are
    left alone. The next run calls the API again (a regeneration is a new response-cache
    key). A chained task regenerated with its parent waits for the parent's new answer.

    Example: `contentgen jobs regenerate --stale --dry-run`
    """
    settings = get_settings()
    task_list = joined_tasks([*tasks, *task_alias])
    if not (articles or task_list or batch is not None or run is not None or stale):
        raise PipelineError(
            "say what to regenerate: --article, --tasks, --batch, --run and/or --stale "
            "(regenerating every job is never implied)"
        )
    profiles = check_task_names(settings, task_list)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            check_label(session, batch)
            run_id = run_id_of(session, run)
            result = regenerate(
                session,
                RegenerateFilter(
                    articles=tuple(articles),
                    tasks=tuple(task_list),
                    batch_label=batch,
                    run_id=run_id,
                    stale=tuple((t, p.version) for t, p in profiles.items()) if stale else None,
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
    what = "stale " if stale else ""
    if dry_run:
        say(f"would regenerate {result.jobs:,} {what}succeeded job(s){waiting}; nothing changed")
    else:
        say(
            f"re-queued {result.jobs:,} {what}succeeded job(s) for regeneration{waiting}; "
            "earlier generations are kept. Next: `contentgen run`"
        )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(jobs_app, name="jobs")
