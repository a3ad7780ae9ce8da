"""``contentgen alerts``: try the channels, check the nightly deadline, list what was sent."""

from __future__ import annotations

import typer
from rich.table import Table

from pipeline.alerts import alerts_config, check_deadline, send_test
from pipeline.cli.common import JSON_OPTION, console, handle_errors, open_db, print_json, say
from pipeline.db import alerts_sent
from pipeline.settings import get_settings

alerts_app = typer.Typer(
    help="Alerts on failed, stopped and over-budget runs (config/alerts.toml; docs/alerts.md).\n\n"
    "Example: `contentgen alerts test`",
    no_args_is_help=True,
)


@alerts_app.command("test")
@handle_errors
def test_cmd(as_json: bool = JSON_OPTION) -> None:
    """Send a test message to every configured channel and say what each did.

    Exit codes: 0 every channel took it; 1 some channel failed; 2 no channel configured (or
    the configuration is wrong); 3 every channel failed.

    Example: `CONTENTGEN_ALERT_WEBHOOK_URL=https://hooks.slack.com/services/... contentgen
    alerts test`
    """
    deliveries = send_test(get_settings())
    if as_json:
        print_json(
            [
                {"channel": d.channel, "where": d.where, "sent": d.sent, "detail": d.detail}
                for d in deliveries
            ]
        )
    else:
        for d in deliveries:
            say(d.line())
    failed = sum(not d.sent for d in deliveries)
    if failed == len(deliveries):
        raise typer.Exit(3)
    if failed:
        raise typer.Exit(1)


@alerts_app.command("check-deadline")
@handle_errors
def check_deadline_cmd(as_json: bool = JSON_OPTION) -> None:
    """Alert (once) when no nightly run started by alerts.toml's nightly_deadline today.

    Run it just after the deadline: `contentgen serve` schedules it when a deadline is set
    (deployment contentgen-deadline-check/deadline-check), or use cron. Exit 0 when a
    nightly run started in time or the deadline is still ahead, 1 when it was missed.

    Example: `contentgen alerts check-deadline`
    """
    found = check_deadline(get_settings())
    if as_json:
        print_json({"status": found.status, "line": found.line})
    else:
        say(f"{found.status}: {found.line}")
        if found.sent is not None:
            for d in found.sent.deliveries:
                say(f"  {d.line()}")
    if found.status in ("alerted", "alerted before", "missed"):
        raise typer.Exit(1)


@alerts_app.command("list")
@handle_errors
def list_cmd(
    limit: int = typer.Option(20, "--limit", min=1, help="Show the newest N alerts."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List the alerts sent, newest first, with what each channel did.

    Example: `contentgen alerts list --limit 5`
    """
    settings = get_settings()
    config = alerts_config(settings)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session:
            rows = alerts_sent(session)[-limit:][::-1]
            found = [
                {
                    "sent_at": f"{r.sent_at:%Y-%m-%d %H:%M:%S} UTC",
                    "key": r.key,
                    "event": r.event,
                    "run_id": r.run_id,
                    "outcome": r.outcome,
                }
                for r in rows
            ]
    finally:
        engine.dispose()
    if as_json:
        print_json({"channels": config.channels, "alerts": found})
        return
    say(f"channels: {', '.join(config.channels) or f'none (see {config.source})'}")
    if not found:
        say("no alerts sent")
        return
    table = Table("sent", "event", "run", "outcome", title="Alerts sent")
    for row in found:
        table.add_row(
            str(row["sent_at"]),
            str(row["event"]),
            str(row["run_id"] or "-"),
            str(row["outcome"] or "-"),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``alerts`` command group to ``app``."""
    app.add_typer(alerts_app, name="alerts")
