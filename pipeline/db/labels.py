"""Batch labels: which ones exist, which have queued jobs, and refusing one no job ever carried.

A mistyped label would otherwise select nothing and end as a green run that did nothing, so
the CLI (``run -b``, ``jobs -b``, ``results -b``) and the Prefect forms check a label here
first: a label no job has ever carried is an ``InputError`` listing the known ones; a label
whose jobs are all done is fine (nothing queued, exit 0).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.db.models import Job
from pipeline.errors import InputError

_SHOWN = 20  # labels listed in an error line


def known_labels(session: Session) -> list[str]:
    """Every batch label any job carries, sorted."""
    query = select(Job.batch_label).where(Job.batch_label.is_not(None)).distinct()
    return sorted(label for label in session.execute(query).scalars() if label)


def labels_with_queued(session: Session) -> list[str]:
    """The batch labels that have queued jobs now (what a form should offer), sorted."""
    query = (
        select(Job.batch_label)
        .where(Job.batch_label.is_not(None), Job.state == "queued")
        .distinct()
    )
    return sorted(label for label in session.execute(query).scalars() if label)


def check_label(session: Session, label: str | None, *, option: str = "--batch") -> None:
    """Refuse ``label`` when no job has ever carried it: one line listing the known labels
    (the first twenty). None (no filter) passes."""
    if label is None:
        return
    known = known_labels(session)
    if label in known:
        return
    if not known:
        listed = "no job carries a batch label yet (contentgen enqueue --batch NAME)"
    else:
        more = f" and {len(known) - _SHOWN} more" if len(known) > _SHOWN else ""
        listed = "the known labels are " + ", ".join(known[:_SHOWN]) + more
    raise InputError(f"{option}: no job has ever carried the batch label {label!r}; {listed}")
