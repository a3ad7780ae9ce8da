"""Recording a group of results in one transaction: generations and their jobs' new states.

A runner that commits one transaction per result spends its database thread on commits
(each an fsync on SQLite, a round trip on PostgreSQL) and caps at a few hundred results a
second. ``record_outcomes`` writes a group in a handful of statements whatever its size: one
multi-row insert of the generations, one ``UPDATE ... RETURNING`` for the jobs that succeeded,
one executemany for those that failed, and the chained followers of those that have them.

The rules are ``jobs.complete`` and ``jobs.fail``'s, applied to many rows at once: a job's
state changes only while ``owner`` holds its lease, and a generation is stored either way,
because its tokens were paid for. The result for each outcome is the job's new state:
``succeeded``, ``queued`` (failed, to be tried again), ``failed`` (for good), ``lost`` (the
lease was gone), or ``None`` for a generation that belongs to no job's outcome (a prewarm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, ColumnElement, Table, bindparam, or_, select, tuple_
from sqlalchemy.orm import Session

from pipeline.db.failures import reason_of
from pipeline.db.jobs import GENERATIONS, JOBS, hold_followers, queue_followers
from pipeline.db.models import Generation, utcnow

_IN_CHUNK = 500  # ids per IN (...)


@dataclass(frozen=True)
class OutcomeRow:
    """One result to record. ``job_outcome`` False: store the generation only (a prewarm).

    ``lease_token``: the fencing token of the claim that sent it (None: fenced by ``owner``
    alone). ``reason``: the job's ``failure_reason`` if this fails it for good. ``paid``: for
    an answer served by the response cache, its real usage and cost, recorded instead of zero
    when no generation holds its response id yet (the run that paid for it never recorded it).
    """

    generation: Generation
    succeeded: bool
    permanent: bool = False
    error: str | None = None
    article_id: int | None = None
    followers: tuple[str, ...] = ()
    job_outcome: bool = True
    # Paid answers this outcome replaced (a check's retry): stored with it, no job effect.
    earlier: tuple[Generation, ...] = ()
    lease_token: int | None = None
    reason: str | None = None
    paid: Mapping[str, Any] | None = None


def _defaults(table: Table) -> dict[str, Any]:
    """Python-side column defaults (scalars and callables), applied to every row the same way
    the ORM would, so that every row of the multi-row insert has the same keys."""
    found: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if column.primary_key or default is None:
            continue
        if not (default.is_scalar or default.is_callable):
            continue
        found[column.key] = default
    return found


_GENERATION_DEFAULTS = _defaults(GENERATIONS)
_GENERATION_KEYS = [c.key for c in GENERATIONS.columns if not c.primary_key]
# A JSON column bound to None stores the JSON text 'null'; left out of the insert it is NULL.
_JSON_KEYS = frozenset(c.key for c in GENERATIONS.columns if isinstance(c.type, JSON))


def generation_row(generation: Generation) -> dict[str, Any]:
    """The insert values of ``generation``: every column, defaults filled in, JSON columns
    without a value left out (NULL)."""
    state = generation.__dict__
    row: dict[str, Any] = {}
    for key in _GENERATION_KEYS:
        value = state.get(key)
        if value is None:
            if key in _JSON_KEYS:
                continue
            if key in _GENERATION_DEFAULTS:
                default = _GENERATION_DEFAULTS[key]
                value = default.arg(None) if default.is_callable else default.arg
        row[key] = value
    return row


def insert_generations(session: Session, generations: Sequence[Generation]) -> None:
    """Insert ``generations`` with one multi-row statement per set of columns present."""
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    for generation in generations:
        row = generation_row(generation)
        shapes.setdefault(frozenset(row), []).append(row)
    for rows in shapes.values():
        session.execute(GENERATIONS.insert(), rows)


def insert_unseen(session: Session, generations: Sequence[Generation]) -> int:
    """Insert the ``generations`` whose response id is not stored yet (a journal's paid answers
    that a run may have recorded before it died); how many. Does not commit."""
    added = 0
    for generation in generations:
        response_id = generation.response_id
        if response_id is not None:
            seen = session.execute(
                select(GENERATIONS.c.id).where(GENERATIONS.c.response_id == response_id).limit(1)
            ).first()
            if seen is not None:
                continue
        insert_generations(session, [generation])
        added += 1
    return added


def _fenced(outcomes: Sequence[OutcomeRow]) -> ColumnElement[bool]:
    """The jobs of ``outcomes`` under the claims that sent them: by (id, token) where a token
    is known, by id alone otherwise."""
    c = JOBS.c
    pairs = [(o.generation.job_id, o.lease_token) for o in outcomes if o.lease_token is not None]
    bare = [o.generation.job_id for o in outcomes if o.lease_token is None]
    conditions = []
    if pairs:
        conditions.append(tuple_(c.id, c.lease_token).in_(pairs))
    if bare:
        conditions.append(c.id.in_(bare))
    return or_(*conditions) if len(conditions) > 1 else conditions[0]


def unrecorded_answers(session: Session, response_ids: Sequence[str]) -> set[str]:
    """The response ids among ``response_ids`` that no generation holds yet."""
    found: set[str] = set()
    unique = sorted(set(response_ids))
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        found.update(
            session.scalars(
                select(GENERATIONS.c.response_id).where(GENERATIONS.c.response_id.in_(chunk))
            )
        )
    return set(unique) - found


def _charge_unrecorded(session: Session, outcomes: Sequence[OutcomeRow]) -> None:
    """Record at its cost a response-cache hit whose paid answer was never recorded (the run
    that paid died between the answer and its journal): the first such hit of a response id
    carries its usage and cost, later ones stay at zero."""
    hits = [o for o in outcomes if o.paid is not None and o.generation.response_id]
    if not hits:
        return
    paid_here = {
        o.generation.response_id for o in outcomes if o.paid is None and o.generation.response_id
    }
    unrecorded = unrecorded_answers(session, [str(o.generation.response_id) for o in hits])
    unrecorded -= paid_here
    for o in hits:
        if o.generation.response_id in unrecorded:
            unrecorded.discard(o.generation.response_id)
            assert o.paid is not None
            for key, value in o.paid.items():
                setattr(o.generation, key, value)


def record_outcomes(
    session: Session, owner: str, outcomes: Sequence[OutcomeRow], *, max_attempts: int
) -> list[str | None]:
    """Store ``outcomes`` in one transaction; their jobs' new states, in order (see above).

    A successful answer whose job is no longer its claim's is stored with status ``lost``:
    paid for, never the job's output, so a job is completed once whoever answers late.
    """
    if not outcomes:
        return []
    now = utcnow()
    c = JOBS.c
    owned = (c.lease_owner == owner) & (c.state == "running")
    succeeded = [o for o in outcomes if o.job_outcome and o.succeeded]
    completed: set[int] = set()
    for start in range(0, len(succeeded), _IN_CHUNK):
        chunk = succeeded[start : start + _IN_CHUNK]
        completed.update(
            session.execute(
                JOBS.update()
                .where(_fenced(chunk), owned)
                .values(
                    state="succeeded",
                    attempts=c.attempts + 1,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=None,
                    failure_reason=None,
                    worker_deaths=0,
                    death_suspect=False,
                    updated_at=now,
                )
                .returning(c.id)
            ).scalars()
        )
    failed = [o for o in outcomes if o.job_outcome and not o.succeeded]
    attempts: dict[int, int] = {}
    for start in range(0, len(failed), _IN_CHUNK):
        chunk = failed[start : start + _IN_CHUNK]
        attempts.update(
            session.execute(
                select(c.id, c.attempts).where(_fenced(chunk), owned).with_for_update()
            ).all()
        )
    failures: list[dict[str, Any]] = []
    new_state: dict[int, str] = {}
    for o in failed:
        job_id = o.generation.job_id
        if job_id not in attempts:
            continue
        count = attempts[job_id] + 1
        state = "failed" if o.permanent or count >= max_attempts else "queued"
        new_state[job_id] = state
        failures.append(
            {
                "job_id": job_id,
                "new_state": state,
                "new_attempts": count,
                "error": (o.error or "failed")[:4000],
                "reason": (o.reason or reason_of(o.error, permanent=o.permanent))
                if state == "failed"
                else None,
            }
        )
    if failures:
        # The rows were selected under their fence and are locked until the commit.
        session.execute(
            JOBS.update()
            .where(c.id == bindparam("job_id"), owned)
            .values(
                state=bindparam("new_state"),
                attempts=bindparam("new_attempts"),
                lease_owner=None,
                lease_expires_at=None,
                last_error=bindparam("error"),
                failure_reason=bindparam("reason"),
                updated_at=now,
            ),
            failures,
        )
    for o in succeeded:
        if o.generation.job_id not in completed and o.generation.status == "completed":
            o.generation.status = "lost"
    _charge_unrecorded(session, outcomes)
    # A check's retry replaced earlier paid answers: stored with it, no job effect.
    insert_generations(session, [g for o in outcomes for g in (*o.earlier, o.generation)])
    states: list[str | None] = []
    for o in outcomes:
        job_id = o.generation.job_id
        if not o.job_outcome:
            states.append(None)
        elif o.succeeded:
            held = job_id in completed
            states.append("succeeded" if held else "lost")
            if held and o.followers and o.article_id is not None:
                queue_followers(session, o.article_id, o.followers, now)
        else:
            states.append(new_state.get(job_id, "lost"))
            if o.followers and o.article_id is not None:
                g = o.generation
                hold_followers(
                    session,
                    o.article_id,
                    o.followers,
                    f"{g.task} {g.status}: {o.error or 'failed'}",
                )
    session.commit()
    return states
