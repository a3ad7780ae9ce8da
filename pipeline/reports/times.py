"""Times for people: a stored time (naive UTC) in the local time zone, with the zone's name.

Times are stored as naive UTC and exported (CSV, JSON) as ISO 8601 UTC. What a person reads
in a table or a line is the local time with its zone (``2026-12-07 23:04 CET``; set ``TZ`` to
choose another), so a night's run reads as the night it was. Days in cost reports stay UTC
days: the report views group by them, and every SQL client must see the same days.
"""

from __future__ import annotations

import datetime as dt


def local_time(at: dt.datetime | None, *, seconds: bool = False) -> str:
    """``at`` (naive UTC, or aware) as local time with its zone name; ``-`` for None."""
    if at is None:
        return "-"
    aware = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at
    local = aware.astimezone()
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{shown} {local.tzname() or local.strftime('%z')}"
