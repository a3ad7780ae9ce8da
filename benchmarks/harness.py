"""What the benchmarks share: the tasks they run, a free port, JSON over HTTP, a prepared queue."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from workload import generate

TASKS = ["summary", "headline"]
TASKS_4 = ["summary", "headline", "key_points", "fact_check"]


def tasks_for(n: int) -> list[str]:
    """The workload's task names for ``n`` (2 or 4) tasks."""
    return TASKS_4 if n == 4 else TASKS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def claimed_jobs(workdir: Path, url: str) -> list:
    from pipeline.db import make_engine, peek_queued, session_factory

    engine = make_engine(url)
    with session_factory(engine)() as session:
        jobs, _ = peek_queued(session, 10**9)
    engine.dispose()
    return jobs


def prepare(workdir: Path, n_articles: int, model: str, tasks: int = 2) -> list:
    from pipeline.db import make_engine, queue, session_factory, upgrade
    from pipeline.intake import read_chunks

    workload = generate(workdir, n_articles, model=model, tasks=tasks)
    url = f"sqlite:///{workdir}/bench.db"
    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        for chunk in read_chunks(workload.articles, chunk_size=5000):
            queue.enqueue(session, chunk.articles, tasks_for(tasks))
    engine.dispose()
    return claimed_jobs(workdir, url)
