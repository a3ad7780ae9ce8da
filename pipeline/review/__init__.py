"""Review: editors' sign-off on outputs, and what they decided.

- ``outputs``: outputs as an editor sees them (text, provenance, checks, review state), found by
  generation id or ``ARTICLE:TASK``, listed by state, with their decisions and grades;
- ``decisions``: ``decide`` records approve, edit or reject (append-only, in the caller's
  transaction so a delivery can join it); a rejection may re-queue its job with the note;
- ``stats``: review states, approval and edit rates, cost per approved text, flags by check.

States (``v_outputs.review_state``): ``pending``, ``flagged``, ``approved``, ``edited``,
``rejected``, ``auto``; ``superseded`` and ``retried`` for outputs that are no longer current.
The states are computed by the database views of migration 0007, so every reader agrees.
"""

from __future__ import annotations

from pipeline.review.decisions import Decided, decide
from pipeline.review.outputs import (
    TO_REVIEW,
    Decision,
    Grade,
    Output,
    ReviewFilter,
    find,
    grades,
    history,
    list_outputs,
    refs,
)
from pipeline.review.stats import (
    CheckFlags,
    ReviewReport,
    VersionReview,
    review_report,
    state_counts,
)

__all__ = [
    "TO_REVIEW",
    "CheckFlags",
    "Decided",
    "Decision",
    "Grade",
    "Output",
    "ReviewFilter",
    "ReviewReport",
    "VersionReview",
    "decide",
    "find",
    "grades",
    "history",
    "list_outputs",
    "refs",
    "review_report",
    "state_counts",
]
