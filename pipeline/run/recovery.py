"""Recovering what a dead run paid for: its journal entries, recorded by the next run.

``journal_entry`` is what a run writes before recording a billed result (with ``earlier``: the
answers a check's retry replaced, ``run.checking``); ``drain_journals``
records, at the next start on the same machine and database, every entry a dead run left
pending (``pipeline.run.journal`` says when a file counts as dead), through ``db.jobs.recover``.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from pipeline.db import Generation, insert_unseen, jobs, pid_alive
from pipeline.run.journal import dead_files, generation_record
from pipeline.run.recording import Verdict


def journal_entry(verdict: Verdict, followers: Sequence[str]) -> dict[str, Any]:
    """What the journal keeps of a billed result: its generation row and the job's outcome."""
    return {
        "generation": generation_record(verdict.generation),
        "succeeded": verdict.succeeded,
        "article_id": verdict.article_id,
        "followers": list(followers),
    }


def drain_journals(sessions: sessionmaker[Session], directory: Path) -> int:
    """Record the pending entries of dead runs' journals in ``directory``; how many.

    Each file is removed once its entries are in the database.
    """
    recovered = 0
    for path, pending in dead_files(directory, host=socket.gethostname(), is_alive=pid_alive):
        with sessions() as session:
            for entry in pending:
                # Answers a check's retry replaced: stored first, each once (by response id).
                earlier = [Generation(**g) for g in entry.get("earlier") or ()]
                recovered += insert_unseen(session, earlier)
                recovered += jobs.recover(
                    session,
                    Generation(**entry["generation"]),
                    succeeded=bool(entry.get("succeeded")),
                    article_id=entry.get("article_id"),
                    followers=tuple(entry.get("followers") or ()),
                )
        path.unlink(missing_ok=True)
    return recovered
