"""Enqueue and claim throughput on SQLite and PostgreSQL, against a naive baseline in the same run.

Generates N articles (default 100,000) as a JSONL file, then for each database:

- file -> database through the real path of `contentgen enqueue` (intake streaming + bulk
  enqueue), reported as rows (articles) per second and jobs per second;
- the bulk enqueue alone, from articles already in memory;
- the same file again (every job unchanged: the idempotency check);
- a naive baseline: one ORM lookup + insert + flush per article for a 5,000-row sample;
- claims of 500 until the queue is empty (jobs per second).

Goal: >= 50,000 rows/s into SQLite. Run from the repository root:

    .venv/bin/python benchmarks/bench_enqueue.py            # 100,000 articles, both databases
    .venv/bin/python benchmarks/bench_enqueue.py --rows 20000 --no-postgres

PostgreSQL is the server at CONTENTGEN_TEST_PG_URL (default postgres@127.0.0.1:5432); a scratch
database ``contentgen_bench_<pid>`` is created and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from pipeline.db import Article, Job, jobs, make_engine, queue, session_factory, upgrade
from pipeline.intake import ArticleIn, read_chunks

TASKS = ["summary", "headline"]
SECTIONS = ["politics", "business", "sport", "science", "culture", "world", None]
WORDS = tuple(
    [
        "council",
        "budget",
        "river",
        "bridge",
        "school",
        "vote",
        "market",
        "energy",
        "harbour",
        "museum",
        "festival",
        "rail",
        "hospital",
        "library",
        "election",
        "weather",
        "farmers",
        "tourism",
        "housing",
        "transport",
        "minister",
        "report",
        "police",
        "court",
        "union",
        "strike",
        "prices",
        "inflation",
        "company",
        "profit",
        "jobs",
        "research",
        "study",
        "patients",
        "climate",
        "flood",
        "season",
        "match",
        "goal",
        "coach",
        "players",
        "stadium",
        "album",
        "film",
        "novel",
        "theatre",
        "gallery",
        "border",
        "talks",
        "treaty",
    ]
)
BASELINE_ROWS = 5_000
CLAIM_CHUNK = 500
PG_DEFAULTS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://postgres@127.0.0.1:5432/postgres",
)


def generate(path: Path, rows: int, body_words: int = 145, seed: int = 7) -> int:
    """Write ``rows`` articles as JSONL, bodies of ``body_words`` words on average (+-40%)."""
    rng = random.Random(seed)
    low, high = max(1, body_words * 6 // 10), max(1, body_words * 14 // 10)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            words = rng.choices(WORDS, k=rng.randint(low, high))
            row = {
                "id": f"bench-{i:07d}",
                "title": " ".join(rng.choices(WORDS, k=8)).capitalize(),
                "body": " ".join(words).capitalize() + ".",
                "section": rng.choice(SECTIONS),
                "url": f"https://news.example.org/a/{i}",
                "published_at": f"2025-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                "metadata": {"author": rng.choice(WORDS), "n": i} if i % 3 else None,
            }
            fh.write(json.dumps(row) + "\n")
    return path.stat().st_size


def rate(count: int, seconds: float) -> str:
    """``count`` per second, with thousands separators."""
    return f"{count / seconds:>9,.0f}/s"


def report(db: str, what: str, count: int, unit: str, seconds: float, extra: str = "") -> None:
    """One aligned result line."""
    print(
        f"{db:<10} {what:<36} {count:>8,} {unit} in {seconds:6.2f} s ="
        f" {rate(count, seconds)}{extra}"
    )


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``fn()`` and how long it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def file_to_db(session: Session, path: Path) -> tuple[int, queue.EnqueueResult]:
    """What `contentgen enqueue` does: stream the file in chunks into the bulk enqueue."""
    total, rows = queue.EnqueueResult(), 0
    for chunk in read_chunks(path):
        rows += chunk.rows
        total += queue.enqueue(session, chunk.articles, TASKS)
    return rows, total


def naive(session: Session, articles: list[ArticleIn]) -> int:
    """Baseline: per article, an ORM lookup, an insert with flush, then one insert per job."""
    for a in articles:
        existing = session.scalar(select(Article).where(Article.source_id == a.source_id))
        if existing is None:
            existing = Article(
                source_id=a.source_id,
                title=a.title,
                body=a.body,
                section=a.section,
                url=a.url,
                published_at=a.published_at,
                meta=a.metadata,
                content_hash=a.content_hash,
            )
            session.add(existing)
            session.flush()
        for task in TASKS:
            session.add(Job(article_id=existing.id, task=task, content_hash=a.content_hash))
        session.flush()
    session.commit()
    return len(articles)


def claim_all(session: Session) -> tuple[int, int]:
    """Claim chunks of 500 until the queue is empty; returns (jobs, claims)."""
    claimed = claims = 0
    while batch := jobs.claim(session, "bench", CLAIM_CHUNK, lease_s=3600):
        claimed += len(batch)
        claims += 1
    return claimed, claims


def bench(name: str, urls: list[str], path: Path, sample: list[ArticleIn]) -> tuple[float, float]:
    """Every measurement on one kind of database (three fresh ones).

    Returns the rows/s of file -> db and of the bulk enqueue alone.
    """
    for url in urls:
        upgrade(url)
    engines = [make_engine(url) for url in urls]
    main, memory, baseline = (session_factory(engine) for engine in engines)
    try:
        with main() as session:
            (rows, result), seconds = timed(lambda: file_to_db(session, path))  # type: ignore[misc]
            jobs_rate = f", {rate(result.jobs, seconds)} jobs"
            report(name, "file -> db (intake + bulk enqueue)", rows, "rows", seconds, jobs_rate)
            file_rate = rows / seconds
            (rows2, again), seconds = timed(lambda: file_to_db(session, path))  # type: ignore[misc]
            assert again.unchanged == result.accepted and again.accepted == 0
            report(name, "same file again (all unchanged)", rows2, "rows", seconds)
        articles = [a for chunk in read_chunks(path) for a in chunk.articles]
        with memory() as session:
            result, seconds = timed(lambda: queue.enqueue(session, articles, TASKS))
            jobs_rate = f", {rate(result.jobs, seconds)} jobs"  # type: ignore[attr-defined]
            report(
                name, "bulk enqueue alone (in memory)", len(articles), "rows", seconds, jobs_rate
            )
            enqueue_rate = len(articles) / seconds
        with baseline() as session:
            renamed = [
                ArticleIn.model_validate({**a.model_dump(), "source_id": "b" + a.source_id})
                for a in sample
            ]
            _, bulk_s = timed(lambda: queue.enqueue(session, renamed, TASKS))
            _, naive_s = timed(lambda: naive(session, sample))
            n = len(sample)
            report(name, "naive ORM baseline (row by row)", n, "rows", naive_s)
            ratio = f"  -> bulk is {naive_s / bulk_s:.1f}x faster"
            report(name, "bulk enqueue, same sample", n, "rows", bulk_s, ratio)
        with main() as session:
            (claimed, claims), seconds = timed(lambda: claim_all(session))  # type: ignore[misc]
            each = f" ({claims} claims, {seconds / max(claims, 1) * 1000:.1f} ms each)"
            report(
                name, f"claim {CLAIM_CHUNK} at a time until empty", claimed, "jobs", seconds, each
            )
    finally:
        for engine in engines:
            engine.dispose()
    return file_rate, enqueue_rate


@contextmanager
def postgres_databases(count: int) -> Iterator[list[str] | None]:
    """Scratch databases on the test server (dropped afterwards), or None if unreachable."""
    configured = os.environ.get("CONTENTGEN_TEST_PG_URL")
    for admin in [configured] if configured else PG_DEFAULTS:
        url = make_url(admin)
        try:
            conn = psycopg.connect(
                url.set(drivername="postgresql").render_as_string(hide_password=False),
                autocommit=True,
                connect_timeout=3,
            )
        except psycopg.Error as exc:
            print(f"PostgreSQL at {url.render_as_string()}: {str(exc).strip()}")
            continue
        names = [f"contentgen_bench_{os.getpid()}_{n}" for n in range(count)]
        try:
            for db in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{db}"')
            yield [
                url.set(drivername="postgresql+psycopg", database=db).render_as_string(
                    hide_password=False
                )
                for db in names
            ]
        finally:
            for db in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.close()
        return
    yield None


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate the file, run both databases, print the verdict."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000, help="articles to generate")
    parser.add_argument(
        "--body-words", type=int, default=145, help="average body length (145 words ~ 1 KB)"
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="contentgen-bench-") as tmp:
        folder = Path(tmp)
        path = folder / "articles.jsonl"
        size = generate(path, args.rows, args.body_words)
        print(
            f"ContentGen enqueue benchmark: {args.rows:,} articles x {len(TASKS)} tasks"
            f" ({args.rows * len(TASKS):,} jobs), bodies ~{args.body_words} words,"
            f" {size / 1e6:.0f} MB of JSONL,"
            f" Python {sys.version.split()[0]}"
        )
        first = read_chunks(path, chunk_size=BASELINE_ROWS)
        sample = next(first).articles
        first.close()
        _, intake_s = timed(lambda: sum(len(c.articles) for c in read_chunks(path)))
        report("intake", "parse + validate only", args.rows, "rows", intake_s)
        sqlite_rates = bench(
            "SQLite", [f"sqlite:///{folder / f'bench{n}.db'}" for n in range(3)], path, sample
        )
        if args.no_postgres:
            print("PostgreSQL: skipped (--no-postgres)")
        else:
            with postgres_databases(3) as urls:
                if urls is None:
                    print("PostgreSQL: skipped (unreachable)")
                else:
                    bench("PostgreSQL", urls, path, sample)
    file_rate, enqueue_rate = sqlite_rates
    for what, value in (("bulk enqueue alone", enqueue_rate), ("file -> db", file_rate)):
        verdict = "met" if value >= 50_000 else "not met"
        print(f"goal >= 50,000 rows/s into SQLite, {what}: {value:,.0f} rows/s ({verdict})")
    print(f"total time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
