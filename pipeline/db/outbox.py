"""The delivery outbox (``deliveries``): what editors signed off, waiting to reach the CMS.

An **item** is one (article, task): the text the CMS shows in one place, named by a stable
ninjs ``uri``. Every decision that changes what the CMS should show adds a **version** of the
item, one row here, in the same transaction as the decision (``add_delivery``, called by
``pipeline.review.decide``): an approval or an edit a version with the text, a rejection of an
item the CMS already has a version that withdraws it (``canceled``). The row's ``webhook_id``
is made once, with the row, so every send of one version carries the same id and a receiver
drops repeats. A newer version supersedes the older ones not yet sent: they are
never sent (the newest carries the current text).

Sending (``pipeline.delivery``) claims due rows with a lease (``claim_deliveries``: PostgreSQL
``FOR UPDATE SKIP LOCKED``, SQLite inside ``BEGIN IMMEDIATE``), never a row whose item has
another version in flight (versions reach the CMS in order), and records each outcome under
its lease (``mark_sent``, ``mark_failed``). A deliverer that died on this machine gives its
leases back at the next claim (``release_dead``); elsewhere its leases expire.

States: ``pending`` (never tried) -> ``sent`` | ``failing`` (tried; retried at
``next_attempt_at``) -> ``sent``; ``superseded`` (a newer version came before it was sent).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from pipeline.db.models import Article, Base, Generation, Review, utcnow
from pipeline.db.procs import host_id, pid_alive

DELIVERY_STATES = ("pending", "failing", "sent", "superseded")
UNSENT = ("pending", "failing")
URI_PREFIX = "urn:contentgen:"


class Delivery(Base):
    """One version of one item for the CMS (see the module docstring)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("article_id", "task", "version"),
        Index("ix_deliveries_due", "state", "next_attempt_at"),
        Index("ix_deliveries_item", "article_id", "task"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(512))
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    # approved | edited: the text; canceled: a rejection withdraws what the CMS has.
    action: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def item_uri(source_id: str, task: str) -> str:
    """The ninjs ``uri`` of an (article, task) item: the same for every version of it."""
    return f"{URI_PREFIX}{quote(source_id, safe='')}:{quote(task, safe='')}"


def webhook_id() -> str:
    """A new Standard Webhooks message id for one version, stored with it, so every send of
    the version carries it and a receiver drops repeats. Random, not derived from the item:
    another database (a rehearsal, a rebuilt one) never reuses an id the CMS has seen."""
    return f"msg_{secrets.token_hex(16)}"


def _item(article_id: int, task: str) -> Any:
    return and_(Delivery.article_id == article_id, Delivery.task == task)


def add_delivery(
    session: Session,
    *,
    article_id: int,
    source_id: str,
    task: str,
    generation_id: int,
    review_id: int,
    decision: str,
    now: dt.datetime | None = None,
) -> Delivery | None:
    """Add the version a decision makes to the caller's transaction (flushed, not committed).

    ``approved``/``edited`` add a version with the text. ``rejected`` adds a ``canceled``
    version only when the CMS has, or may have, an earlier version (one sent or in flight);
    otherwise it only supersedes what was waiting, and returns None. Older unsent versions
    of the item are superseded either way.
    """
    now = now or utcnow()
    item = _item(article_id, task)
    if decision == "rejected":
        reached = session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(item, or_(Delivery.state == "sent", Delivery.lease_owner.is_not(None)))
        )
        last = session.scalar(
            select(Delivery.action).where(item).order_by(Delivery.version.desc()).limit(1)
        )
        if last == "canceled":
            return None  # already withdrawn, or its withdrawal is on its way
        if not reached:
            _supersede(session, article_id, task, now)
            return None
        action = "canceled"
    elif decision in ("approved", "edited"):
        action = decision
    else:
        raise ValueError(f"no delivery for a decision {decision!r}")
    _supersede(session, article_id, task, now)
    version = (session.scalar(select(func.max(Delivery.version)).where(item)) or 0) + 1
    uri = item_uri(source_id, task)
    row = Delivery(
        article_id=article_id,
        task=task,
        version=version,
        uri=uri,
        webhook_id=webhook_id(),
        generation_id=generation_id,
        review_id=review_id,
        action=action,
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _supersede(session: Session, article_id: int, task: str, now: dt.datetime) -> None:
    # A version in flight is superseded too: if its send succeeds it is recorded as sent
    # (it was), if it fails it is not retried.
    session.execute(
        update(Delivery)
        .where(_item(article_id, task), Delivery.state.in_(UNSENT))
        .values(state="superseded", updated_at=now)
        .execution_options(synchronize_session=False)
    )


def deliverer_owner(pid: int) -> str:
    """The lease owner of one deliverer: ``HOSTID:PID:TAG``. The host id (``procs.host_id``)
    and pid let a later deliverer on the same machine tell that it died; the random tag keeps
    two deliverers of one process from taking each other's leases for their own."""
    return f"{host_id()}:{pid}:{secrets.token_hex(4)}"


def _local_pid(owner: str | None) -> int | None:
    """The pid of a deliverer on this machine (None: elsewhere, or not a deliverer's name)."""
    parts = (owner or "").split(":")
    if len(parts) == 3 and parts[0] == host_id() and parts[1].isdigit():
        return int(parts[1])
    return None


def release_dead(session: Session, *, now: dt.datetime | None = None) -> int:
    """Give back the leases of deliverers that died on this machine (commits); the count."""
    now = now or utcnow()
    prefix = f"{host_id()}:"
    owners = session.scalars(
        select(Delivery.lease_owner)
        .where(Delivery.lease_owner.startswith(prefix, autoescape=True))
        .distinct()
    ).all()
    dead = [
        str(owner)
        for owner in owners
        if (pid := _local_pid(owner)) is not None and not pid_alive(pid)
    ]
    released = 0
    if dead:
        result = session.execute(
            update(Delivery)
            .where(Delivery.lease_owner.in_(dead))
            .values(lease_owner=None, lease_expires_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        released = int(getattr(result, "rowcount", 0) or 0)
    session.commit()
    return released


def release_leases(session: Session, owner: str, *, now: dt.datetime | None = None) -> int:
    """Give back every lease ``owner`` holds (commits); the count. A deliverer calls it when
    none of its sends is in flight, after a database error cut its recording off."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.lease_owner == owner)
        .values(lease_owner=None, lease_expires_at=None, updated_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class DeliveryFacts:
    """Everything a payload is made of: the version, its decision, the text and provenance.

    Built from rows that never change (the generation, the decision), so every send of a
    version carries the same text."""

    id: int
    uri: str
    version: int
    webhook_id: str
    action: str
    attempts: int
    created_at: dt.datetime
    first_created_at: dt.datetime
    source_id: str
    title: str
    url: str | None
    section: str | None
    article_meta: dict[str, Any] | None
    task: str
    generation_id: int
    response_id: str | None
    model: str | None
    request_model: str
    profile_version: str | None
    output_text: str | None
    output_json: dict[str, Any] | None
    checks: list[dict[str, Any]] | None
    flagged: bool
    generated_at: dt.datetime
    review_id: int
    editor: str
    decision: str
    note: str | None
    edited_text: str | None
    decided_at: dt.datetime


def claim_deliveries(
    session: Session,
    owner: str,
    n: int,
    *,
    lease_s: float,
    now: dt.datetime | None = None,
) -> list[DeliveryFacts]:
    """Lease up to ``n`` due versions to ``owner`` (oldest due first) and commit.

    Due: pending or failing, ``next_attempt_at`` passed, not leased (or the lease expired),
    and no other version of the same item leased right now. Each row goes to one caller,
    however many claim at once.
    """
    if n <= 0:
        return []
    now = now or utcnow()
    other = aliased(Delivery)
    busy = exists().where(
        other.article_id == Delivery.article_id,
        other.task == Delivery.task,
        other.id != Delivery.id,
        other.lease_owner.is_not(None),
        other.lease_expires_at >= now,
    )
    candidates = (
        select(Delivery.id)
        .where(
            Delivery.state.in_(UNSENT),
            Delivery.next_attempt_at <= now,
            or_(Delivery.lease_owner.is_(None), Delivery.lease_expires_at < now),
            ~busy,
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(n)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed = session.execute(
        update(Delivery)
        .where(Delivery.id.in_(candidates.scalar_subquery()))
        .values(
            lease_owner=owner,
            lease_expires_at=now + dt.timedelta(seconds=lease_s),
            updated_at=now,
        )
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = sorted(row[0] for row in claimed.all())
    facts = delivery_facts(session, ids)
    session.commit()
    return facts


def delivery_facts(session: Session, ids: Sequence[int]) -> list[DeliveryFacts]:
    """The facts of the deliveries ``ids``, in id order."""
    if not ids:
        return []
    first = aliased(Delivery)
    first_created = (
        select(func.min(first.created_at))
        .where(first.article_id == Delivery.article_id, first.task == Delivery.task)
        .correlate(Delivery)
        .scalar_subquery()
    )
    rows: Any = session.execute(
        select(
            Delivery.id,
            Delivery.uri,
            Delivery.version,
            Delivery.webhook_id,
            Delivery.action,
            Delivery.attempts,
            Delivery.created_at,
            first_created,
            Article.source_id,
            Article.title,
            Article.url,
            Article.section,
            Article.meta,
            Delivery.task,
            Generation.id,
            Generation.response_id,
            Generation.model,
            Generation.request_model,
            Generation.profile_version,
            Generation.output_text,
            Generation.output_json,
            Generation.checks,
            Generation.flagged,
            Generation.created_at,
            Review.id,
            Review.editor,
            Review.decision,
            Review.note,
            Review.edited_text,
            Review.created_at,
        )
        .join(Article, Article.id == Delivery.article_id)
        .join(Generation, Generation.id == Delivery.generation_id)
        .join(Review, Review.id == Delivery.review_id)
        .where(Delivery.id.in_(list(ids)))
        .order_by(Delivery.id)
    )
    return [DeliveryFacts(*row) for row in rows]


def mark_sent(
    session: Session, delivery_id: int, owner: str, *, status: int | None, now: dt.datetime
) -> bool:
    """Record a version as sent, if ``owner`` still holds it (commits); whether it did."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.lease_owner == owner)
        .values(
            state="sent",
            sent_at=now,
            attempts=Delivery.attempts + 1,
            last_status=status,
            last_error=None,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


def mark_failed(
    session: Session,
    delivery_id: int,
    owner: str,
    *,
    error: str,
    status: int | None,
    retry_at: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Record a failed send, to be retried at ``retry_at`` unless a newer version superseded
    it meanwhile (commits); whether ``owner`` still held it."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.lease_owner == owner)
        .values(
            state=case((Delivery.state == "superseded", "superseded"), else_="failing"),
            attempts=Delivery.attempts + 1,
            last_status=status,
            last_error=error[:2000],
            next_attempt_at=retry_at,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))
