"""Evaluate and send alerts, once per event, from what the database says.

Called after a run, by the CLI and the flows, with the run ids: the events come from the
closed run rows (``events``), each is recorded in ``alerts_sent`` before it is sent
(``db.claim_alert``), so evaluating a run twice sends nothing the second time, and every
failure to send is a logged warning: an alert never fails the run it is about.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.alerts.channels import Delivery, Message, deliver
from pipeline.alerts.config import AlertsConfig, load_alerts
from pipeline.alerts.events import Event, deadline_event, run_events, soft_budget_events
from pipeline.db import (
    Run,
    budget_uses,
    claim_alert,
    make_engine,
    note_alert_outcome,
    runs_started_since,
    session_factory,
    utcnow,
)
from pipeline.errors import ConfigError
from pipeline.money import load_budgets
from pipeline.settings import Settings

log = logging.getLogger("contentgen.alerts")


@dataclass(frozen=True)
class Sent:
    """An event's alert and what each channel did with it."""

    event: Event
    deliveries: list[Delivery]

    def line(self) -> str:
        """``run:12:fatal -> webhook https://…/…: sent (HTTP 200)``."""
        outcome = "; ".join(d.line() for d in self.deliveries) or "no channel configured"
        return f"{self.event.key} -> {outcome}"


@contextmanager
def _session(settings: Settings) -> Iterator[Session]:
    engine = make_engine(settings.database_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def alerts_config(settings: Settings, environ: Mapping[str, str] | None = None) -> AlertsConfig:
    """The alerts configuration (``ConfigError`` naming file and field when it is wrong)."""
    return load_alerts(settings.config_dir, os.environ if environ is None else environ)


def _send(session: Session, config: AlertsConfig, event: Event) -> Sent | None:
    """Record the event, then send it; None when it was recorded (sent) before."""
    if not config.channels:
        return None
    message = event.message
    if not claim_alert(
        session, event.key, event=message.event, run_id=event.run_id, text=message.text
    ):
        return None
    deliveries = deliver(config, message)
    note_alert_outcome(session, event.key, "; ".join(d.line() for d in deliveries))
    for d in deliveries:
        if not d.sent:
            log.warning("alert %s not sent: %s", event.key, d.line())
    return Sent(event, deliveries)


def notify_runs(
    settings: Settings,
    run_ids: list[int],
    *,
    details: Mapping[int, str] | None = None,
    environ: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> list[Sent]:
    """Alert on the events of the closed runs ``run_ids`` and on recurring budgets past their
    soft share (``details``: per run, the fatal error's line). Never raises: a problem is a
    warning in the log, and the run's own outcome stands."""
    try:
        config = alerts_config(settings, environ)
        if not config.channels:
            return []
        budgets = load_budgets(settings.config_dir)
        sent: list[Sent] = []
        with _session(settings) as session:
            uses = budget_uses(session, budgets, now or utcnow())
            runs = session.scalars(select(Run).where(Run.id.in_(run_ids)).order_by(Run.id))
            events: list[Event] = []
            for run in runs:
                if run.state == "running":
                    continue
                detail = (details or {}).get(run.id)
                events += run_events(run, config.rules, detail=detail, budgets=uses)
            events += soft_budget_events(uses)
            for event in events:
                found = _send(session, config, event)
                if found is not None:
                    sent.append(found)
        return sent
    except Exception as exc:  # an alert must never fail the run
        log.warning("alerts not evaluated: %s: %s", type(exc).__name__, exc)
        return []


def flow_run_ids(settings: Settings, flow_run_id: str) -> list[int]:
    """The run rows of a Prefect flow run."""
    with _session(settings) as session:
        query = select(Run.id).where(Run.flow_run_id == flow_run_id).order_by(Run.id)
        return list(session.scalars(query))


@dataclass(frozen=True)
class DeadlineCheck:
    """What ``check_deadline`` found: ``not configured``, ``not due``, ``started`` (a nightly
    run started in time), ``alerted`` or ``alerted before``; and what was sent."""

    status: str
    line: str
    sent: Sent | None = None


def check_deadline(
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> DeadlineCheck:
    """Alert when no nightly run started in the 24 hours before today's ``nightly_deadline``
    (in the alerts' time zone, default ``CONTENTGEN_TIMEZONE``) once that deadline has passed.
    Raises ``ConfigError`` when the alerts configuration is wrong."""
    config = alerts_config(settings, environ)
    deadline = config.rules.deadline()
    if deadline is None or config.rules.nightly_deadline is None:
        return DeadlineCheck(
            "not configured", f"no nightly_deadline in [alerts] of {config.source}"
        )
    zone_name = config.rules.timezone or settings.timezone
    zone = ZoneInfo(zone_name)
    aware = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    due = dt.datetime.combine(aware.date(), deadline, tzinfo=zone)
    if aware < due:
        return DeadlineCheck("not due", f"the deadline {due:%Y-%m-%d %H:%M} {zone_name} is ahead")
    since = (due - dt.timedelta(days=1)).astimezone(dt.UTC).replace(tzinfo=None)
    with _session(settings) as session:
        started = runs_started_since(session, since, kind="nightly")
        in_time = [
            r for r in started if r.started_at <= due.astimezone(dt.UTC).replace(tzinfo=None)
        ]
        if in_time:
            first = in_time[0]
            return DeadlineCheck(
                "started", f"nightly run {first.id} started {first.started_at:%Y-%m-%d %H:%M} UTC"
            )
        last = session.scalars(
            select(Run).where(Run.kind == "nightly").order_by(Run.id.desc()).limit(1)
        ).first()
        event = deadline_event(aware.date(), config.rules.nightly_deadline, zone_name, last)
        if not config.channels:
            return DeadlineCheck("missed", event.message.subject + " (no channel configured)")
        sent = _send(session, config, event)
    if sent is None:
        return DeadlineCheck("alerted before", event.message.subject + " (alerted before)")
    return DeadlineCheck("alerted", event.message.subject, sent)


def send_test(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Delivery]:
    """Send a test message to every configured channel (not recorded: a test may be sent any
    number of times). ``ConfigError`` when no channel is configured."""
    config = alerts_config(settings, environ)
    if not config.channels:
        raise ConfigError(
            f"{config.source}: no alert channel configured: add [alerts.webhook] (or set "
            "CONTENTGEN_ALERT_WEBHOOK_URL) or [alerts.email]"
        )
    when = dt.datetime.now(dt.UTC)
    message = Message(
        "test",
        "ContentGen: test alert",
        f"A test alert from ContentGen at {when:%Y-%m-%d %H:%M} UTC: this channel works.\n"
        "Look closer: contentgen alerts test --help",
        {"sent_at": when.isoformat(), "command": "contentgen alerts test"},
    )
    return deliver(config, message)
