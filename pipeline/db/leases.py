"""Leases that outlived their owner: expired leases, dead workers on this host, who holds what.

A claim's lease is renewed while its run lives. When it is not (the worker was killed, hung or
lost its database), ``reclaim_dead`` takes back at once what dead workers on this host held,
``requeue_expired`` returns expired leases to the queue (failing jobs on their last attempt),
and ``release_stale`` does the same for other hosts without failing anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from pipeline.db.articles import batched
from pipeline.db.models import Job, utcnow
from pipeline.db.procs import Worker, parse_owner, parse_worker
from pipeline.db.runs import abandon_run, running_runs

_OWNERS_PER_STATEMENT = 500  # owners per IN (...)


def requeue_expired(session: Session, *, max_attempts: int, now: dt.datetime | None = None) -> int:
    """Return jobs whose lease expired to the queue, their attempts as they were.

    A job is failed instead only when its attempts, counted at each send (or at a batch
    claim), already reached ``max_attempts``: an expiry never uses an attempt up, so jobs
    claimed by a worker that died before sending them are never failed here.
    """
    now = now or utcnow()
    expired = and_(Job.state == "running", Job.lease_expires_at < now)
    failed = session.execute(
        update(Job)
        .where(expired, Job.attempts >= max_attempts)
        .values(
            state="failed",
            lease_owner=None,
            lease_expires_at=None,
            last_error="lease expired on the last attempt (worker died or hung)",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    requeued = session.execute(
        update(Job)
        .where(expired)
        .values(state="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(requeued.rowcount) + int(failed.rowcount)  # type: ignore[attr-defined]


def release_stale(
    session: Session, *, older_than_s: float | None = None, now: dt.datetime | None = None
) -> int:
    """Return jobs whose lease expired (more than ``older_than_s`` ago) to the queue; how many.

    For workers this machine cannot check (other hosts): their attempts stay as they were and
    no job is failed, whatever its count (unlike ``requeue_expired``).
    """
    if older_than_s is not None and older_than_s < 0:
        raise ValueError("older_than_s cannot be negative")
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=older_than_s or 0)
    result = session.execute(
        update(Job)
        .where(Job.state == "running", Job.lease_expires_at < cutoff)
        .values(state="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ReclaimResult:
    """What ``reclaim_dead`` did: jobs back in the queue, runs closed, owners found dead."""

    jobs_released: int = 0
    runs_abandoned: tuple[int, ...] = ()
    dead_owners: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for ``--json``)."""
        return {
            "jobs_released": self.jobs_released,
            "runs_abandoned": list(self.runs_abandoned),
            "dead_owners": list(self.dead_owners),
        }


def reclaim_dead(
    session: Session,
    *,
    host: str,
    is_alive: Callable[[int], bool],
    now: dt.datetime | None = None,
) -> ReclaimResult:
    """Take back at once what workers on ``host`` that no longer run left behind.

    Jobs leased to ``"{host}:{pid}:run{id}"`` with ``is_alive(pid)`` False go back to the
    queue, attempts as they were; runs still ``running`` whose worker is such a dead
    ``"{host}:{pid}"``, or whose id such an owner names, are closed ``abandoned`` with their
    totals. Owners on other hosts and names that do not parse (batches, older rows) are left
    alone. ``is_alive`` is ``procs.pid_alive`` in production.
    """
    now = now or utcnow()
    alive: dict[int, bool] = {}

    def dead(worker: Worker | None) -> bool:
        if worker is None or worker.host != host:
            return False
        if worker.pid not in alive:
            alive[worker.pid] = is_alive(worker.pid)
        return not alive[worker.pid]

    owners = session.scalars(
        select(Job.lease_owner)
        .where(Job.state == "running", Job.lease_owner.startswith(f"{host}:", autoescape=True))
        .distinct()
    ).all()
    dead_owners = sorted(o for o in owners if o is not None and dead(parse_owner(o)))
    released = 0
    for chunk in batched(dead_owners, _OWNERS_PER_STATEMENT):
        result = session.execute(
            update(Job)
            .where(Job.state == "running", Job.lease_owner.in_(chunk))
            .values(state="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        released += int(result.rowcount)  # type: ignore[attr-defined]
    session.commit()
    # Whose death closes which run: the run's own worker first, else the owner naming it.
    died: dict[int, Worker] = {}
    for owner in dead_owners:
        worker = parse_owner(owner)
        assert worker is not None and worker.run_id is not None
        died.setdefault(worker.run_id, worker)
    abandoned = []
    for run_id, worker_name in running_runs(session):
        worker = parse_worker(worker_name)
        culprit = worker if dead(worker) else died.get(run_id)
        if culprit is None:
            continue
        reason = f"worker {culprit.name} died"
        if abandon_run(session, run_id, stop_reason=reason, finished_at=now):
            abandoned.append(run_id)
    return ReclaimResult(released, tuple(abandoned), tuple(dead_owners))


@dataclass(frozen=True)
class LeaseOwner:
    """A lease owner with the jobs it holds and when their leases expire (soonest, latest)."""

    owner: str
    jobs: int
    first_expiry: dt.datetime | None
    last_expiry: dt.datetime | None


def lease_owners(
    session: Session, *, tasks: Sequence[str] | None = None, batch_label: str | None = None
) -> list[LeaseOwner]:
    """Who holds ``running`` jobs, soonest expiry first (``contentgen jobs``)."""
    query = select(
        Job.lease_owner,
        func.count(),
        func.min(Job.lease_expires_at),
        func.max(Job.lease_expires_at),
    ).where(Job.state == "running")
    if tasks:
        query = query.where(Job.task.in_(list(tasks)))
    if batch_label is not None:
        query = query.where(Job.batch_label == batch_label)
    rows = session.execute(query.group_by(Job.lease_owner))
    found = [LeaseOwner(owner or "-", int(n), first, last) for owner, n, first, last in rows]
    return sorted(found, key=lambda o: (o.first_expiry or dt.datetime.max, o.owner))
