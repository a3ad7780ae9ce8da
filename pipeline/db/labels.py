"""Batch labels: the ones jobs carry, the ones with queued jobs, and a mistyped one caught.

A label no job has ever carried is a mistake (``adhoc-nosuchlabel`` would otherwise be a green
run that did nothing); a label whose jobs are all done is a fine, empty run.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.db.models import Job
from pipeline.errors import InputError

# How many known labels an error message lists before it says "and N more".
SHOWN_LABELS = 20


def known_labels(session: Session) -> list[str]:
    """Every batch label a job carries, sorted."""
    query = select(Job.batch_label).where(Job.batch_label.is_not(None)).distinct()
    return sorted(str(label) for label in session.scalars(query))


def labels_with_queued(session: Session) -> list[str]:
    """The batch labels that have queued jobs, sorted (what a run could take now)."""
    query = (
        select(Job.batch_label)
        .where(Job.batch_label.is_not(None), Job.state == "queued")
        .distinct()
    )
    return sorted(str(label) for label in session.scalars(query))


def unknown_label_message(label: str, known: Sequence[str]) -> str:
    """One line: the label is unknown, and which labels exist (the first ``SHOWN_LABELS``)."""
    if not known:
        return f"no job carries batch label {label!r}: no job has a batch label yet"
    shown = ", ".join(known[:SHOWN_LABELS])
    more = f" and {len(known) - SHOWN_LABELS} more" if len(known) > SHOWN_LABELS else ""
    return f"no job carries batch label {label!r}; known labels: {shown}{more}"


def require_known_label(session: Session, label: str | None) -> None:
    """Raise ``InputError`` when ``label`` is given and no job carries it (none: every job)."""
    if label is None:
        return
    found = session.scalar(select(Job.id).where(Job.batch_label == label).limit(1))
    if found is None:
        raise InputError(unknown_label_message(label, known_labels(session)))
