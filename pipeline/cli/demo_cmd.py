"""``contentgen demo``: the offline rehearsal of a whole run (no API key, no network)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import typer

from pipeline.cli.common import (
    JSON_OPTION,
    check_task_names,
    console,
    handle_errors,
    print_json,
    split_tasks,
)
from pipeline.cli.demo import SAMPLES, run_demo
from pipeline.cli.display import print_summary, progress_display, with_usd
from pipeline.cli.report_cmd import print_table
from pipeline.money import format_usd
from pipeline.settings import get_settings


def _program() -> str:
    """How to call this very ``contentgen`` again: its name when PATH finds it, else the path
    it was started by (``scripts/demo.sh`` runs ``.venv/bin/contentgen`` unactivated)."""
    started = Path(sys.argv[0])
    found = shutil.which("contentgen")
    if started.name != "contentgen" or (found and Path(found).resolve() == started.resolve()):
        return "contentgen"
    return shlex.quote(str(started))


def _say(text: str) -> None:
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def next_steps(database_url: str) -> list[str]:
    """Commands to try after the demo, runnable exactly as printed from the same directory
    (they carry the demo's database URL; ``init`` only where it would not be refused)."""
    env = f"CONTENTGEN_DATABASE_URL={shlex.quote(database_url)}"
    program = _program()
    steps = [
        f"{env} {program} results -o demo-results.csv   # every text, its version and checks",
        f"{env} {program} review list   # what waits for an editor: flagged and pending",
        f"{env} {program} desk editors add you   # a login token for the review desk; then "
        f"`{env} {program} desk` and open http://127.0.0.1:8765",
        f"{env} {program} report --by model",
        f"{env} {program} jobs",
    ]
    if not Path("config").exists() and "CONTENTGEN_CONFIG_DIR" not in os.environ:
        steps.append(f"{program} init   # an editable copy of the profiles, prompts and prices")
    return steps


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""

    @app.command("demo")
    @handle_errors
    def demo(
        database: Path = typer.Option(
            Path("contentgen-demo.db"),
            "--db",
            help="SQLite file to (re)create for the demo; left behind for `contentgen report`.",
        ),
        articles: Path = typer.Option(SAMPLES, "--articles", help="Articles to enqueue."),
        tasks: str | None = typer.Option(
            None, "--tasks", "-t", help="Comma-separated tasks (default: every profile)."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
        as_json: bool = JSON_OPTION,
    ) -> None:
        """Run the whole pipeline offline on the sample articles and print what it cost.

        Creates a fresh SQLite database, enqueues the articles for every task profile, starts
        the Responses API simulator in-process (with a rate limit and a few injected faults),
        generates everything through the real OpenAI SDK, and prints the run's cost summary
        beside the simulator's own bill. No API key is needed.

        Example: contentgen demo --tasks summary,headline
        """
        settings = get_settings()
        task_list = split_tasks(tasks) or None
        if task_list:
            check_task_names(settings, task_list)
        with progress_display(quiet or as_json) as on_progress:
            result = run_demo(
                settings,
                database=database,
                articles=articles,
                tasks=task_list,
                progress=on_progress,
            )
        summary = result.summary.as_dict()
        steps = next_steps(result.database_url)
        if as_json:
            print_json(
                {
                    **summary,
                    "database_url": result.database_url,
                    "simulator_billed_usd": str(result.billed_usd),
                    "bill_matches": result.bill_matches,
                    "review_states": result.review_states,
                    "next": steps,
                }
            )
            return
        title = f"Demo run {result.summary.run_id} ({result.enqueued} jobs)"
        print_summary(with_usd(summary), title=title)
        print_table(result.report)
        cost = result.summary.totals.cost_usd
        if result.bill_matches:
            check = (
                f"matches the simulator's bill {format_usd(result.billed_usd)} to the last digit"
            )
        else:  # the exact figures, so the difference shows
            check = f"({cost}) DOES NOT match the simulator's bill {result.billed_usd}"
        _say(f"Recorded cost {format_usd(cost)} {check}.")
        if result.review_states:
            states = ", ".join(f"{n} {state}" for state, n in sorted(result.review_states.items()))
            total = sum(result.review_states.values())
            _say(f"Outputs: {total}, each with its profile version and check results ({states}).")
        _say(f"Database: {result.database_url}")
        _say("Next:")
        for step in steps:
            _say(f"  {step}")
