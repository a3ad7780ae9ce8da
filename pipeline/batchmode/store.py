"""The ``batches`` and ``batch_items`` tables: batch mode's memory across crashes and restarts.

Every step is committed as soon as it has happened: the batch row with its items and the
hand-over of its jobs' leases (one transaction, before anything is uploaded), then the input
file id, then the batch id. A restarted run reads the open rows and carries on from the last
committed step. Jobs of a batch stay ``running`` under the lease owner ``batch:<row id>`` that
expires ``batch_lease_h`` after the batch was stored (beyond the 24 h window), so
``leases.requeue_expired`` leaves them alone. The items and their results: ``batchmode.items``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from pipeline.batchmode.files import Line
from pipeline.db import Batch, BatchItem, Generation, Job, utcnow
from pipeline.settings import Settings

OPEN_REMOTE = frozenset({"preparing", "uploaded", "validating", "in_progress", "finalizing"})
_CHUNK = 1000  # ids per IN (...): under SQLite's variable limit


def owner_of(row_id: int) -> str:
    """The lease owner of a batch's jobs."""
    return f"batch:{row_id}"


def filename_of(ref: str) -> str:
    """The input file's name at the provider (found again by it after a crash)."""
    return f"contentgen-{ref}.jsonl"


@dataclass(frozen=True)
class BatchRow:
    """A ``batches`` row as plain values."""

    id: int
    ref: str
    run_id: int | None
    parent_id: int | None
    model: str
    status: str
    batch_id: str | None
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    requests: int
    bytes: int
    completed: int
    failed: int
    cost_usd: Decimal
    list_cost_usd: Decimal
    error: str | None
    created_at: dt.datetime
    ingested_at: dt.datetime | None

    @property
    def owner(self) -> str:
        """The lease owner of this batch's jobs."""
        return owner_of(self.id)

    @property
    def filename(self) -> str:
        """The input file's name."""
        return filename_of(self.ref)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "id": self.id,
            "batch_id": self.batch_id,
            "model": self.model,
            "status": self.status,
            "open": self.ingested_at is None,
            "requests": self.requests,
            "completed": self.completed,
            "failed": self.failed,
            "cost_usd": str(self.cost_usd),
            "list_cost_usd": str(self.list_cost_usd),
            "savings_usd": str(self.list_cost_usd - self.cost_usd),
            "input_file_id": self.input_file_id,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "parent_id": self.parent_id,
            "run_id": self.run_id,
            "error": self.error,
            "created_at": self.created_at,
            "ingested_at": self.ingested_at,
        }


def _row(b: Batch) -> BatchRow:
    return BatchRow(
        b.id,
        b.ref,
        b.run_id,
        b.parent_id,
        b.model,
        b.status,
        b.batch_id,
        b.input_file_id,
        b.output_file_id,
        b.error_file_id,
        b.requests,
        b.bytes,
        b.completed,
        b.failed,
        b.cost_usd,
        b.list_cost_usd,
        b.error,
        b.created_at,
        b.ingested_at,
    )


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield list(ids[start : start + _CHUNK])


def _hand_over(
    session: Session, job_ids: Sequence[int], from_owner: str, to_owner: str, until: dt.datetime
) -> set[int]:
    """Move the leases of running jobs held by ``from_owner`` to ``to_owner``; the ids moved.

    The job's state does not change (it stays ``running``): only who holds it and until when.
    """
    moved: set[int] = set()
    for ids in _chunks(job_ids):
        result = session.execute(
            update(Job)
            .where(Job.id.in_(ids), Job.lease_owner == from_owner, Job.state == "running")
            .values(lease_owner=to_owner, lease_expires_at=until, updated_at=utcnow())
            .returning(Job.id)
            .execution_options(synchronize_session=False)
        )
        moved.update(row[0] for row in result)
    return moved


def create(
    session: Session,
    *,
    model: str,
    lines: Sequence[Line],
    from_owner: str,
    lease_h: float,
    run_id: int | None,
    worker: str,
    ttl_s: float,
) -> tuple[BatchRow, list[Line]] | None:
    """Store a batch of ``lines`` and hand its jobs' leases to it, in one transaction.

    The new row is held by ``worker`` (see ``take``) until it is uploaded. Lines whose job
    ``from_owner`` no longer holds are left out; returns the row and the lines kept, or None
    (nothing stored) when no job is held any more.
    """
    now = utcnow()
    batch = Batch(
        ref=uuid.uuid4().hex,
        run_id=run_id,
        model=model,
        status="preparing",
        worker=worker,
        worker_until=now + dt.timedelta(seconds=ttl_s),
        created_at=now,
        updated_at=now,
    )
    session.add(batch)
    session.flush()
    until = now + dt.timedelta(hours=lease_h)
    moved = _hand_over(
        session, [line.job_id for line in lines], from_owner, owner_of(batch.id), until
    )
    kept = [line for line in lines if line.job_id in moved]
    if not kept:
        session.rollback()
        return None
    batch.requests = len(kept)
    batch.bytes = sum(len(line.data) for line in kept)
    session.execute(
        insert(BatchItem),
        [
            {
                "batch_row_id": batch.id,
                "custom_id": line.custom_id,
                "job_id": line.job_id,
                "attempt": line.attempt,
                "task": line.task,
                "layout": line.layout,
                "prompt_cache_key": line.cache_key,
                "state": "pending",
                "profile_version": line.profile_version,
            }
            for line in kept
        ],
    )
    session.commit()
    return _row(batch), kept


def set_item(session: Session, row_id: int, cid: str, state: str) -> None:
    """Change an item's state (committed by the caller, with the job's change)."""
    session.execute(
        update(BatchItem)
        .where(BatchItem.batch_row_id == row_id, BatchItem.custom_id == cid)
        .values(state=state)
    )


def update_row(session: Session, row_id: int, **values: Any) -> BatchRow:
    """Store new facts about a batch (ids, status, counts) at once; the updated row."""
    session.execute(update(Batch).where(Batch.id == row_id).values(updated_at=utcnow(), **values))
    session.commit()
    return get_row(session, row_id)


def get_row(session: Session, row_id: int) -> BatchRow:
    """One batch row (``KeyError`` when unknown)."""
    batch = session.get(Batch, row_id, populate_existing=True)
    if batch is None:
        raise KeyError(row_id)
    return _row(batch)


def find_row(session: Session, key: str) -> BatchRow | None:
    """A batch by local id or provider batch id."""
    query = select(Batch).where(Batch.batch_id == key)
    if key.isdigit():
        query = select(Batch).where(Batch.id == int(key))
    batch = session.execute(query).scalar_one_or_none()
    return None if batch is None else _row(batch)


def open_rows(session: Session) -> list[BatchRow]:
    """Batches whose results are not recorded yet, oldest first."""
    rows = session.execute(
        select(Batch).where(Batch.ingested_at.is_(None)).order_by(Batch.id)
    ).scalars()
    return [_row(b) for b in rows]


def list_rows(session: Session, *, limit: int = 50, open_only: bool = False) -> list[BatchRow]:
    """The newest batches first (``contentgen batches``)."""
    query = select(Batch).order_by(Batch.id.desc()).limit(limit)
    if open_only:
        query = query.where(Batch.ingested_at.is_(None))
    return [_row(b) for b in session.execute(query).scalars()]


def split(
    session: Session,
    row: BatchRow,
    halves: Sequence[Sequence[Line]],
    *,
    lease_h: float,
    reason: str,
) -> list[BatchRow]:
    """Move a failed batch's pending items into new ``held`` batches, one per half.

    One transaction: children with their items and leases, the parent's items marked
    ``moved``, the parent closed with ``reason``.
    """
    now = utcnow()
    children = []
    for half in halves:
        child = Batch(
            ref=uuid.uuid4().hex,
            run_id=row.run_id,
            parent_id=row.id,
            model=row.model,
            status="held",
            requests=len(half),
            bytes=sum(len(line.data) for line in half),
            created_at=now,
            updated_at=now,
        )
        session.add(child)
        session.flush()
        until = now + dt.timedelta(hours=lease_h)
        _hand_over(session, [line.job_id for line in half], row.owner, owner_of(child.id), until)
        session.execute(
            insert(BatchItem),
            [
                {
                    "batch_row_id": child.id,
                    "custom_id": line.custom_id,
                    "job_id": line.job_id,
                    "attempt": line.attempt,
                    "task": line.task,
                    "layout": line.layout,
                    "prompt_cache_key": line.cache_key,
                    "state": "pending",
                    "profile_version": line.profile_version,
                }
                for line in half
            ],
        )
        for line in half:
            set_item(session, row.id, line.custom_id, "moved")
        children.append(child)
    session.execute(
        update(Batch)
        .where(Batch.id == row.id)
        .values(error=reason[:4000], ingested_at=now, updated_at=now)
    )
    session.commit()
    return [_row(c) for c in children]


def close(session: Session, row: BatchRow, *, error: str | None = None) -> BatchRow:
    """Mark a batch's results recorded, with its cost summed from its generations."""
    cost, list_cost = Decimal(0), Decimal(0)
    if row.batch_id is not None:
        sums = session.execute(
            select(func.sum(Generation.cost_usd), func.sum(Generation.list_cost_usd)).where(
                Generation.batch_id == row.batch_id
            )
        ).one()
        cost, list_cost = sums[0] or Decimal(0), sums[1] or Decimal(0)
    values: dict[str, Any] = {"ingested_at": utcnow(), "cost_usd": cost, "list_cost_usd": list_cost}
    if error is not None:
        values["error"] = error[:4000]
    return update_row(session, row.id, **values)


def open_models(session: Session) -> dict[str, int]:
    """Per model, how many batches are at the provider or on their way there."""
    rows = session.execute(
        select(Batch.model, func.count())
        .where(Batch.ingested_at.is_(None), Batch.status.in_(sorted(OPEN_REMOTE | {"cancelling"})))
        .group_by(Batch.model)
    )
    return {model: int(n) for model, n in rows}


# A batch step (upload, download, ingest of up to 200 MB) may outlast a job lease.
STEP_HOLD_S = 900.0


def hold_s(settings: Settings) -> float:
    """How long a batch step holds its batch: the job lease, at least ``STEP_HOLD_S``."""
    return max(float(settings.lease_s), STEP_HOLD_S)


def take(session: Session, row_id: int, worker: str, ttl_s: float) -> bool:
    """Hold a batch for a local step; False when another live process holds it.

    A process that dies mid-step keeps its hold until ``ttl_s`` has passed; then another
    run takes over. Released with ``let_go`` (also when the step fails).
    """
    now = utcnow()
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == row_id,
            (Batch.worker.is_(None)) | (Batch.worker == worker) | (Batch.worker_until < now),
        )
        .values(worker=worker, worker_until=now + dt.timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def let_go(session: Session, row_id: int, worker: str) -> None:
    """Release a hold taken with ``take``."""
    session.execute(
        update(Batch)
        .where(Batch.id == row_id, Batch.worker == worker)
        .values(worker=None, worker_until=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
