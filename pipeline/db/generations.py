"""Storing generations that change no job's state (prewarms: see ``pipeline.run.prewarming``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pipeline.db.models import Generation


def record_generation(session: Session, generation: Generation) -> None:
    """Insert ``generation`` in its own short transaction; the job it names is left as it is."""
    session.add(generation)
    session.commit()
