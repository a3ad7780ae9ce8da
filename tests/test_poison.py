"""A job whose send kills the worker fails for good after three deaths; the queue goes on.

Issue 23: attempts were counted only when an outcome was recorded, so a job that killed its
worker (an answer that exhausts memory, say) was sent first by every run and never failed:
8 runs, 4 of 200 jobs done. Here an HTTP proxy between the worker and the simulator kills the
worker (SIGKILL) the moment the poison job's request reaches it. Each worker is a real
process running ``run_batch``; the next one reads the dead one's journal, counts the death
against the job it died on, and goes on. Other jobs in flight at a death are never blamed
alone, so they are not failed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import jobs, queue
from pipeline.db.models import Job
from pipeline.intake.reader import ArticleIn
from pipeline.run.send import SendGate
from pipeline.simulator.server import SimulatorServer
from tests.edge_support import ThreadedApp
from tests.engine_support import (
    completed_per_job,
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    recorded_cost,
    run_rows,
    sample_articles,
    seed,
    simulator,
    worker,
)

MARKER = "POISON-PILL-7"
MAX_RUNS = 8


class KillingProxy:
    """Forwards HTTP to ``target``; a request whose body holds ``MARKER`` kills ``victim``."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.victim: int | None = None
        self.kills = 0
        self.app = ThreadedApp(self._forward)

        async def session() -> aiohttp.ClientSession:
            return aiohttp.ClientSession()

        self._session = self.app.run(session())
        self.base_url = self.app.base_url

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if MARKER.encode() in body and self.victim is not None:
            self.kills += 1
            os.kill(self.victim, signal.SIGKILL)  # the send kills the worker
            return web.Response(status=503)  # nobody is left to read it
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as upstream:
            data = await upstream.read()
            skip = {"content-length", "transfer-encoding", "content-encoding"}
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in skip}
            return web.Response(status=upstream.status, body=data, headers=out)

    def close(self) -> None:
        self.app.run(self._session.close())
        self.app.close()


@pytest.fixture
def sim_and_proxy() -> Iterator[tuple[SimulatorServer, KillingProxy]]:
    """The simulator (some latency, so requests overlap) behind the killing proxy."""
    with simulator(latency_scale=0.3) as sim:
        proxy = KillingProxy(sim.base_url.removesuffix("/v1"))
        try:
            yield sim, proxy
        finally:
            proxy.close()


# Worker processes cost seconds each: the whole story on PostgreSQL, the counting on both
# databases below.
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_job_that_kills_its_worker_is_dead_lettered_and_the_rest_go_on(
    database_url: str,
    engine: Engine,
    tmp_path: Path,
    sim_and_proxy: tuple[SimulatorServer, KillingProxy],
) -> None:
    """Three deaths on the poison job alone fail it (worker_lost, attempts untouched); every
    other job succeeds exactly once; no bystander is failed; the bill is the recorded cost
    plus at most the requests in flight at the deaths."""
    sim, proxy = sim_and_proxy
    base = sample_articles()[0]
    poison = ArticleIn(
        source_id="poison", title=f"{MARKER} budget", body=base.body, section=base.section
    )
    [poison_job] = seed(engine, ["summary"], articles=[poison])
    others = seed(engine, ["summary", "headline"], n=4, start=1)
    settings = engine_settings(database_url, sim, tmp_path).model_copy(
        update={"openai_base_url": proxy.base_url}
    )
    exits = []
    for _ in range(MAX_RUNS):
        with worker(settings, concurrency=4) as proc:
            proxy.victim = proc.pid
            exits.append(proc.wait(timeout=120))
        if exits[-1] == 0:
            break
    billed = Decimal(sim.ledger()["totals"]["cost_usd"])
    counts = ledger_requests(sim)

    kills = exits.count(-signal.SIGKILL)
    assert exits[-1] == 0, exits
    assert 3 <= kills <= 4, exits  # three deaths alone (one more if it first died in a burst)
    assert proxy.kills == kills
    rows = {j.id: j for j in job_rows(engine)}
    assert rows[poison_job].state == "failed"
    assert rows[poison_job].attempts == 0  # never answered: no attempt was recorded
    with Session(engine) as session:
        poisoned = session.execute(
            select(Job.failure_reason, Job.worker_deaths, Job.last_error).where(
                Job.id == poison_job
            )
        ).one()
    assert poisoned[0] == "worker_lost" and poisoned[1] == 3, poisoned
    assert "3 workers died" in (poisoned[2] or "")
    assert {rows[i].state for i in others} == {"succeeded"}, [rows[i] for i in others]
    assert completed_per_job(engine) == dict.fromkeys(others, 1)
    assert [r.state for r in run_rows(engine)] == ["abandoned"] * kills + ["finished"]
    recorded = recorded_cost(engine)
    most = max(g.cost_usd for g in generations(engine))
    assert recorded <= billed <= recorded + kills * 4 * most
    assert counts["completed"] <= len(others) + kills * 4


def test_deaths_count_only_against_a_job_alone_and_fail_it_at_the_third(
    sessions: sessionmaker[Session],
) -> None:
    """A death with several jobs on the wire only marks them; a job the worker died on alone
    counts a death, fails at the third with worker_lost (whoever holds it), and a success
    clears it. Done jobs are left alone."""
    with sessions() as s:
        articles = [ArticleIn(source_id=f"a{i}", title="T", body="B") for i in range(3)]
        queue.enqueue(s, articles, ["summary"])
        a, b, c = sorted(s.scalars(select(Job.id)))
        assert jobs.record_death(s, [a, b], alone=False, max_deaths=3) == []
        assert jobs.record_death(s, [a], alone=True, max_deaths=3) == []
        assert jobs.record_death(s, [a], alone=True, max_deaths=3) == []
        jobs.claim(s, "web:1:run1", 3, lease_s=60)  # held by a live run: still counted
        assert jobs.record_death(s, [a], alone=True, max_deaths=3) == [a]
        s.execute(update(Job).where(Job.id == c).values(state="succeeded", lease_owner=None))
        s.commit()
        assert jobs.record_death(s, [c], alone=True, max_deaths=1) == []
        s.expire_all()
        got = {
            j.id: (j.state, j.worker_deaths, j.death_suspect, j.failure_reason, j.lease_owner)
            for j in s.scalars(select(Job))
        }
    assert got == {
        a: ("failed", 3, True, "worker_lost", None),
        b: ("running", 0, True, None, "web:1:run1"),
        c: ("succeeded", 0, False, None, None),
    }


async def test_a_suspects_send_is_kept_apart_from_every_other_send() -> None:
    """A suspect waits for a quiet gap even while others send continuously, and nothing else
    is sent within the gap after it."""
    gate = SendGate(gap_s=0.05)
    loop = asyncio.get_running_loop()
    sent: list[tuple[float, str]] = []
    stop = loop.time() + 0.6

    async def steady() -> None:
        while loop.time() < stop:
            await gate.wait(False)
            sent.append((loop.time(), "other"))
            await asyncio.sleep(0.005)

    async def suspect() -> None:
        await asyncio.sleep(0.1)
        await gate.wait(True)
        sent.append((loop.time(), "suspect"))

    await asyncio.gather(steady(), steady(), suspect())
    [at] = [t for t, who in sent if who == "suspect"]
    others = [t for t, who in sent if who == "other"]
    assert min(abs(t - at) for t in others) >= 0.05 - 1e-3
    assert len(others) > 50  # the others went on around it
