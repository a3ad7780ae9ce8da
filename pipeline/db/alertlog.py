"""The alerts sent (``alerts_sent``): one row per event, so an event is sent once.

``claim_alert`` inserts the event's key before anything is sent; a second evaluation of the
same event (the CLI and a flow, or a retried flow) finds the key taken and sends nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from pipeline.db.articles import dialect_insert
from pipeline.db.models import AlertSent, Run, utcnow

_ALERTS = cast(Table, AlertSent.__table__)


def claim_alert(session: Session, key: str, *, event: str, run_id: int | None, text: str) -> bool:
    """Record the alert ``key`` and commit; False when it was already recorded (sent before)."""
    values = {
        "key": key[:200],
        "event": event[:32],
        "run_id": run_id,
        "text": text,
        "sent_at": utcnow(),
    }
    # RETURNING, not rowcount: psycopg counts an INSERT that did nothing on conflict as 1.
    inserted = session.execute(
        dialect_insert(session, _ALERTS)
        .values(values)
        .on_conflict_do_nothing()
        .returning(_ALERTS.c.id)
    ).scalar()
    session.commit()
    return inserted is not None


def note_alert_outcome(session: Session, key: str, outcome: str) -> None:
    """Store what each channel did with the alert ``key`` and commit."""
    session.execute(update(AlertSent).where(AlertSent.key == key[:200]).values(outcome=outcome))
    session.commit()


def alerts_sent(session: Session, *, run_id: int | None = None) -> list[AlertSent]:
    """The alerts recorded, oldest first (those of ``run_id`` when given)."""
    query = select(AlertSent).order_by(AlertSent.id)
    if run_id is not None:
        query = query.where(AlertSent.run_id == run_id)
    return list(session.scalars(query))


def runs_started_since(session: Session, since: dt.datetime, *, kind: str) -> list[Run]:
    """Runs of ``kind`` started at or after ``since`` (naive UTC)."""
    return list(
        session.scalars(
            select(Run).where(Run.kind == kind, Run.started_at >= since).order_by(Run.id)
        )
    )
