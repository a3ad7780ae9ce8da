"""``contentgen review``: sign outputs off from the command line (list, show, approve, edit,
reject, report). The logic is ``pipeline.review``; this module parses options and prints."""

from __future__ import annotations

import getpass
from pathlib import Path

import click
import typer
from rich.table import Table

from pipeline.checks import reasons_text, summary_text
from pipeline.cli.common import (
    JSON_OPTION,
    check_task_names,
    console,
    database_errors,
    handle_errors,
    joined_tasks,
    open_db,
    print_json,
    say,
)
from pipeline.cli.report_cmd import fitted_table
from pipeline.db import REVIEW_STATES
from pipeline.errors import InputError
from pipeline.reports import local_time, usd_shown
from pipeline.review import (
    TO_REVIEW,
    Decided,
    Output,
    ReviewFilter,
    ReviewReport,
    decide,
    find,
    grades,
    history,
    list_outputs,
    refs,
    review_report,
)
from pipeline.settings import Settings, get_settings

review_app = typer.Typer(
    help="Sign outputs off: list what waits, show one, approve, edit or reject it, and report "
    "approval rates. An output is a generation id or ARTICLE:TASK.\n\n"
    "Example: `contentgen review list --tasks summary`",
)

EDITOR_OPTION = typer.Option(
    None, "--editor", help="Who decides (default: CONTENTGEN_EDITOR, else the OS user)."
)
NOTE_OPTION = typer.Option(None, "--note", help="Why (kept with the decision).")


def _editor(given: str | None, settings: Settings) -> str:
    if given:
        return given
    if settings.editor:
        return settings.editor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise InputError("say who decides: --editor NAME (or CONTENTGEN_EDITOR)") from None


def _clip(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


@review_app.command("list")
@handle_errors
def list_cmd(
    states: list[str] = typer.Option(
        [],
        "--state",
        help="Only these review states (repeatable; default: flagged and pending).",
    ),
    every_state: bool = typer.Option(False, "--all-states", help="Every review state."),
    tasks: list[str] = typer.Option([], "--tasks", "-t", help="Only these tasks (a,b)."),
    articles: list[str] = typer.Option([], "--article", help="Only this article (repeatable)."),
    batch: str | None = typer.Option(None, "--batch", "-b", help="Only this batch label."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    json_out: bool = JSON_OPTION,
) -> None:
    """List current outputs waiting for an editor (flagged or pending), or in any state.

    Example: `contentgen review list --state flagged --tasks headline`
    """
    settings = get_settings()
    task_list = tuple(joined_tasks(tasks))
    if task_list:
        check_task_names(settings, task_list)
    unknown = [s for s in states if s not in REVIEW_STATES]
    if unknown:
        raise InputError(
            f"unknown review state(s) {', '.join(unknown)}: {', '.join(REVIEW_STATES)}"
        )
    chosen: tuple[str, ...] = () if every_state else (tuple(states) or TO_REVIEW)
    flt = ReviewFilter(
        states=chosen, tasks=task_list, articles=tuple(articles), batch_label=batch, limit=limit
    )
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            rows = list_outputs(session, flt)
    finally:
        engine.dispose()
    if json_out:
        print_json([r.as_dict() for r in rows])
        return
    if not rows:
        what = "outputs" if every_state else f"outputs {' or '.join(chosen)}"
        say(f"no {what} to show")
        return
    table = Table("id", "output", "version", "state", "checks")
    width = max(console.width - 70, 20)
    table.add_column("text", no_wrap=True, max_width=width)
    for r in rows:
        table.add_row(
            str(r.generation_id),
            r.ref,
            r.version.partition("@")[2],
            r.review_state or "-",
            summary_text(r.checks),
            _clip(r.final_text, width),
        )
    console.print(table)
    say(f"{len(rows):,} output(s). Next: `contentgen review show ID`, then approve, edit or reject")


def _print_output(output: Output, session_data: dict[str, list[str]]) -> None:
    say(f"{output.title}")
    say(f"article {output.source_id}" + (f" · {output.url}" if output.url else ""))
    console.rule(f"{output.task} · generation {output.generation_id}", style="dim")
    tier = f" ({output.service_tier})" if output.service_tier else ""
    say(f"{output.version} · {output.model}{tier} · {local_time(output.created_at)}")
    say(f"review: {output.review_state or '-'}")
    for line in session_data["checks"]:
        say(f"  {line}")
    for line in session_data["grades"]:
        say(f"  {line}")
    say("")
    if output.decision == "edited":
        say("Editor's text:")
        say(output.final_text or "")
        say("")
        say("Model's text:")
    say(output.output_text or "(no text)")
    if session_data["history"]:
        say("")
        say("Decisions:")
        for line in session_data["history"]:
            say(f"  {line}")


@review_app.command("show")
@handle_errors
def show_cmd(
    ref: str = typer.Argument(..., metavar="OUTPUT", help="Generation id or ARTICLE:TASK."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Show one output: its text (and the editor's), provenance, checks, grades and decisions.

    Example: `contentgen review show nm-2025-0001:summary`
    """
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session, database_errors():
            output = find(session, ref)
            decisions = history(session, output.generation_id)
            verdicts = grades(session, output.generation_id)
    finally:
        engine.dispose()
    if json_out:
        print_json(
            {
                **output.as_dict(),
                "decisions": [d.as_dict() for d in decisions],
                "grades": [
                    {"generation_id": g.generation_id, "flagged": g.flagged, "checks": g.checks}
                    for g in verdicts
                ],
            }
        )
        return
    lines = {
        "checks": reasons_text(output.checks) or ["no checks declared for this task"],
        "grades": [
            f"grade by {g.task} (generation {g.generation_id}): "
            f"{'FLAGGED' if g.flagged else 'passed'}; " + "; ".join(reasons_text(g.checks))
            for g in verdicts
        ],
        "history": [
            f"{local_time(d.created_at)} {d.decision} by {d.editor}"
            + (f": {d.note}" if d.note else "")
            + (" (re-queued)" if d.regenerate else "")
            for d in decisions
        ],
    }
    _print_output(output, lines)


def _record(
    ref_values: list[str],
    decision: str,
    *,
    editor: str | None,
    note: str | None = None,
    edited_text: str | None = None,
    regenerate_job: bool = False,
    json_out: bool = False,
) -> None:
    """Record ``decision`` on each output, all in one transaction (none if one is refused)."""
    settings = get_settings()
    who = _editor(editor, settings)
    follows = None
    if regenerate_job:
        follows = {task: p.follows for task, p in check_task_names(settings, []).items()}
    engine, sessions = open_db(settings)
    done: list[Decided] = []
    try:
        with sessions() as session, database_errors():
            for ref in refs(ref_values):
                output = find(session, ref)
                done.append(
                    decide(
                        session,
                        output,
                        decision,
                        editor=who,
                        note=note,
                        edited_text=edited_text,
                        regenerate_job=regenerate_job,
                        follows=follows,
                    )
                )
            session.commit()
    finally:
        engine.dispose()
    if json_out:
        print_json(
            [
                {
                    "generation_id": d.output.generation_id,
                    "output": d.output.ref,
                    "decision": d.decision,
                    "review_id": d.review_id,
                    "editor": who,
                    "requeued": d.requeued,
                    "delivery_version": d.delivery_version,
                    "warning": d.warning,
                }
                for d in done
            ]
        )
        return
    for d in done:
        again = (
            " and re-queued: `contentgen run` writes it again with the note" if d.requeued else ""
        )
        cms = ""
        if d.delivery_version:
            what = "its withdrawal" if decision == "rejected" else "it"
            cms = f"; {what} queued for the CMS as v{d.delivery_version}"
        say(
            f"{d.output.ref} (generation {d.output.generation_id}): {decision} by {who}{again}{cms}"
        )
        if d.warning:
            say(f"warning: {d.warning}", err=True)


@review_app.command("approve")
@handle_errors
def approve_cmd(
    outputs: list[str] = typer.Argument(..., metavar="OUTPUT...", help="Generation ids or A:T."),
    editor: str | None = EDITOR_OPTION,
    note: str | None = NOTE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Approve outputs as they are: they may be published (`results --approved`).

    Example: `contentgen review approve 1234 nm-2025-0002:headline --editor ana`
    """
    _record(outputs, "approved", editor=editor, note=note, json_out=json_out)


@review_app.command("edit")
@handle_errors
def edit_cmd(
    output: str = typer.Argument(..., metavar="OUTPUT", help="Generation id or ARTICLE:TASK."),
    text: str | None = typer.Option(None, "--text", help="The new text (no editor opens)."),
    file: Path | None = typer.Option(
        None, "--file", dir_okay=False, exists=True, help="Read the new text from this file."
    ),
    editor: str | None = EDITOR_OPTION,
    note: str | None = NOTE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Correct an output's text and sign it off: the editor's text is kept beside the model's.

    Without --text or --file, $VISUAL or $EDITOR opens the text as it stands; save to record
    it, quit without saving to leave everything as it was.

    Example: `EDITOR=nano contentgen review edit nm-2025-0001:summary`
    """
    if text is not None and file is not None:
        raise InputError("give --text or --file, not both")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {file}: {exc}") from exc
    if text is None:
        engine, sessions = open_db(get_settings())
        try:
            with sessions() as session, database_errors():
                current = find(session, output)
        finally:
            engine.dispose()
        try:
            text = click.edit(current.final_text or "", extension=".txt", require_save=True)
        except click.ClickException as exc:
            raise InputError(
                f"cannot open an editor ({exc.format_message()}); set $EDITOR or use --text or "
                "--file"
            ) from None
        if text is None:
            say("no change saved: nothing recorded")
            return
    _record([output], "edited", editor=editor, note=note, edited_text=text, json_out=json_out)


@review_app.command("reject")
@handle_errors
def reject_cmd(
    outputs: list[str] = typer.Argument(..., metavar="OUTPUT...", help="Generation ids or A:T."),
    note: str = typer.Option(..., "--note", help="What is wrong (required; sent on regenerate)."),
    regenerate_job: bool = typer.Option(
        False,
        "--regenerate",
        help="Also re-queue the job: the next run sends the note after the cached prompt.",
    ),
    editor: str | None = EDITOR_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Reject outputs with a note; --regenerate has them written again with that note.

    Example: `contentgen review reject nm-2025-0001:headline --note "Too long" --regenerate`
    """
    _record(
        outputs,
        "rejected",
        editor=editor,
        note=note,
        regenerate_job=regenerate_job,
        json_out=json_out,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_report(report: ReviewReport) -> None:
    """Review by task and version, then flags by check (narrow terminals drop columns)."""
    if not report.versions:
        say("no outputs yet")
        return
    headers = ["version", "outputs", "pending", "flagged", "approved", "edited", "rejected"]
    headers += ["auto", "approval", "edits", "cost $", "$/approved"]
    rows = []
    for v in report.versions:
        per = v.cost_per_approved_usd
        counts = (v.outputs, v.pending, v.flagged, v.approved, v.edited, v.rejected, v.auto)
        rows.append(
            [
                v.version,
                *(f"{n:,}" for n in counts),
                _pct(v.approval_rate),
                _pct(v.edit_rate),
                usd_shown(v.cost_usd),
                "-" if per is None else f"{per:.6f}",
            ]
        )
    table, hidden = fitted_table(
        "Review by task and version",
        headers,
        rows,
        drop_order=("cost $", "auto", "outputs", "edits", "rejected"),
        width=console.width,
    )
    console.print(table)
    if hidden:
        say(f"(hidden for width: {', '.join(hidden)}; all are in --json)")
    if report.checks:
        flags, _ = fitted_table(
            "Flags by check",
            ["version", "check", "checked", "failed", "then retried", "failed %"],
            [
                [
                    c.version,
                    c.check,
                    f"{c.checked:,}",
                    f"{c.failed:,}",
                    f"{c.failed_then_retried:,}",
                    _pct(c.failed_share),
                ]
                for c in report.checks
            ],
            drop_order=("then retried",),
            width=console.width,
            left=2,
        )
        console.print(flags)


@review_app.command("report")
@handle_errors
def report_cmd(json_out: bool = JSON_OPTION) -> None:
    """Approval and edit rates, cost per approved text and flags by check, per task version.

    The same figures are the SQL views v_review_by_version and v_flags_by_check.

    Example: `contentgen review report --json`
    """
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session, database_errors():
            report = review_report(session)
    finally:
        engine.dispose()
    if json_out:
        print_json(
            {
                "versions": [v.as_dict() for v in report.versions],
                "checks": [c.as_dict() for c in report.checks],
            }
        )
        return
    print_report(report)


def register(app: typer.Typer) -> None:
    """Add ``review`` to ``app``."""
    app.add_typer(review_app, name="review")
