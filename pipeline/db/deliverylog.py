"""The delivery log: versions in the outbox as ``contentgen deliveries`` lists them, counts per
state, when the next one is due, and making failing ones due now (``pipeline.db.outbox``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pipeline.db.models import Article, Review, utcnow
from pipeline.db.outbox import DELIVERY_STATES, UNSENT, Delivery


@dataclass(frozen=True)
class DeliveryRow:
    """One version as ``contentgen deliveries`` lists it."""

    id: int
    source_id: str
    task: str
    version: int
    uri: str
    webhook_id: str
    action: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None
    created_at: dt.datetime
    editor: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (times ISO 8601, UTC)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("next_attempt_at", "sent_at", "created_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def list_deliveries(
    session: Session, *, states: Sequence[str] = (), limit: int | None = None
) -> list[DeliveryRow]:
    """Versions in ``states`` (all when empty), newest first."""
    query = (
        select(
            Delivery.id,
            Article.source_id,
            Delivery.task,
            Delivery.version,
            Delivery.uri,
            Delivery.webhook_id,
            Delivery.action,
            Delivery.state,
            Delivery.attempts,
            Delivery.last_status,
            Delivery.last_error,
            Delivery.next_attempt_at,
            Delivery.sent_at,
            Delivery.created_at,
            Review.editor,
        )
        .join(Article, Article.id == Delivery.article_id)
        .join(Review, Review.id == Delivery.review_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if states:
        query = query.where(Delivery.state.in_(list(states)))
    rows: Any = session.execute(query)
    return [DeliveryRow(*row) for row in rows]


def delivery_counts(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Versions per state, plus ``due`` (pending or failing whose next attempt has come)."""
    now = now or utcnow()
    counts = {state: 0 for state in DELIVERY_STATES}
    for state, n in session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)):
        counts[str(state)] = int(n)
    counts["due"] = int(
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.state.in_(UNSENT), Delivery.next_attempt_at <= now)
        )
        or 0
    )
    return counts


def retry_now(session: Session, *, now: dt.datetime | None = None) -> int:
    """Make every failing version due now (the CMS is back: do not wait for the backoff);
    commits; the count."""
    now = now or utcnow()
    result = session.execute(
        update(Delivery)
        .where(Delivery.state == "failing", Delivery.next_attempt_at > now)
        .values(next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def next_due_at(session: Session) -> dt.datetime | None:
    """When the soonest unsent version is due (None: nothing waits)."""
    return session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(Delivery.state.in_(UNSENT))
    )
