"""``ArticleJob``: one job to generate, with the article it is about, as a plain value.

Rendering and planning take this type, never a database row: they stay pure functions over
values. ``pipeline.db.jobs.claim`` returns it (as ``ClaimedJob``, the same class).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArticleJob:
    """A job (article, task) and the article's fields the prompt uses."""

    id: int
    task: str
    attempts: int
    batch_label: str | None
    article_id: int
    source_id: str
    title: str
    body: str
    section: str | None
    url: str | None
    published_at: dt.datetime | None
    metadata: dict[str, Any] | None
    # Times `contentgen jobs regenerate` re-queued the job (see ``requests.job_metadata``).
    regenerations: int = 0
    # The article's content hash as claimed: a generation records what it was made from, so
    # a later correction of the article shows it superseded.
    content_hash: str | None = None
