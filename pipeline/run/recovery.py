"""Recovering what a dead run paid for: its journal entries, recorded by the next run.

``journal_entry`` is what a run writes before recording a billed result (with ``earlier``: the
answers a check's retry replaced, ``run.checking``); ``drain_journals``
records, at the next start on the same machine and database, every entry a dead run left
pending (``pipeline.run.journal`` says when a file counts as dead), through ``db.jobs.recover``,
and counts the death against the job the dead run was sending or answering, so a job that
kills every worker that sends it fails for good (``worker_lost``) instead of stopping the
queue night after night.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import Generation, insert_unseen, jobs, leases, pid_alive
from pipeline.run.journal import dead_files, generation_record
from pipeline.run.recording import Verdict

log = logging.getLogger("contentgen.run")


def journal_entry(verdict: Verdict, followers: Sequence[str]) -> dict[str, Any]:
    """What the journal keeps of a billed result: its generation row and the job's outcome."""
    return {
        "generation": generation_record(verdict.generation),
        "succeeded": verdict.succeeded,
        "article_id": verdict.article_id,
        "followers": list(followers),
    }


@dataclass(frozen=True)
class Drained:
    """What draining dead runs' journals did: results recorded, jobs failed as poison."""

    recorded: int = 0
    poisoned: tuple[int, ...] = ()


def drain_journals(
    sessions: sessionmaker[Session],
    directory: Path,
    *,
    liveness: leases.Liveness | None = None,
    max_deaths: int = 3,
) -> Drained:
    """Record the pending entries of dead runs' journals in ``directory``, and count each
    death against the job the run died on (``journal.blame``, ``jobs.record_death``).

    Each file is removed once its entries are in the database. ``liveness`` judges a file's
    owner through its run row (default: by pid, on this host name only).
    """
    host = socket.gethostname()
    judge = liveness or leases.Liveness(host, pid_alive)

    def owner_dead(owner: str) -> bool | None:
        with sessions() as session:
            return leases.owner_dead(session, owner, judge)

    recorded = 0
    poisoned: list[int] = []
    files = dead_files(directory, host=host, is_alive=judge.is_alive, owner_dead=owner_dead)
    for path, journal in files:
        # An answer a check's retry replaced is journalled twice: alone before the retry (as
        # the job's answer) and as an ``earlier`` of the retry's entry. The later entry says
        # what it became, so the first is left to it.
        replaced = {
            g.get("response_id")
            for entry in journal.pending
            for g in entry.get("earlier") or ()
            if g.get("response_id")
        }
        with sessions() as session:
            for entry in journal.pending:
                if entry["generation"].get("response_id") in replaced:
                    continue
                # Answers a check's retry replaced: stored first, each once (by response id).
                earlier = [Generation(**g) for g in entry.get("earlier") or ()]
                recorded += insert_unseen(session, earlier)
                recorded += jobs.recover(
                    session,
                    Generation(**entry["generation"]),
                    succeeded=bool(entry.get("succeeded")),
                    article_id=entry.get("article_id"),
                    followers=tuple(entry.get("followers") or ()),
                )
            blamed = sorted(journal.blamed)
            if blamed:
                alone = len(blamed) == 1
                failed = jobs.record_death(session, blamed, alone=alone, max_deaths=max_deaths)
                poisoned += failed
                log.warning(
                    "run %s died while job%s %s %s being sent or answered%s",
                    journal.owner or path.name,
                    "" if alone else "s",
                    ", ".join(map(str, blamed)),
                    "was" if alone else "were",
                    f"; failed for good (worker_lost): {failed}" if failed else "",
                )
        path.unlink(missing_ok=True)
    return Drained(recorded, tuple(poisoned))
