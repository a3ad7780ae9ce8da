"""The journal of paid results: written before recording, drained by the next run.

A result the provider billed but the database never got (the worker died between the two, or
the database was away) is recorded later with its real usage and cost, and its job is done:
nothing paid is lost, and the recorded cost still equals the bill.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine

from pipeline.db.models import Generation
from pipeline.run.journal import Journal, dead_files, file_name, journal_dir, read_pending
from tests.engine_support import (
    engine_settings,
    generations,
    job_rows,
    ledger_requests,
    run_engine,
    seed,
    simulator,
)


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_done_entries_are_not_pending_and_a_drained_file_is_removed(tmp_path: Path) -> None:
    """write/done pairs cancel; a damaged last line is skipped; close deletes a clean file."""
    journal = Journal(tmp_path, "host:123:run1")
    first = journal.write({"generation": {"job_id": 1}})
    journal.write({"generation": {"job_id": 2}})
    journal.done(first)
    with journal.path.open("a", encoding="utf-8") as fh:
        fh.write('{"id": "cut sh')  # a crash mid-line
    pending = read_pending(journal.path)
    assert [e["generation"]["job_id"] for e in pending] == [2]
    journal.close()
    assert journal.path.exists()  # one entry still pending: kept for the next run

    clean = Journal(tmp_path, "host:124:run2")
    clean.done(clean.write({"generation": {"job_id": 3}}))
    clean.close()
    assert not clean.path.exists()


def test_only_dead_owners_of_this_host_are_drained(tmp_path: Path) -> None:
    """Files of live processes and of other hosts are left alone."""
    dead = dead_pid()
    for owner in (f"me:{dead}:run1", "me:4242:run2", f"other:{dead}:run3"):
        Journal(tmp_path, owner).write({"generation": {}})
    found = [p.name for p, _ in dead_files(tmp_path, host="me", is_alive=lambda pid: pid == 4242)]
    assert found == [file_name(f"me:{dead}:run1")]


def test_next_run_records_what_a_dead_run_paid_for(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    """A pending journal entry of a dead run: recorded at its cost, its job done, not resent."""
    import socket

    [job_id, *_rest] = seed(engine, ["summary"], n=3)
    with simulator() as sim:
        settings = engine_settings(database_url, sim, tmp_path)
        paid = Generation(
            job_id=job_id,
            run_id=None,
            task="summary",
            status="completed",
            response_id="resp_paid_by_a_dead_run",
            request_model="gpt-4.1-mini",
            model="gpt-4.1-mini",
            output_text="A summary paid for before the crash.",
            input_tokens=1500,
            cached_tokens=0,
            output_tokens=80,
            cost_usd=Decimal("0.000728"),
            list_cost_usd=Decimal("0.000728"),
            attempts=1,
        )
        folder = journal_dir(None, settings.database_url)
        owner = f"{socket.gethostname()}:{dead_pid()}:run99"
        dead = Journal(folder, owner)
        entry = {
            "generation": {
                c.key: getattr(paid, c.key)
                for c in Generation.__table__.columns
                if getattr(paid, c.key) is not None
            },
            "succeeded": True,
            "article_id": None,
            "followers": [],
        }
        dead.write(json.loads(json.dumps(entry, default=str)))
        dead.close()

        summary = run_engine(settings)
        counts = ledger_requests(sim)

    assert summary.totals.succeeded == 2  # the other two jobs; the paid one was recorded
    assert counts["completed"] == 2
    recovered = [g for g in generations(engine) if g.response_id == "resp_paid_by_a_dead_run"]
    assert len(recovered) == 1 and recovered[0].cost_usd == Decimal("0.000728")
    assert {j.state for j in job_rows(engine)} == {"succeeded"}
    assert not (folder / file_name(owner)).exists()
