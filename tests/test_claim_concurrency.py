"""Several processes claim from one queue at once: every job is claimed exactly once."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import jobs, queue
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Generation, Job
from pipeline.intake.reader import ArticleIn

WORKERS = 4
ARTICLES = 1_000
TASKS = ["summary", "headline"]  # 2,000 jobs
CHUNK = 25


def worker(url: str, owner: str, barrier: Any, results: Any) -> None:
    """Claim chunks until the queue is empty, completing each job; report what was claimed."""
    engine = make_engine(url)
    claimed: list[int] = []
    lost: list[int] = []
    try:
        sessions = session_factory(engine)
        barrier.wait(timeout=120)  # everyone starts claiming at the same moment
        with sessions() as session:
            while chunk := jobs.claim(session, owner, CHUNK, lease_s=600):
                for job in chunk:
                    claimed.append(job.id)
                    done = Generation(
                        job_id=job.id,
                        task=job.task,
                        status="completed",
                        request_model="gpt-4.1-mini",
                        output_text=owner,
                    )
                    if not jobs.complete(session, job.id, owner, done):
                        lost.append(job.id)
        results.put((owner, claimed, lost, None))
    except BaseException as exc:  # reported to the test rather than lost in a child's stderr
        results.put((owner, claimed, lost, repr(exc)))
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_each_job_is_claimed_exactly_once(
    database_url: str, sessions: sessionmaker[Session]
) -> None:
    """4 processes x chunks of 25 over 2,000 jobs: no job twice, none missed, all succeeded
    with one attempt each."""
    with sessions() as session:
        articles = [
            ArticleIn(source_id=f"c{i}", title=f"T{i}", body=f"Body {i}") for i in range(ARTICLES)
        ]
        assert queue.enqueue(session, articles, TASKS).accepted == ARTICLES * len(TASKS)
        all_ids = set(session.scalars(select(Job.id)))

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(database_url, f"worker-{n}", barrier, results))
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=200) for _ in processes]
    except queue_module.Empty:
        pytest.fail("a worker did not report within 200 s")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    results.close()
    results.join_thread()

    assert [error for *_, error in reports if error] == []
    assert [p.exitcode for p in processes] == [0] * WORKERS
    claims = Counter(job_id for _, claimed, _, _ in reports for job_id in claimed)
    assert [job_id for job_id, n in claims.items() if n > 1] == []  # nobody claimed twice
    assert set(claims) == all_ids  # nothing was missed
    assert all(not lost for *_, lost, _ in reports)
    assert sum(1 for _, claimed, _, _ in reports if claimed) >= 2  # it really ran concurrently

    with sessions() as session:
        states = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        per_job = session.execute(
            select(Generation.job_id, func.count()).group_by(Generation.job_id)
        ).all()
        attempts = set(session.scalars(select(Job.attempts).distinct()))
    assert states == {"succeeded": ARTICLES * len(TASKS)}
    assert attempts == {1}  # each job was sent once, and counted once, at completion
    assert len(per_job) == len(all_ids) and {n for _, n in per_job} == {1}


def enqueuer(url: str, barrier: Any, results: Any) -> None:
    """Enqueue the same articles as the other process, at the same moment."""
    engine = make_engine(url)
    try:
        barrier.wait(timeout=120)
        with session_factory(engine)() as session:
            articles = [
                ArticleIn(source_id=f"e{i}", title=f"T{i}", body=f"Body {i}")
                for i in range(ARTICLES)
            ]
            result = queue.enqueue(session, articles, TASKS, chunk_size=100)
        results.put((result.accepted, result.unchanged, result.articles_new, None))
    except BaseException as exc:
        results.put((0, 0, 0, repr(exc)))
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_concurrent_enqueues_of_the_same_articles(
    database_url: str, sessions: sessionmaker[Session]
) -> None:
    """Two processes enqueue the same 1,000 articles at once: one job per pair, counted once."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    processes = [
        context.Process(target=enqueuer, args=(database_url, barrier, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=200) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
    results.close()
    results.join_thread()
    assert [error for *_, error in reports if error] == []
    pairs = ARTICLES * len(TASKS)
    assert sum(accepted for accepted, *_ in reports) == pairs
    assert sum(accepted + unchanged for accepted, unchanged, *_ in reports) == 2 * pairs
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == pairs
        assert session.scalar(select(func.count(func.distinct(Job.article_id)))) == ARTICLES
