"""Intake: article files (JSONL or CSV) read into validated ``ArticleIn`` records.

``reader``: a file read in chunks, each bad row a ``Rejection`` naming its line and field, the
good ones stored by ``db.queue.enqueue``. Nothing here touches the database.
"""

from __future__ import annotations

from pipeline.intake.reader import (
    DEFAULT_MAX_BODY_CHARS,
    ArticleIn,
    Format,
    Rejection,
    read_chunks,
)

__all__ = ["DEFAULT_MAX_BODY_CHARS", "ArticleIn", "Format", "Rejection", "read_chunks"]
