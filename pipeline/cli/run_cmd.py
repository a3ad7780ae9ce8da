"""``contentgen run``: generate the queued jobs (or show the plan with ``--dry-run``)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import typer

from pipeline.alerts import alerts_config, notify_runs
from pipeline.batchmode import run_in_mode
from pipeline.cli.common import (
    JSON_OPTION,
    check_batch_label,
    check_task_names,
    console,
    err_console,
    handle_errors,
    print_json,
    say,
)
from pipeline.cli.display import print_summary, progress_display, with_usd
from pipeline.errors import InputError
from pipeline.money import format_usd
from pipeline.planning import RUN_MODES
from pipeline.run import RunOptions, dry_run
from pipeline.settings import Settings, get_settings


def parse_tasks(tasks: str | None) -> tuple[str, ...] | None:
    """``summary,headline`` -> ('summary', 'headline'); empty means all tasks."""
    if not tasks:
        return None
    return tuple(t.strip() for t in tasks.split(",") if t.strip())


def check_run_tasks(settings: Settings, tasks: tuple[str, ...] | None) -> None:
    """``--tasks`` names tasks of profiles.toml: a typo is exit 2, not a run of nothing."""
    if tasks:
        check_task_names(settings, tasks)


def nothing_queued(tasks: str | None, batch: str | None) -> str:
    """The line `run` prints instead of a table of zeros when no job was waiting."""
    narrowed = [f"tasks {tasks}"] if tasks else []
    narrowed += [f"batch {batch!r}"] if batch is not None else []
    which = f" for {' and '.join(narrowed)}" if narrowed else ""
    return (
        f"nothing queued (no job waits{which}): `contentgen jobs` shows the queue, "
        "`contentgen enqueue FILE --tasks summary,headline` adds jobs"
    )


def _claimed_nothing(part: dict[str, Any]) -> bool:
    return (
        part.get("claimed") == 0
        and not part.get("requests")
        and not part.get("fatal")
        and part.get("state") != "failed"
    )


def parse_budget(budget: str | None) -> Decimal | None:
    """A USD amount as an exact Decimal."""
    if budget is None:
        return None
    try:
        value = Decimal(budget)
    except InvalidOperation as exc:
        raise InputError(f"--budget-usd: not a number: {budget!r}") from exc
    if value <= 0:
        raise InputError("--budget-usd must be positive")
    return value


def parse_mode(mode: str) -> str:
    """A run mode, checked (realtime, flex, batch or auto)."""
    if mode not in RUN_MODES:
        raise InputError(f"--mode: expected one of {', '.join(RUN_MODES)}, got {mode!r}")
    return mode


# Exit codes of `contentgen run` (also in its --help and the README).
EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def exit_status(parts: list[dict[str, Any]]) -> tuple[int, str | None]:
    """The exit code of a run and the one line that explains a non-zero one.

    A fatal API error or the budget stopping the run is 3, Ctrl-C 130 and SIGTERM 143 (the
    unsent jobs are queued either way); jobs that failed make it 1; otherwise 0.
    """
    for part in parts:
        fatal = part.get("fatal")
        if fatal:
            return EXIT_STOPPED, f"error: run stopped: {fatal}"
        reason = str(part.get("stop_reason") or "")
        if reason == "budget" and part.get("budget_stop"):
            return EXIT_STOPPED, (
                f"run stopped by the budget {part['budget_stop']} (config/budgets.toml): "
                "the remaining jobs are queued"
            )
        if reason == "budget":
            return EXIT_STOPPED, "run stopped by --budget-usd: the remaining jobs are queued"
        if reason == "signal SIGINT":
            return EXIT_SIGINT, "interrupted: unsent jobs are back in the queue"
        if reason == "signal SIGTERM":
            return EXIT_SIGTERM, "terminated: unsent jobs are back in the queue"
        if part.get("state") == "failed":
            return EXIT_SOME_FAILED, f"run failed: {reason}"
    failed = sum(int(part.get("failed") or 0) for part in parts)
    if failed:
        return EXIT_SOME_FAILED, f"{failed} job(s) failed: see `contentgen jobs`"
    return EXIT_OK, None


def register(app: typer.Typer) -> None:
    """Add ``run`` to ``app``."""

    @app.command("run")
    @handle_errors
    def run(
        limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="Run at most N jobs."),
        tasks: str | None = typer.Option(
            None, "--tasks", "-t", help="Comma-separated tasks to run (default: all)."
        ),
        batch: str | None = typer.Option(
            None, "--batch", "-b", help="Only jobs with this batch label."
        ),
        concurrency: int | None = typer.Option(
            None,
            "--concurrency",
            min=1,
            help="Requests in flight at most (CONTENTGEN_CONCURRENCY).",
        ),
        dry: bool = typer.Option(
            False, "--dry-run", help="Print the plan and forecast; send nothing, change nothing."
        ),
        budget_usd: str | None = typer.Option(
            None, "--budget-usd", help="Stop sending before the run's spend would pass this."
        ),
        mode: str | None = typer.Option(
            None,
            "--mode",
            help="realtime, flex (half price, slower), batch (Batch API, within 24 h) or auto "
            "(per model the cheapest that meets --deadline-h). Default: CONTENTGEN_DEFAULT_MODE.",
        ),
        deadline_h: float | None = typer.Option(
            None, "--deadline-h", min=0.01, help="Hours the run may take (CONTENTGEN_DEADLINE_H)."
        ),
        pace: bool | None = typer.Option(
            None,
            "--pace/--no-pace",
            help="--pace: spread the run over --deadline-h so it needs fewer prompt-cache keys "
            "(fewer cold misses, a slower run; models before GPT-5.6). --no-pace: full speed. "
            "Default: full speed (the nightly flow paces itself when the forecast saving is "
            "worth it; the dry run says what pacing would take and save).",
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Generate the queued jobs: claim, plan for cache hits, call the API, record cost.

        Ctrl-C (or SIGTERM) stops cleanly: in-flight requests finish, unsent jobs go back to
        the queue, and the summary is printed.

        With --mode batch the jobs go to the Batch API and the command waits for the results
        (Ctrl-C stops waiting; the batches go on and the next run collects them).

        With --pace a small batch that may take its time costs less: sent at the rate that
        finishes it within --deadline-h, it needs fewer prompt-cache keys, each a cold miss.
        The dry run shows the choice, e.g. "paced: 7 min instead of 30 s, saves $0.0200".

        Exit codes: 0 every job done; 1 some jobs failed; 2 usage or config error; 3 stopped
        by a fatal API error (bad key, no quota, unknown model, API unreachable), by
        --budget-usd or by a daily or monthly budget of config/budgets.toml; 130 Ctrl-C; 143
        SIGTERM. Unsent jobs stay queued with their attempts. After the run, config/alerts.toml's
        channels are told of a failed, stopped or over-budget run (docs/alerts.md).

        Example: contentgen run --tasks summary,headline --limit 1000 --concurrency 64
        """
        settings = get_settings()
        if deadline_h is not None:
            settings = settings.model_copy(update={"deadline_h": deadline_h})
        chosen = parse_mode(mode or settings.default_mode)
        check_run_tasks(settings, parse_tasks(tasks))
        check_batch_label(settings, batch)
        options = RunOptions(
            limit=limit,
            tasks=parse_tasks(tasks),
            batch_label=batch,
            concurrency=concurrency,
            budget_usd=parse_budget(budget_usd),
            parameters={
                "limit": limit,
                "tasks": tasks,
                "batch": batch,
                "dry_run": dry,
                "mode": chosen,
                "pace": pace,
            },
            mode=chosen,
            pace=pace,
            pace_h=settings.deadline_h if pace else None,
        )
        if dry:
            report = dry_run(settings, options)
            if as_json:
                print_json(report.as_dict())
            elif not report.as_dict().get("jobs"):
                console.print(
                    nothing_queued(tasks, batch), highlight=False, markup=False, soft_wrap=True
                )
            else:
                hidden = ("modes", "short_prefixes", "followers", "by_task_forecast")
                found = report.as_dict()
                shown = {k: v for k, v in found.items() if k not in hidden}
                shown |= {
                    f"forecast {task}": (
                        f"{f['requests']:,} requests, {f['input_tokens']:,} input tokens "
                        f"({f['cached_tokens']:,} cached), {format_usd(f['cost_usd'])}"
                    )
                    for task, f in found["by_task_forecast"].items()
                }
                print_summary(
                    with_usd(
                        {
                            **shown,
                            **report.mode_lines(),
                            **report.follower_lines(),
                            **report.advice_lines(),
                        }
                    ),
                    title="Dry run: plan and forecast (nothing sent)",
                )
            return
        alerts_config(settings)  # a wrong alerts.toml is one line before anything is sent
        with progress_display(quiet or as_json) as on_progress:
            result = run_in_mode(settings, options, progress=on_progress, handle_signals=True)
        run_ids = [int(part["run_id"]) for part in result.parts if part.get("run_id")]
        fatal = {int(p["run_id"]): str(p["fatal"]) for p in result.parts if p.get("fatal")}
        for sent in notify_runs(settings, run_ids, details=fatal):
            say(f"alert {sent.line()}", err=True)
        if as_json:
            print_json(result.parts[0] if len(result.parts) == 1 else result.as_dict())
        elif result.parts and all(_claimed_nothing(part) for part in result.parts):
            console.print(
                nothing_queued(tasks, batch), highlight=False, markup=False, soft_wrap=True
            )
        else:
            for choice in result.choices.values():
                console.print(f"{choice.model}: {choice.mode} ({choice.reason})")
            for part in result.parts:
                title = f"Run {part['run_id']} ({part.get('mode', chosen)})"
                print_summary(with_usd(part), title=title)
        code, line = exit_status(result.parts)
        if line:
            err_console.print(line, highlight=False, soft_wrap=True, markup=False)
        if code:
            raise typer.Exit(code)
