"""``contentgen deliver`` (send approved texts to the CMS) and ``contentgen deliveries`` (the
delivery log). The logic is ``pipeline.delivery``; this module parses options and prints."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer
from rich.table import Table

from pipeline.cli.common import (
    JSON_OPTION,
    console,
    database_errors,
    handle_errors,
    open_db,
    print_json,
    say,
)
from pipeline.delivery import (
    DELIVERY_STATES,
    DeliveryEvent,
    deliver,
    delivery_counts,
    list_deliveries,
    load_delivery_config,
)
from pipeline.errors import InputError
from pipeline.settings import get_settings

# Exit codes of `contentgen deliver` (docs/delivery.md).
EXIT_FAILING = 1  # versions are failing after this pass; they stay queued for their retry


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM: stop claiming, finish and record the sends in flight, then exit."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        say(f"{signal.Signals(signum).name}: finishing the sends in flight", err=True)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def deliver_cmd(
    once: bool = typer.Option(
        False, "--once", help="Send what is due now, then exit (the default)."
    ),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Keep running: send what becomes due (new approvals, retries) until Ctrl-C or "
        "SIGTERM.",
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Send at most this many."),
    poll_s: float = typer.Option(
        5.0, "--poll", min=0.05, help="With --watch: seconds between looks at the outbox."
    ),
    now: bool = typer.Option(
        False,
        "--retry-now",
        help="Send failing versions now instead of at their next attempt (the CMS is back).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No line per send."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Send approved and edited texts from the outbox to the CMS: a signed webhook or a drop
    folder (the delivery section of config/delivery.toml, or CONTENTGEN_DELIVERY_WEBHOOK_URL
    with CONTENTGEN_DELIVERY_SECRET, or CONTENTGEN_DELIVERY_FOLDER).

    Each version of an (article, task) goes under one webhook-id, so a receiver drops
    repeats; failed sends are retried with backoff (30 s doubling to 1 h), never dropped.
    Prints a line per send and a summary. Exit 0: nothing is failing (every version sent,
    or waiting for its first send); 1: versions are failing, each waiting for its retry
    (`contentgen deliveries --state failing`); 2: configuration or database error. With
    --watch, exit 0 when stopped.

    Example: `contentgen deliver --watch`
    """
    if once and watch:
        raise InputError("--once and --watch exclude each other")
    settings = get_settings()
    config = load_delivery_config(settings)
    stop = threading.Event()

    def on_event(event: DeliveryEvent) -> None:
        if not quiet and not json_out:
            say(event.line(), err=event.outcome != "sent")

    if not json_out:
        say(f"delivering to {config.target}" + (" (watching; Ctrl-C stops)" if watch else ""))
    with _stop_on_signals(stop), database_errors():
        summary = deliver(
            settings,
            watch=watch,
            limit=limit,
            poll_s=poll_s,
            on_event=on_event,
            stop=stop,
            config=config,
            retry_failing_now=now,
            on_note=lambda text: say(text, err=True),
        )
    if json_out:
        print_json(summary.as_dict())
    else:
        say(summary.line())
    if summary.failing and not watch:
        raise typer.Exit(EXIT_FAILING)


def deliveries_cmd(
    states: list[str] = typer.Option(
        [],
        "--state",
        "-s",
        help=f"Only this state (repeatable): {', '.join(DELIVERY_STATES)}. Default: all.",
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    json_out: bool = JSON_OPTION,
) -> None:
    """The delivery log: every version queued for the CMS, newest first, with its state
    (pending, failing, sent, superseded), attempts, when it was sent or is next tried, and the
    last error (webhook-ids on a wide terminal, and with --json).

    Example: `contentgen deliveries --state failing`
    """
    unknown = [s for s in states if s not in DELIVERY_STATES]
    if unknown:
        raise InputError(
            f"unknown delivery state(s) {', '.join(unknown)}: {', '.join(DELIVERY_STATES)}"
        )
    settings = get_settings()
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            rows = list_deliveries(session, states=tuple(states), limit=limit)
            counts = delivery_counts(session)
    finally:
        engine.dispose()
    if json_out:
        print_json({"counts": counts, "deliveries": [r.as_dict() for r in rows]})
        return
    if rows:
        wide = console.width >= 140  # the webhook-ids fit beside the errors
        table = Table("item", "v", "state", "tries", "when (UTC)")
        if wide:
            table.add_column("webhook-id", no_wrap=True)
        table.add_column("last error", overflow="fold")
        for r in rows:
            when = r.sent_at if r.state == "sent" else r.next_attempt_at
            cells = [
                f"{r.source_id}:{r.task}",
                str(r.version),
                r.state + (" (withdrawal)" if r.action == "canceled" else ""),
                str(r.attempts),
                f"{when:%m-%d %H:%M:%S}" if when and r.state != "superseded" else "",
            ]
            if wide:
                cells.append(r.webhook_id)
            table.add_row(*cells, r.last_error or "")
        console.print(table)
    else:
        say("no deliveries" + (f" {' or '.join(states)}" if states else " yet"))
    say(
        f"outbox: {counts['pending']:,} pending, {counts['failing']:,} failing, "
        f"{counts['sent']:,} sent, {counts['superseded']:,} superseded; {counts['due']:,} due now"
    )


def register(app: typer.Typer) -> None:
    """Add ``deliver`` and ``deliveries`` to the top-level command."""
    app.command("deliver")(handle_errors(deliver_cmd))
    app.command("deliveries")(handle_errors(deliveries_cmd))
