"""Storing articles in bulk: the article half of ``queue.enqueue``.

A chunk of articles costs a few statements: select the ones already known (by the source's
id), insert the new ones with RETURNING, and rewrite the changed ones. Articles
carry no job state, so this module never touches ``jobs``.

At 100,000 rows SQLAlchemy's per-row parameter handling costs more than the database itself,
so the insert is a multi-row statement handed to the driver directly, each value converted
by its column type's own bind processor (the same conversion SQLAlchemy would apply).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Dialect, Table, any_, bindparam, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.db.models import Article
from pipeline.errors import DatabaseError
from pipeline.intake import ArticleIn

ARTICLES = cast(Table, Article.__table__)
T = TypeVar("T")
_COLUMNS = (
    "source_id",
    "title",
    "body",
    "section",
    "url",
    "published_at",
    "metadata",
    "content_hash",
    "created_at",
    "updated_at",
)
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# Rows per multi-row INSERT ... RETURNING (measured: PostgreSQL plans statements with
# thousands of parameters slowly, SQLite does not mind).
_ROWS_PER_INSERT = {"sqlite": 250, "postgresql": 100}


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (``itertools.batched`` from Python 3.12)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def dialect_insert(session: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that knows ON CONFLICT for the session's database (SQLite or PostgreSQL)."""
    name = session.get_bind().dialect.name
    if name == "sqlite":
        return sqlite.insert(table)
    if name == "postgresql":
        return postgresql.insert(table)
    raise DatabaseError(f"unsupported database {name!r}: use SQLite or PostgreSQL")


def one_of(session: Session, column: ColumnElement[Any], values: Iterable[Any]) -> Any:
    """``column IN values``, written as ``column = ANY(array)`` on PostgreSQL.

    One array parameter instead of thousands: PostgreSQL plans it much faster (measured on
    chunks of 2,000 ids).
    """
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam("values", list(values), type_=postgresql.ARRAY(column.type), unique=True)
        return column == any_(array)
    return column.in_(list(values))


@dataclass(frozen=True)
class StoredArticles:
    """The outcome of ``store_articles`` for one chunk.

    ``ids`` maps every source id of the chunk to its article id, in input order; ``known``
    lists the ids of the articles that were stored before (only their jobs can be stale).
    """

    ids: dict[str, int]
    known: list[int]
    new: int
    updated: int


def _insert_sql(dialect: Dialect, rows: int) -> str:
    mark = _PLACEHOLDERS.get(dialect.paramstyle)
    if mark is None:
        raise DatabaseError(f"unsupported driver paramstyle {dialect.paramstyle!r}")
    quote = dialect.identifier_preparer.quote
    row = f"({', '.join([mark] * len(_COLUMNS))})"
    return (
        f"INSERT INTO {quote(ARTICLES.name)} ({', '.join(quote(c) for c in _COLUMNS)}) "
        f"VALUES {', '.join([row] * rows)} ON CONFLICT (source_id) DO NOTHING "
        "RETURNING id, source_id"
    )


def _converter(dialect: Dialect, column: str) -> Callable[[Any], Any]:
    """The column type's own conversion of a Python value for ``dialect`` (None stays None)."""
    process = ARTICLES.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return lambda value: value
    return lambda value: None if value is None else process(value)


def _insert(session: Session, articles: list[ArticleIn], now: dt.datetime) -> dict[str, int]:
    """Insert new articles (source_id -> id); a row another writer inserted first is skipped."""
    dialect = session.get_bind().dialect
    # Only columns whose type converts values (dates on SQLite, JSON) need it; None stays
    # SQL NULL (the JSON processor would write the text 'null').
    to_date, to_json = _converter(dialect, "published_at"), _converter(dialect, "metadata")
    now_value = _converter(dialect, "created_at")(now)
    ids: dict[str, int] = {}
    connection = session.connection()
    step = _ROWS_PER_INSERT.get(dialect.name, 100)
    for start in range(0, len(articles), step):
        batch = articles[start : start + step]
        params: list[Any] = []
        for a in batch:
            params += (
                a.source_id,
                a.title,
                a.body,
                a.section,
                a.url,
                to_date(a.published_at),
                to_json(a.metadata),
                a.content_hash,
                now_value,
                now_value,
            )
        result = connection.exec_driver_sql(_insert_sql(dialect, len(batch)), tuple(params))
        ids.update({sid: aid for aid, sid in result})
    return ids


def _select_known(session: Session, source_ids: Iterable[str]) -> dict[str, Any]:
    columns = (
        ARTICLES.c.id,
        ARTICLES.c.source_id,
        ARTICLES.c.content_hash,
        ARTICLES.c.url,
        ARTICLES.c.published_at,
        ARTICLES.c.metadata,
    )
    rows = session.execute(
        select(*columns).where(one_of(session, ARTICLES.c.source_id, source_ids))
    )
    return {row.source_id: row for row in rows}


def _update(session: Session, rows: list[dict[str, Any]]) -> None:
    """Rewrite changed articles by id (each row carries ``id`` plus the new values)."""
    for with_meta in (True, False):
        group = [
            {f"_{key}": value for key, value in r.items()}
            for r in rows
            if (r["metadata"] is not None) is with_meta
        ]
        if not group:
            continue
        names = [key for key in group[0] if key not in ("_id", "_metadata")]
        values: dict[str, Any] = {key[1:]: bindparam(key) for key in names}
        values["metadata"] = bindparam("_metadata") if with_meta else null()
        stmt = update(ARTICLES).where(ARTICLES.c.id == bindparam("_id")).values(values)
        session.execute(stmt, group)


def store_articles(
    session: Session, articles: Sequence[ArticleIn], *, now: dt.datetime
) -> StoredArticles:
    """Insert the new articles of a chunk and update the changed ones (no commit).

    An article counts as updated when its content hash, url, published_at or metadata differ
    from what is stored. A source id repeated within ``articles``: the last one wins.
    """
    by_source = {a.source_id: a for a in articles}
    known = _select_known(session, by_source)
    fresh = [a for sid, a in by_source.items() if sid not in known]
    inserted = _insert(session, fresh, now) if fresh else {}
    if len(inserted) < len(fresh):  # another writer inserted some of them meanwhile
        raced = {a.source_id for a in fresh} - set(inserted)
        known.update(_select_known(session, raced))

    changed: list[dict[str, Any]] = []
    for sid, row in known.items():
        a = by_source[sid]
        digest = a.content_hash
        if (row.content_hash, row.url, row.published_at, row.metadata) != (
            digest,
            a.url,
            a.published_at,
            a.metadata,
        ):
            changed.append(
                {
                    "id": row.id,
                    "title": a.title,
                    "body": a.body,
                    "section": a.section,
                    "url": a.url,
                    "published_at": a.published_at,
                    "metadata": a.metadata,
                    "content_hash": digest,
                    "updated_at": now,
                }
            )
    if changed:
        _update(session, changed)
    ids = {sid: known[sid].id if sid in known else inserted[sid] for sid in by_source}
    return StoredArticles(
        ids=ids, known=[row.id for row in known.values()], new=len(inserted), updated=len(changed)
    )
