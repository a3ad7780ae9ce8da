"""Leases that outlived their owner: expired leases, dead workers on this host, who holds what.

A claim's lease is renewed while its run lives, and the run beats in its row. When it does not
(the worker was killed, hung or lost its database), ``reclaim_dead`` takes back at once what
dead workers held: a worker whose pid this process can check (same kernel and pid namespace,
``procs.host_id``) as soon as its process is gone, any other once its run's heartbeat is
stale. ``requeue_expired`` returns expired leases to the queue (failing jobs on their last
attempt), and ``release_stale`` does the same without failing anything.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from pipeline.db.articles import batched
from pipeline.db.failures import MAX_ATTEMPTS
from pipeline.db.models import Job, Run, utcnow
from pipeline.db.procs import Worker, host_id, parse_owner, parse_worker, pid_alive
from pipeline.db.runs import LiveRun, abandon_run, running_runs

_OWNERS_PER_STATEMENT = 500  # owners per IN (...)
# A run beats in its row this often (``runs.beat``); others take it for dead when its beat is
# older than ``stale_after_s`` (at least RUN_STALE_S, and longer than a database outage the
# run rides out, so a live run is never declared dead for an outage it survives).
RUN_BEAT_S = 5.0
RUN_STALE_S = 30.0


def stale_after_s(db_outage_s: float) -> float:
    """How old a run's heartbeat must be before other runners take it for dead."""
    return max(RUN_STALE_S, db_outage_s + 2 * RUN_BEAT_S)


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
            failure_reason=MAX_ATTEMPTS,
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


@dataclass(frozen=True)
class Liveness:
    """How this process judges whether another worker still runs.

    ``host`` and ``is_alive`` check a pid where pids mean the same as here: a run row with our
    ``host_id`` (same kernel boot and pid namespace), or, for rows written before host ids were
    stored, our host name. Any other run is dead once its heartbeat is older than ``stale_s``
    (None: such runs are left to their leases' expiry). ``host_id`` None judges by host name
    alone (as before heartbeats existed).
    """

    host: str
    is_alive: Callable[[int], bool]
    host_id: str | None = None
    stale_s: float | None = None

    def dead(self, worker: Worker | None, run: LiveRun | None, now: dt.datetime) -> bool:
        """Whether ``worker`` (of ``run``, when its row is still running) is gone."""
        if worker is None:
            return False
        if run is not None and run.host_id is not None and self.host_id is not None:
            if run.host_id == self.host_id:
                return not self.is_alive(worker.pid)
            return self._stale(run, now)
        if worker.host == self.host:
            return not self.is_alive(worker.pid)
        return run is not None and self._stale(run, now)

    def _stale(self, run: LiveRun, now: dt.datetime) -> bool:
        if self.stale_s is None or run.heartbeat_at is None:
            return False
        return run.heartbeat_at < now - dt.timedelta(seconds=self.stale_s)


def run_liveness(db_outage_s: float) -> Liveness:
    """How this process judges other runs: pids in its own pid namespace, heartbeats
    elsewhere (``stale_after_s``)."""
    return Liveness(socket.gethostname(), pid_alive, host_id(), stale_after_s(db_outage_s))


def reclaim_dead(
    session: Session,
    *,
    host: str,
    is_alive: Callable[[int], bool],
    host_id: str | None = None,
    stale_s: float | None = None,
    now: dt.datetime | None = None,
) -> ReclaimResult:
    """Take back at once what workers that no longer run left behind.

    Jobs leased to ``"{host}:{pid}:run{id}"`` whose worker is dead (``Liveness``: its pid
    checked where pids mean the same as here, else its run's heartbeat older than
    ``stale_s``) go back to the queue, attempts as they were; runs still ``running`` whose
    worker is dead, or whose id such an owner names, are closed ``abandoned`` with their
    totals. Names that do not parse (batches, older rows) are left alone. ``is_alive`` is
    ``procs.pid_alive`` and ``host_id`` ``procs.host_id()`` in production.
    """
    now = now or utcnow()
    judge = Liveness(host, _cached(is_alive), host_id, stale_s)
    live = {run.id: run for run in running_runs(session)}
    query = select(Job.lease_owner).where(Job.state == "running")
    if stale_s is None:  # only pids can be judged: only this host's owners
        query = query.where(Job.lease_owner.startswith(f"{host}:", autoescape=True))
    owners = session.scalars(query.distinct()).all()
    dead_owners = []
    for owner in owners:
        worker = parse_owner(owner)
        if worker is not None and judge.dead(worker, live.get(worker.run_id or 0), now):
            dead_owners.append(str(owner))
    dead_owners.sort()
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
    for run in live.values():
        worker = parse_worker(run.worker)
        culprit = worker if judge.dead(worker, run, now) else died.get(run.id)
        if culprit is None:
            continue
        reason = f"worker {culprit.name} died"
        if abandon_run(session, run.id, stop_reason=reason, finished_at=now):
            abandoned.append(run.id)
    return ReclaimResult(released, tuple(abandoned), tuple(dead_owners))


def owner_dead(
    session: Session, owner: str, liveness: Liveness, now: dt.datetime | None = None
) -> bool | None:
    """Whether the run owning ``owner`` (``host:pid:runN``) is gone; None: cannot be judged.

    A run still ``running`` is judged as ``reclaim_dead`` judges it; a closed run by its pid
    where it can be checked, else it is gone (it closed, so it writes nothing more)."""
    worker = parse_owner(owner)
    if worker is None or worker.run_id is None:
        return None
    row = session.execute(
        select(Run.id, Run.worker, Run.host_id, Run.heartbeat_at, Run.state).where(
            Run.id == worker.run_id
        )
    ).first()
    session.commit()
    if row is None:
        return None
    run = LiveRun(row[0], row[1], row[2], row[3])
    if run.host_id is None and worker.host != liveness.host:
        return None  # a row from before host ids, on another host: nothing to go by
    if row[4] == "running":
        return liveness.dead(worker, run, now or utcnow())
    checkable = (run.host_id is not None and run.host_id == liveness.host_id) or (
        run.host_id is None and worker.host == liveness.host
    )
    return not liveness.is_alive(worker.pid) if checkable else True


def _cached(is_alive: Callable[[int], bool]) -> Callable[[int], bool]:
    """``is_alive`` asked at most once per pid."""
    seen: dict[int, bool] = {}

    def alive(pid: int) -> bool:
        if pid not in seen:
            seen[pid] = is_alive(pid)
        return seen[pid]

    return alive


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
