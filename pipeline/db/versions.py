"""Profile versions: the texts and settings of each version, kept so outputs trace to them.

``record_versions`` stores the versions a run (or enqueue) is about to use, once each: the
first writer wins and later writers change nothing, so runners racing on one database agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from pipeline.db.articles import dialect_insert
from pipeline.db.models import Generation, ProfileVersion, utcnow

_VERSIONS = cast(Table, ProfileVersion.__table__)


@dataclass(frozen=True)
class VersionRow:
    """One profile version: its hash, task, model and definition (``Profile.definition()``)."""

    version: str
    task: str
    model: str
    definition: dict[str, Any]


def record_versions(session: Session, versions: Iterable[VersionRow]) -> int:
    """Store the versions not stored yet; how many were new. Commits."""
    rows = [
        {
            "version": v.version,
            "task": v.task,
            "model": v.model,
            "definition": v.definition,
            "first_seen_at": utcnow(),
        }
        for v in versions
    ]
    if not rows:
        return 0
    stmt = (
        dialect_insert(session, _VERSIONS)
        .on_conflict_do_nothing(index_elements=["version"])
        .execution_options(preserve_rowcount=True)
    )
    added = int(session.execute(stmt, rows).rowcount)  # type: ignore[attr-defined]
    session.commit()
    return max(added, 0)


@dataclass(frozen=True)
class StoredVersion:
    """A stored version with how many generations name it."""

    version: str
    task: str
    model: str
    first_seen_at: Any
    generations: int
    definition: dict[str, Any]


def stored_versions(session: Session, tasks: Sequence[str] = ()) -> list[StoredVersion]:
    """Every stored version (of ``tasks`` when given), oldest first per task."""
    used = (
        select(Generation.profile_version, func.count().label("n"))
        .group_by(Generation.profile_version)
        .subquery()
    )
    query = select(
        ProfileVersion.version,
        ProfileVersion.task,
        ProfileVersion.model,
        ProfileVersion.first_seen_at,
        func.coalesce(used.c.n, 0),
        ProfileVersion.definition,
    ).outerjoin(used, used.c.profile_version == ProfileVersion.version)
    if tasks:
        query = query.where(ProfileVersion.task.in_(list(tasks)))
    query = query.order_by(ProfileVersion.task, ProfileVersion.first_seen_at)
    return [StoredVersion(*row) for row in session.execute(query)]


def find_version(session: Session, prefix: str) -> list[ProfileVersion]:
    """Versions whose hash starts with ``prefix`` (a label's part after ``@`` will do)."""
    return list(
        session.scalars(
            select(ProfileVersion).where(ProfileVersion.version.startswith(prefix.lower()))
        )
    )
