"""The deliverer: claim due versions from the outbox, send them, record each outcome.

``deliver`` claims up to ``concurrency`` due versions at a time with a lease
(``db.claim_deliveries``: safe with any number of deliverers on PostgreSQL), sends them in a
thread pool, and records each as soon as it is answered: ``sent``, or ``failing`` with the
error, the attempt count and the next attempt's time (``DeliveryConfig.retry_delay_s``:
exponential backoff up to an hour; a version is never given up). A deliverer killed mid-send
loses nothing: what it had claimed goes back at the next deliverer's start on this machine
(``db.release_dead``) or when its lease expires elsewhere, and is sent again under the same
``webhook-id``, so a receiver that keeps the ids it processed drops the repeat. At most the
sends in flight at the kill (``concurrency``) are repeated.

Without ``watch`` it stops when nothing is due (versions failing wait for their next attempt
in a later pass); with ``watch`` it polls until ``stop`` is set, then finishes and records
its sends in flight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from pipeline.db import (
    DeliveryFacts,
    claim_deliveries,
    deliverer_owner,
    delivery_counts,
    make_engine,
    mark_failed,
    mark_sent,
    next_due_at,
    release_dead,
    release_leases,
    require_migrated,
    retry_now,
    session_factory,
    utcnow,
)
from pipeline.delivery.config import DeliveryConfig, load_delivery_config
from pipeline.delivery.payload import body_bytes, ninjs
from pipeline.delivery.targets import Sent, Target, make_target
from pipeline.settings import Settings

POLL_S = 5.0


@dataclass(frozen=True)
class DeliveryEvent:
    """One send's outcome, as a progress line shows it."""

    outcome: str  # sent | failing | lost (another deliverer took it over; not recorded)
    ref: str
    version: int
    webhook_id: str
    attempts: int
    status: int | None = None
    error: str | None = None
    retry_in_s: float | None = None

    def line(self) -> str:
        """``sent nm-1:summary v2 msg_... (HTTP 200)`` and the like."""
        head = f"{self.outcome} {self.ref} v{self.version} {self.webhook_id}"
        if self.outcome == "sent":
            return head + (f" (HTTP {self.status})" if self.status else "")
        if self.outcome == "failing":
            return (
                f"{head}: {self.error}; attempt {self.attempts}, "
                f"next in {_duration(self.retry_in_s or 0)}"
            )
        return head + ": its lease passed to another deliverer; not recorded here"


@dataclass
class DeliverySummary:
    """What one ``deliver`` call did, and the outbox after it."""

    target: str
    sent: int = 0
    failed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    next_due_at: dt.datetime | None = None

    @property
    def failing(self) -> int:
        """Versions failing after this call (refused or unanswered; waiting for a retry)."""
        return self.counts.get("failing", 0)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        data = asdict(self)
        data["failing"] = self.failing
        data["next_due_at"] = self.next_due_at.isoformat() if self.next_due_at else None
        return data

    def line(self) -> str:
        """``3 sent, 1 failed; outbox: 12 sent, 1 failing (next attempt 2026-...)``."""
        c = self.counts
        text = (
            f"{self.sent:,} sent, {self.failed:,} failed to {self.target}; outbox: "
            f"{c.get('sent', 0):,} sent, {c.get('pending', 0):,} pending, "
            f"{c.get('failing', 0):,} failing"
        )
        if self.next_due_at is not None and (c.get("pending", 0) or c.get("failing", 0)):
            text += f" (next attempt {self.next_due_at:%Y-%m-%d %H:%M:%S} UTC)"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _send(target: Target, facts: DeliveryFacts, language: str) -> Sent:
    try:
        return target.send(facts.webhook_id, body_bytes(ninjs(facts, language=language)))
    except Exception as exc:  # a bug in one payload must not stop the others
        return Sent(False, None, f"{type(exc).__name__}: {exc}")


def deliver(
    settings: Settings,
    *,
    watch: bool = False,
    limit: int | None = None,
    poll_s: float = POLL_S,
    on_event: Callable[[DeliveryEvent], None] | None = None,
    stop: threading.Event | None = None,
    config: DeliveryConfig | None = None,
    target: Target | None = None,
    retry_failing_now: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> DeliverySummary:
    """Send what is due (see the module docstring); ``limit`` caps the sends of this call.

    With ``watch``, a database error (a restart, a dropped connection) is ridden out: the
    deliverer says so through ``on_note``, waits, gives back what it held and goes on.

    ``retry_failing_now`` makes failing versions due at once instead of at their next
    attempt (the CMS is back). ``config`` and ``target`` default to the settings'
    (``load_delivery_config``, ``make_target``); a ``ConfigError`` names what is missing.
    """
    config = config or load_delivery_config(settings)
    stop = stop or threading.Event()
    engine = make_engine(settings.database_url)
    own_target = target is None
    summary = DeliverySummary(config.target)
    try:
        require_migrated(engine)
        sessions = session_factory(engine)
        target = target or make_target(config)
        with sessions() as session, ThreadPoolExecutor(config.concurrency) as pool:
            if retry_failing_now:
                retry_now(session)
            run = _Pass(
                session,
                pool,
                target,
                config,
                summary,
                deliverer_owner(os.getpid()),
                watch,
                limit,
                poll_s,
                on_event,
                stop,
            )
            while True:
                try:
                    _loop(run)
                    break
                except DBAPIError as exc:
                    if not watch or stop.is_set():
                        raise
                    with contextlib.suppress(DBAPIError):
                        session.rollback()
                    wait_s = max(poll_s, 1.0)
                    if on_note is not None:
                        on_note(f"database error ({exc.orig or exc}); trying again in {wait_s} s")
                    stop.wait(wait_s)
            summary.counts = delivery_counts(session)
            summary.next_due_at = next_due_at(session)
            session.rollback()
    finally:
        if own_target and target is not None:
            target.close()
        engine.dispose()
    return summary


@dataclass
class _Pass:
    """What one ``deliver`` call works with (one lease owner for the whole call)."""

    session: Session
    pool: ThreadPoolExecutor
    target: Target
    config: DeliveryConfig
    summary: DeliverySummary
    owner: str
    watch: bool
    limit: int | None
    poll_s: float
    on_event: Callable[[DeliveryEvent], None] | None
    stop: threading.Event


def _loop(run: _Pass) -> None:
    session, config, summary, owner = run.session, run.config, run.summary, run.owner
    release_dead(session)
    release_leases(session, owner)  # what this call held when the database failed
    while not run.stop.is_set():
        done = summary.sent + summary.failed
        n = config.concurrency if run.limit is None else min(config.concurrency, run.limit - done)
        if n <= 0:
            return
        claimed = claim_deliveries(session, owner, n, lease_s=config.lease_s)
        if not claimed:
            if not run.watch:
                return
            run.stop.wait(_idle_wait(session, run.poll_s))
            release_dead(session)
            continue
        futures: dict[Future[Sent], DeliveryFacts] = {
            run.pool.submit(_send, run.target, facts, config.language): facts for facts in claimed
        }
        try:
            for future in as_completed(futures):
                event = _record(session, owner, config, futures[future], future.result())
                if event.outcome == "sent":
                    summary.sent += 1
                elif event.outcome == "failing":
                    summary.failed += 1
                if run.on_event is not None:
                    run.on_event(event)
        finally:
            wait(futures)  # a database error while recording: no send of ours left in flight


def _idle_wait(session: Session, poll_s: float) -> float:
    soonest = next_due_at(session)
    session.rollback()  # end the read: SQLite holds its write lock for a whole transaction
    # Nothing was claimable: one already due is held by another deliverer (or another version
    # of its item is), so wait a whole poll; else until the next retry falls due.
    left_s = (soonest - utcnow()).total_seconds() if soonest is not None else poll_s
    return poll_s if left_s <= 0 else min(poll_s, max(left_s, 0.05))


def _record(
    session: Session, owner: str, config: DeliveryConfig, facts: DeliveryFacts, sent: Sent
) -> DeliveryEvent:
    now = utcnow()
    ref = f"{facts.source_id}:{facts.task}"
    attempts = facts.attempts + 1
    if sent.ok:
        held = mark_sent(session, facts.id, owner, status=sent.status, now=now)
        outcome = "sent" if held else "lost"
        return DeliveryEvent(outcome, ref, facts.version, facts.webhook_id, attempts, sent.status)
    delay = config.retry_delay_s(attempts)
    held = mark_failed(
        session,
        facts.id,
        owner,
        error=sent.error or "failed",
        status=sent.status,
        retry_at=now + dt.timedelta(seconds=delay),
        now=now,
    )
    return DeliveryEvent(
        "failing" if held else "lost",
        ref,
        facts.version,
        facts.webhook_id,
        attempts,
        sent.status,
        sent.error,
        delay,
    )
