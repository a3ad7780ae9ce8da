"""``contentgen demo``: the offline rehearsal of a whole run (no API key, no network)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import JSON_OPTION, console, handle_errors, print_json
from pipeline.cli.display import print_summary, progress_display
from pipeline.cli.report_cmd import print_table
from pipeline.demo import SAMPLES, run_demo
from pipeline.settings import get_settings


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
            None, "--tasks", help="Comma-separated tasks (default: every profile)."
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
        task_list = [t.strip() for t in tasks.split(",")] if tasks else None
        with progress_display(quiet or as_json) as on_progress:
            result = run_demo(
                settings,
                database=database,
                articles=articles,
                tasks=task_list,
                progress=on_progress,
            )
        summary = result.summary.as_dict()
        if as_json:
            print_json(
                {
                    **summary,
                    "database_url": result.database_url,
                    "simulator_billed_usd": str(result.billed_usd),
                    "bill_matches": result.bill_matches,
                }
            )
            return
        print_summary(summary, title=f"Demo run {result.summary.run_id} ({result.enqueued} jobs)")
        print_table(result.report)
        match = "matches" if result.bill_matches else "DOES NOT match"
        console.print(
            f"Recorded cost ${result.summary.totals.cost_usd} {match} the simulator's bill "
            f"${result.billed_usd}.",
            highlight=False,
        )
        console.print(
            f"Database: {result.database_url}. Next: "
            f"CONTENTGEN_DATABASE_URL={result.database_url} contentgen report --by task",
            highlight=False,
            markup=False,
        )
