"""Editors' decisions (``reviews``): appended, never changed, and what a rejection asks for.

``add_review`` adds a decision to the caller's transaction without committing, so a caller can
commit it together with whatever else must happen with it (a regeneration, an outbox row for
the CMS). ``rejection_notes`` is what the next render of a re-queued job reads: the rejected
answer and the editor's note, sent after the cached prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from pipeline.db.models import DECISIONS, Generation, Review, utcnow


def add_review(
    session: Session,
    *,
    generation_id: int,
    job_id: int,
    editor: str,
    decision: str,
    note: str | None = None,
    edited_text: str | None = None,
    regenerate: bool = False,
) -> Review:
    """Add one decision to the session's transaction (flushed, not committed)."""
    if decision not in DECISIONS:
        raise ValueError(f"a decision is one of {DECISIONS}, not {decision!r}")
    review = Review(
        generation_id=generation_id,
        job_id=job_id,
        editor=editor,
        decision=decision,
        note=note,
        edited_text=edited_text,
        regenerate=regenerate,
        created_at=utcnow(),
    )
    session.add(review)
    session.flush()
    return review


@dataclass(frozen=True)
class RejectionNote:
    """A rejected answer whose job was re-queued, and the editor's note."""

    job_id: int
    generation_id: int
    answer: str
    note: str
    content_hash: str | None


def rejection_notes(session: Session, job_ids: Sequence[int]) -> dict[int, RejectionNote]:
    """For each job whose newest completed generation was rejected with ``--regenerate``,
    that answer and the note (jobs without one are left out)."""
    if not job_ids:
        return {}
    newest = (
        select(Generation.job_id, func.max(Generation.id).label("generation_id"))
        .where(Generation.job_id.in_(list(job_ids)), Generation.status == "completed")
        .group_by(Generation.job_id)
        .subquery()
    )
    later = aliased(Review)
    latest_review = (
        select(func.max(later.id))
        .where(later.generation_id == newest.c.generation_id)
        .correlate(newest)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            newest.c.job_id,
            newest.c.generation_id,
            Generation.output_text,
            Review.note,
            Generation.content_hash,
        )
        .join(Generation, Generation.id == newest.c.generation_id)
        .join(Review, Review.id == latest_review)
        .where(Review.decision == "rejected", Review.regenerate)
    )
    return {
        job_id: RejectionNote(job_id, generation_id, answer or "", note or "", content_hash)
        for job_id, generation_id, answer, note, content_hash in rows
    }
