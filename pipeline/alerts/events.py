"""Which events a run's row (or a budget's period, or a missed nightly run) is worth an alert
for, each as one ``Message`` with its figures and the command to look closer. Values in,
values out: ``notify`` reads the rows and sends.

Events of a run: ``failed`` (state failed), ``fatal`` (failed on an error no request gets
past: bad key, no quota, unknown model, API unreachable), ``budget`` (state budget: stopped
by ``--budget-usd`` or a recurring budget), ``database`` (the database stayed away),
``stopped`` (another stop a run cannot recover from by itself), ``cancelled``,
``failure_rate`` and ``over_forecast``. Stops asked by a signal (Ctrl-C, SIGTERM) are the
operator's own and not alerted. Beyond runs: ``budget_soft`` (a recurring budget passed its
soft share) and ``deadline`` (no nightly run started by the deadline).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from pipeline.alerts.channels import Message
from pipeline.alerts.config import AlertRules
from pipeline.db import BudgetUse, Run


def usd(value: Decimal | None) -> str:
    """``$0.4210`` (four decimals, ``-`` when unknown)."""
    return "-" if value is None else f"${value:,.4f}"


@dataclass(frozen=True)
class Event:
    """An event worth one alert: its dedupe key, its run (if any) and its message."""

    key: str
    run_id: int | None
    message: Message


def stop_event(run: Run) -> str | None:
    """The stop or failure event of a closed run, or None (finished, or stopped by a signal)."""
    reason = run.stop_reason or ""
    if reason.startswith("fatal"):
        return "fatal"
    if run.state == "failed":
        return "failed"
    if run.state == "cancelled":
        return "cancelled"
    if run.state == "budget" or (run.state == "stopped" and reason == "budget"):
        return "budget"
    if run.state != "stopped" or reason.startswith("signal"):
        return None
    if reason == "database unreachable":
        return "database"
    return "stopped"


_TITLES = {
    "failed": "failed",
    "cancelled": "was cancelled",
    "budget": "stopped: out of budget",
    "fatal": "failed: an error no request can get past",
    "database": "stopped: the database stayed away",
    "stopped": "stopped",
    "failure_rate": "failed too many jobs",
    "over_forecast": "cost more than its forecast",
}


def run_events(
    run: Run,
    rules: AlertRules,
    *,
    detail: str | None = None,
    budgets: list[BudgetUse] | None = None,
) -> list[Event]:
    """The events of a closed ``run`` (``detail``: the fatal error's line, which the row does
    not keep; ``budgets``: the recurring budgets' periods, shown on a budget stop)."""
    names: list[str] = []
    stopped = stop_event(run)
    if stopped is not None:
        names.append(stopped)
    finished = run.succeeded + run.failed
    if finished >= rules.failure_min_jobs and run.failed / finished >= rules.failure_rate:
        names.append("failure_rate")
    forecast = run.forecast_cost_usd
    if forecast and run.cost_usd > forecast * (1 + Decimal(str(rules.over_forecast))):
        names.append("over_forecast")
    return [_run_event(run, name, rules, detail, budgets or []) for name in names]


def _run_event(
    run: Run, name: str, rules: AlertRules, detail: str | None, budgets: list[BudgetUse]
) -> Event:
    label = f", batch {run.batch_label}" if run.batch_label else ""
    subject = f"ContentGen: {run.kind} run {run.id} {_TITLES[name]}"
    finished = run.succeeded + run.failed
    rate = run.failed / finished if finished else 0.0
    lines = [
        f"Run {run.id} ({run.kind}, {run.mode}{label}): {run.state}"
        + (f", reason: {run.stop_reason}" if run.stop_reason else ""),
    ]
    if detail:
        lines.append(f"Cause: {detail}")
    lines.append(f"Generated {run.succeeded}, failed {run.failed} ({rate:.0%} of finished jobs)")
    lines.append(
        f"Cost {usd(run.cost_usd)}, forecast {usd(run.forecast_cost_usd)}"
        + (f", budget {usd(run.budget_usd)}" if run.budget_usd is not None else "")
    )
    if name == "failure_rate":
        lines.append(
            f"Alert threshold: {rules.failure_rate:.0%} of at least {rules.failure_min_jobs}"
        )
    if name == "over_forecast":
        lines.append(f"Alert threshold: forecast + {rules.over_forecast:.0%}")
    if name == "budget":
        lines += [budget_line(use) for use in budgets]
    if name in ("budget", "fatal", "database", "stopped", "cancelled"):
        lines.append("Unsent jobs are back in the queue: the next run takes them.")
    lines.append(f"Look closer: contentgen report --run {run.id}")
    figures = {
        "run_id": run.id,
        "kind": run.kind,
        "state": run.state,
        "stop_reason": run.stop_reason,
        "batch_label": run.batch_label,
        "generated": run.succeeded,
        "failed": run.failed,
        "cost_usd": str(run.cost_usd),
        "forecast_usd": None if run.forecast_cost_usd is None else str(run.forecast_cost_usd),
        "budget_usd": None if run.budget_usd is None else str(run.budget_usd),
        "detail": detail,
        "command": f"contentgen report --run {run.id}",
    }
    message = Message(name, subject, "\n".join(lines), figures)
    return Event(f"run:{run.id}:{name}", run.id, message)


def budget_line(use: BudgetUse) -> str:
    """``Budget section=local/daily: $4.1000 of $5.0000 (82%) since 2026-12-07 00:00 UTC``."""
    return (
        f"Budget {use.spec.key}: {usd(use.spent_usd)} of {usd(use.spec.limit_usd)} "
        f"({use.share:.0%}) since {use.period_start:%Y-%m-%d %H:%M} UTC"
    )


def soft_budget_events(uses: list[BudgetUse]) -> list[Event]:
    """One event per budget period whose spend reached its soft share."""
    found = []
    for use in uses:
        share = use.spec.soft_share
        if share is None or use.share < share:
            continue
        subject = f"ContentGen: budget {use.spec.key} at {use.share:.0%} of its limit"
        text = "\n".join(
            [
                budget_line(use),
                f"Alert threshold: {share:.0%}; at the limit, runs stop claiming (exit 3).",
                "Look closer: contentgen report",
            ]
        )
        figures = {
            "budget": use.spec.key,
            "period": use.spec.period,
            "period_start": use.period_start.isoformat(),
            "spent_usd": str(use.spent_usd),
            "limit_usd": str(use.spec.limit_usd),
            "soft_share": share,
            "command": "contentgen report",
        }
        key = f"budget:{use.spec.key}:{use.period_start:%Y-%m-%dT%H:%M}"
        found.append(Event(key, None, Message("budget_soft", subject, text, figures)))
    return found


def deadline_event(day: dt.date, deadline: str, timezone: str, last: Run | None) -> Event:
    """The event of a nightly run that had not started by ``deadline`` on ``day``."""
    subject = f"ContentGen: no nightly run started by {deadline} ({timezone}) on {day}"
    before = (
        "No nightly run has ever started."
        if last is None
        else f"The last nightly run was run {last.id}, started {last.started_at:%Y-%m-%d %H:%M} "
        f"UTC ({last.state})."
    )
    text = "\n".join(
        [
            subject.removeprefix("ContentGen: ").capitalize() + ".",
            before,
            "Check that `contentgen serve` (or the worker) is running and the schedule is "
            "active: prefect deployment ls",
            "Look closer: contentgen report --by run",
        ]
    )
    figures = {
        "day": day.isoformat(),
        "deadline": deadline,
        "timezone": timezone,
        "last_run_id": None if last is None else last.id,
        "command": "contentgen report --by run",
    }
    return Event(f"deadline:{day.isoformat()}", None, Message("deadline", subject, text, figures))
