"""``contentgen batches``: the Batch API batches of batch mode: list, follow, cancel."""

from __future__ import annotations

import typer
from rich.table import Table

from pipeline.batchmode import batch_costs, cancel_batch, list_batches, run_batch_mode
from pipeline.cli.common import JSON_OPTION, console, handle_errors, print_json
from pipeline.cli.display import print_summary
from pipeline.reports import usd_shown
from pipeline.run import RunOptions
from pipeline.settings import get_settings

batches_app = typer.Typer(
    help="Batches sent with `contentgen run --mode batch`: list them, collect results, cancel.\n\n"
    "Example: `contentgen batches --open`",
)


@batches_app.callback(invoke_without_command=True)
@handle_errors
def batches_cmd(
    ctx: typer.Context,
    open_only: bool = typer.Option(False, "--open", help="Only batches not recorded yet."),
    limit: int = typer.Option(50, "--limit", min=1, help="Show the newest N batches."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List batches, newest first: status, request counts, cost and savings.

    Example: `contentgen batches --json`
    """
    if ctx.invoked_subcommand is not None:
        return
    rows = list_batches(get_settings(), limit=limit, open_only=open_only)
    cost, list_cost = batch_costs(rows)
    if as_json:
        print_json(
            {
                "batches": [row.as_dict() for row in rows],
                "cost_usd": str(cost),
                "list_cost_usd": str(list_cost),
                "savings_usd": str(list_cost - cost),
            }
        )
        return
    if not rows:
        console.print("no batches")
        return
    table = Table("id", "batch", "model", "status", "requests", "done", "failed", "cost", "saved")
    for row in rows:
        table.add_row(
            str(row.id),
            row.batch_id or "-",
            row.model,
            row.status + ("" if row.ingested_at else " (open)"),
            str(row.requests),
            str(row.completed),
            str(row.failed),
            f"${usd_shown(row.cost_usd)}",
            f"${usd_shown(row.list_cost_usd - row.cost_usd)}",
        )
    console.print(table)
    console.print(
        f"cost ${usd_shown(cost)}, saved ${usd_shown(list_cost - cost)} against list price"
    )


@batches_app.command("poll")
@handle_errors
def poll_cmd(
    wait: bool = typer.Option(False, "--wait", help="Keep polling until every batch has ended."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-attach to open batches: record the ended ones; submit nothing new.

    Example: `contentgen batches poll --wait`
    """
    summary = run_batch_mode(
        get_settings(), RunOptions(mode="batch"), wait=wait, submit=False, handle_signals=True
    )
    if as_json:
        print_json(summary.as_dict())
    else:
        print_summary(summary.as_dict(), title=f"Run {summary.run_id} (batch poll)")


@batches_app.command("cancel")
@handle_errors
def cancel_cmd(
    batch: str = typer.Argument(..., help="The batch: its id in `contentgen batches` or batch_..."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Cancel a batch. What it finished is recorded by the next run or `batches poll`; its
    other jobs go back to the queue.

    Example: `contentgen batches cancel 12`
    """
    row = cancel_batch(get_settings(), batch)
    if as_json:
        print_json(row.as_dict())
    else:
        console.print(f"batch {row.id} ({row.batch_id or 'not submitted'}): {row.status}")


def register(app: typer.Typer) -> None:
    """Add the ``batches`` command group to ``app``."""
    app.add_typer(batches_app, name="batches")
