"""Crash safety of leases: attempts count sends, not claims; dead workers' jobs and runs are
taken back at once on their host, stale leases elsewhere. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.db import jobs, leases, queue
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Generation, Job, Run, utcnow
from pipeline.db.procs import Worker, owner_alive, parse_owner, parse_worker, pid_alive
from pipeline.db.runs import close_run, open_run
from pipeline.intake.reader import ArticleIn
from pipeline.settings import get_settings

T0 = dt.datetime(2025, 11, 20, 12, 0, 0)
CONTENTGEN = Path(sys.executable).parent / "contentgen"


def enqueue(session: Session, n: int) -> None:
    """``n`` summary jobs."""
    articles = [ArticleIn(source_id=f"a{i}", title=f"T{i}", body=f"Body {i}") for i in range(n)]
    queue.enqueue(session, articles, ["summary"])


def rows(session: Session) -> list[Job]:
    """Every job, freshly read, by id."""
    session.expire_all()
    return list(session.scalars(select(Job).order_by(Job.id)))


def by_owner(session: Session) -> dict[str | None, list[str]]:
    """Lease owner -> states of its jobs (None: not leased)."""
    out: dict[str | None, list[str]] = {}
    for job in rows(session):
        out.setdefault(job.lease_owner, []).append(job.state)
    return out


def lease(session: Session, job_ids: list[int], owner: str, expires_at: dt.datetime) -> None:
    """Hand ``job_ids`` to ``owner`` as if it had claimed them."""
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(state="running", lease_owner=owner, lease_expires_at=expires_at)
    )
    session.commit()


def completed(job_id: int, run_id: int | None = None) -> Generation:
    """A completed generation of ``job_id``."""
    return Generation(
        job_id=job_id,
        run_id=run_id,
        task="summary",
        status="completed",
        request_model="gpt-4.1-mini",
        output_text="ok",
        input_tokens=100,
        output_tokens=10,
    )


@pytest.fixture
def sessions_on() -> Iterator[Callable[[str], sessionmaker[Session]]]:
    """``sessions_on(url)``: a session factory on ``url``, disposed after the test."""
    engines = []

    def bind(url: str) -> sessionmaker[Session]:
        engines.append(make_engine(url))
        return session_factory(engines[-1])

    yield bind
    for engine in engines:
        engine.dispose()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["sleep", "0"])
    process.wait()
    return process.pid


# -- attempts are counted when sent ---------------------------------------------------------


def test_claim_counts_no_attempt_and_an_outcome_counts_one(
    sessions: sessionmaker[Session],
) -> None:
    """A claim leaves attempts alone; complete and fail each count the attempt they record."""
    with sessions() as s:
        enqueue(s, 2)
        one, two = jobs.claim(s, "w", 2, lease_s=60)
        assert (one.attempts, two.attempts) == (0, 0)
        assert [j.attempts for j in rows(s)] == [0, 0]
        assert jobs.complete(s, one.id, "w", completed(one.id))
        assert (
            jobs.fail(s, two.id, "w", "HTTP 500", generation=None, max_attempts=3, permanent=False)
            == "queued"
        )
        assert [(j.state, j.attempts) for j in rows(s)] == [("succeeded", 1), ("queued", 1)]


def test_fail_decides_on_the_new_count(sessions: sessionmaker[Session]) -> None:
    """The max_attempts-th recorded failure fails the job; a permanent one fails the first."""
    with sessions() as s:
        enqueue(s, 2)
        states = []
        for _ in range(2):
            (job,) = jobs.claim(s, "w", 1, lease_s=60)
            states.append(
                jobs.fail(s, job.id, "w", "boom", generation=None, max_attempts=2, permanent=False)
            )
        assert states == ["queued", "failed"]
        (job,) = jobs.claim(s, "w", 1, lease_s=60)
        assert (
            jobs.fail(s, job.id, "w", "400", generation=None, max_attempts=9, permanent=True)
            == "failed"
        )
        assert [(j.state, j.attempts) for j in rows(s)] == [("failed", 2), ("failed", 1)]


def test_lost_lease_counts_nothing(sessions: sessionmaker[Session]) -> None:
    """Recording for a job one no longer holds changes neither its state nor its attempts."""
    with sessions() as s:
        enqueue(s, 1)
        (job,) = jobs.claim(s, "w", 1, lease_s=60)
        assert (
            jobs.fail(s, job.id, "x", "e", generation=None, max_attempts=3, permanent=False)
            == "lost"
        )
        assert not jobs.complete(s, job.id, "x", completed(job.id))
        assert [(j.state, j.attempts) for j in rows(s)] == [("running", 0)]


def test_release_leaves_attempts_unless_the_claim_counted_one(
    sessions: sessionmaker[Session],
) -> None:
    """Unsent jobs go back as they were; a batch claim's count is taken back on release."""
    with sessions() as s:
        enqueue(s, 2)
        one, two = (
            jobs.claim(s, "w", 1, lease_s=60),
            jobs.claim(s, "b", 1, lease_s=60, count_attempt=True),
        )
        assert two[0].attempts == 1
        assert jobs.release(s, [one[0].id], "w") == 1
        assert jobs.release(s, [two[0].id], "b", attempt_counted=True) == 1
        assert [(j.state, j.attempts, j.lease_owner) for j in rows(s)] == [
            ("queued", 0, None),
            ("queued", 0, None),
        ]


def test_expiries_never_fail_a_job_that_was_never_sent(sessions: sessionmaker[Session]) -> None:
    """20 claims whose worker died before sending, each lease expiring: nothing failed."""
    with sessions() as s:
        enqueue(s, 5)
        now = T0
        for _ in range(20):
            assert len(jobs.claim(s, "w", 5, lease_s=30, now=now)) == 5
            now += dt.timedelta(seconds=31)
            assert leases.requeue_expired(s, max_attempts=3, now=now) == 5
        assert {(j.state, j.attempts, j.last_error) for j in rows(s)} == {("queued", 0, None)}


def test_expiry_fails_a_job_whose_sends_used_every_attempt(
    sessions: sessionmaker[Session],
) -> None:
    """A batch claim counts its send: the expiry after the last one fails it, as before."""
    with sessions() as s:
        enqueue(s, 1)
        now = T0
        for _ in range(3):
            jobs.claim(s, "batch", 1, lease_s=30, now=now, count_attempt=True)
            now += dt.timedelta(seconds=31)
            leases.requeue_expired(s, max_attempts=3, now=now)
        (job,) = rows(s)
        assert (job.state, job.attempts) == ("failed", 3)
        assert job.last_error == "lease expired on the last attempt (worker died or hung)"


def test_release_stale_returns_expired_leases_only(sessions: sessionmaker[Session]) -> None:
    """Leases expired (long enough ago) go back with attempts untouched, never failed."""
    with sessions() as s:
        enqueue(s, 3)
        a, b, c = (j.id for j in rows(s))
        lease(s, [a], "far:1:run1", T0 - dt.timedelta(seconds=600))
        lease(s, [b], "far:2:run2", T0 - dt.timedelta(seconds=60))
        lease(s, [c], "far:3:run3", T0 + dt.timedelta(seconds=60))
        s.execute(update(Job).values(attempts=9))
        s.commit()
        assert leases.release_stale(s, older_than_s=300, now=T0) == 1
        assert leases.release_stale(s, now=T0) == 1
        assert leases.release_stale(s, now=T0) == 0
        assert [(j.state, j.attempts, j.lease_owner) for j in rows(s)] == [
            ("queued", 9, None),
            ("queued", 9, None),
            ("running", 9, "far:3:run3"),
        ]


# -- dead workers ---------------------------------------------------------------------------


def test_reclaim_dead_takes_back_only_dead_workers_on_this_host(
    sessions: sessionmaker[Session],
) -> None:
    """Dead owners on the host lose their jobs at once and their runs are abandoned with
    totals; live owners, other hosts, batches and unparseable names are left alone."""
    host = "web_1"
    now = T0 + dt.timedelta(hours=1)
    with sessions() as s:
        enqueue(s, 8)
        ids = [j.id for j in rows(s)]

        def run(worker: str) -> int:
            return open_run(s, kind="cli", trigger="cli", worker=worker)

        dead_run, live_run, far_run = run("web_1:100"), run("web_1:200"), run("web_1:100")
        old_run, idle_dead_run, old_idle_run = run("web_1"), run("web_1:300"), run("web_1")
        closed_run = run("web_1:100")
        close_run(s, closed_run, state="finished")
        far_run_other = run("db-2:100")
        far = T0 + dt.timedelta(hours=5)  # no lease has expired
        lease(s, ids[0:2], f"web_1:100:run{dead_run}", far)
        lease(s, ids[2:3], f"web_1:200:run{live_run}", far)
        lease(s, ids[3:4], f"db-2:100:run{far_run_other}", far)
        lease(s, ids[4:5], f"web_1:400:run{old_run}", far)  # an old row's run, named by its owner
        lease(s, ids[5:6], "batch:7", far)
        lease(s, ids[6:7], "webX1:100:run99", far)  # LIKE's "_" must not match it
        lease(s, ids[7:8], "web_1:100:cancel", far)
        jobs.complete(s, ids[0], f"web_1:100:run{dead_run}", completed(ids[0], dead_run))
        asked: list[int] = []

        def is_alive(pid: int) -> bool:
            asked.append(pid)
            return pid == 200

        result = leases.reclaim_dead(s, host=host, is_alive=is_alive, now=now)
        assert result.jobs_released == 2
        assert result.dead_owners == (f"web_1:100:run{dead_run}", f"web_1:400:run{old_run}")
        assert sorted(result.runs_abandoned) == sorted([dead_run, far_run, old_run, idle_dead_run])
        assert sorted(set(asked)) == [100, 200, 300, 400]
        assert [(j.state, j.attempts, j.lease_owner) for j in rows(s)][:2] == [
            ("succeeded", 1, None),
            ("queued", 0, None),
        ]
        assert by_owner(s) == {
            None: ["succeeded", "queued", "queued"],
            f"web_1:200:run{live_run}": ["running"],
            f"db-2:100:run{far_run_other}": ["running"],
            "batch:7": ["running"],
            "webX1:100:run99": ["running"],
            "web_1:100:cancel": ["running"],
        }
        s.expire_all()
        runs = {r.id: r for r in s.scalars(select(Run))}
        assert {i for i, r in runs.items() if r.state == "abandoned"} == set(result.runs_abandoned)
        assert runs[live_run].state == runs[old_idle_run].state == "running"
        assert runs[far_run_other].state == "running" and runs[closed_run].state == "finished"
        assert runs[dead_run].stop_reason == "worker web_1:100 died"
        assert runs[old_run].stop_reason == "worker web_1:400 died"
        assert runs[dead_run].finished_at == now
        assert (runs[dead_run].requests, runs[dead_run].succeeded) == (1, 1)
        assert (runs[dead_run].input_tokens, runs[dead_run].output_tokens) == (100, 10)
        again = leases.reclaim_dead(s, host=host, is_alive=is_alive, now=now)
        assert again == leases.ReclaimResult()


def test_a_reaped_process_is_dead_and_this_one_alive() -> None:
    """pid_alive tells a real exited process from a running one; pid 1 exists for anyone."""
    assert not pid_alive(dead_pid())
    assert pid_alive(os.getpid())
    assert pid_alive(1)  # PermissionError for a non-root user still means it exists
    assert not pid_alive(0) and not pid_alive(-1) and not pid_alive(2**64)


def test_owner_and_worker_names_parse_or_are_left_alone() -> None:
    """Only host:pid:runN owners and host:pid workers parse; everything else is None."""
    assert parse_owner("web-1.example:4242:run17") == Worker("web-1.example", 4242, 17)
    assert parse_worker("web-1:4242") == Worker("web-1", 4242)
    for name in ("batch:7", "web-1:4242:cancel", "web-1:0:run3", "web-1", "", None, "a:b:run1"):
        assert parse_owner(name) is None
    assert parse_worker("web-1") is None and parse_worker("web-1:12:run3") is None
    assert owner_alive("web-1:5:run1", host="web-1", is_alive=lambda pid: pid == 5) is True
    assert owner_alive("web-1:6:run1", host="web-1", is_alive=lambda pid: pid == 5) is False
    assert owner_alive("db-2:5:run1", host="web-1", is_alive=lambda pid: True) is None
    assert owner_alive("batch:3", host="web-1") is None


def test_lease_owners_group_jobs_by_owner(sessions: sessionmaker[Session]) -> None:
    """Each owner with its job count and soonest and latest expiry, soonest first."""
    with sessions() as s:
        enqueue(s, 3)
        a, b, c = (j.id for j in rows(s))
        lease(s, [a], "w:1:run1", T0 + dt.timedelta(seconds=50))
        lease(s, [b], "w:1:run1", T0 + dt.timedelta(seconds=10))
        lease(s, [c], "w:2:run2", T0 + dt.timedelta(seconds=5))
        assert leases.lease_owners(s) == [
            leases.LeaseOwner(
                "w:2:run2", 1, T0 + dt.timedelta(seconds=5), T0 + dt.timedelta(seconds=5)
            ),
            leases.LeaseOwner(
                "w:1:run1", 2, T0 + dt.timedelta(seconds=10), T0 + dt.timedelta(seconds=50)
            ),
        ]
        assert leases.lease_owners(s, tasks=["headline"]) == []


# -- the command line -----------------------------------------------------------------------


def contentgen(url: str, cwd: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed ``contentgen`` in ``cwd`` against the database at ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTGEN_")}
    env["CONTENTGEN_DATABASE_URL"] = url
    env["COLUMNS"] = "200"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CONTENTGEN), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.mark.slow
def test_cli_shows_owners_and_releases_stale_leases(
    database_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """`contentgen jobs` lists lease owners and whether they live; `jobs release --stale`
    takes back a dead local worker's jobs and expired leases elsewhere, and says so."""
    host = socket.gethostname()
    pid = dead_pid()
    now = utcnow()
    with sessions() as s:
        enqueue(s, 5)
        ids = [j.id for j in rows(s)]
        dead_run = open_run(s, kind="cli", trigger="cli", worker=f"{host}:{pid}")
        dead, live = f"{host}:{pid}:run{dead_run}", f"{host}:{os.getpid()}:run999"
        lease(s, ids[0:2], dead, now + dt.timedelta(hours=1))
        lease(s, ids[2:3], live, now + dt.timedelta(hours=1))
        lease(s, ids[3:4], "elsewhere.invalid:1:run1", now - dt.timedelta(hours=1))
        lease(s, ids[4:5], "elsewhere.invalid:2:run2", now + dt.timedelta(hours=1))
    run = contentgen(database_url, tmp_path)

    shown = run("jobs", "--json")
    assert shown.returncode == 0, shown.stderr
    held = {x["owner"]: x for x in json.loads(shown.stdout)["leases"]}
    assert {o: (x["jobs"], x["alive"]) for o, x in held.items()} == {
        dead: (2, False),
        live: (1, True),
        "elsewhere.invalid:1:run1": (1, None),
        "elsewhere.invalid:2:run2": (1, None),
    }
    released = run("jobs", "release", "--stale", "--json")
    assert released.returncode == 0, released.stderr
    report = json.loads(released.stdout)
    assert (report["jobs_released"], report["stale_released"]) == (2, 1)
    assert report["runs_abandoned"] == [dead_run] and report["dead_owners"] == [dead]
    with sessions() as s:
        assert by_owner(s) == {
            None: ["queued", "queued", "queued"],
            live: ["running"],
            "elsewhere.invalid:2:run2": ["running"],
        }
        assert s.get(Run, dead_run).state == "abandoned"  # type: ignore[union-attr]


def test_cli_text_output_help_and_refusal(
    sqlite_url: str,
    sessions_on: Callable[[str], sessionmaker[Session]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The readable `jobs` table names owners; `jobs release` says what it released, wants
    --stale, and its help ends with an example."""
    monkeypatch.setenv("CONTENTGEN_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        with sessions_on(sqlite_url)() as s:
            enqueue(s, 2)
            a, b = (j.id for j in rows(s))
            lease(
                s,
                [a],
                f"{socket.gethostname()}:{dead_pid()}:run1",
                utcnow() + dt.timedelta(hours=1),
            )
            lease(s, [b], "elsewhere.invalid:1:run2", utcnow() - dt.timedelta(minutes=5))
        cli = CliRunner()
        table = cli.invoke(app, ["jobs"])
        assert table.exit_code == 0, table.output
        assert "lease owner" in table.stdout and "elsewhere.invalid:1:run2" in table.stdout
        assert "unknown" in table.stdout and "ago" in table.stdout
        released = cli.invoke(app, ["jobs", "release", "--stale", "--older-than", "60"])
        assert released.exit_code == 0, released.output
        assert f"released 1 job(s) of dead workers on {socket.gethostname()}" in released.stdout
        assert "released 1 job(s) whose lease expired more than 60 s ago" in released.stdout
        refused = cli.invoke(app, ["jobs", "release"])
        assert refused.exit_code == 2 and "--stale" in refused.stderr
        helped = cli.invoke(app, ["jobs", "release", "--help"])
        assert helped.exit_code == 0 and "--json" in helped.stdout
        assert (
            "Example:" in helped.stdout and "jobs release --stale --older-than 600" in helped.stdout
        )
    finally:
        get_settings.cache_clear()
