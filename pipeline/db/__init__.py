"""The database: the schema, its migrations, and the only code that changes a job's state.

- ``models``: SQLAlchemy 2.0 tables (articles, jobs, runs, generations, prices, batches);
- ``engine`` and ``migrate``: engines with SQLite's and PostgreSQL's settings, Alembic from
  code, and the check that a database is at the code's revision;
- ``queue``: enqueue in bulk, requeue failed jobs, counts; ``jobs``: claims with a lease,
  completion, release, followers; ``leases``: leases that outlived their owner; ``procs``:
  lease owners as host, pid and run;
- ``outcomes``: a run's results recorded in groups; ``runs``: a run's row and totals;
- ``queries``, ``generations``, ``regeneration``, ``prices``, ``limitmembers``, ``articles``:
  what the other wings read and write.

``jobs``, ``queue`` and ``leases`` are exported as modules: their functions read best with
their namespace (``jobs.claim``, ``queue.enqueue``).
"""

from __future__ import annotations

from pipeline.db import jobs, leases, queue
from pipeline.db.engine import MISSING_DRIVER, is_sqlite, make_engine, session_factory
from pipeline.db.jobs import Claim, ClaimedJob
from pipeline.db.limitmembers import (
    Member,
    delete_members,
    prune_members,
    read_members,
    upsert_members,
)
from pipeline.db.migrate import head_revision, require_migrated, upgrade
from pipeline.db.models import (
    GENERATION_STATUSES,
    JOB_STATES,
    Article,
    Batch,
    BatchItem,
    Generation,
    Job,
    Price,
    Run,
    utcnow,
)
from pipeline.db.outcomes import OutcomeRow, record_outcomes
from pipeline.db.prices import sync_prices
from pipeline.db.procs import host_id, owner_alive, pid_alive
from pipeline.db.queries import (
    claimed_job,
    output_history,
    parent_outputs,
    peek_queued,
    queued_by_task_section,
)
from pipeline.db.queue import queued_count
from pipeline.db.regeneration import RegenerateFilter, regenerate
from pipeline.db.runs import RunTotals, beat, close_run, open_run, run_totals
from pipeline.db.types import SCALE

__all__ = [
    "GENERATION_STATUSES",
    "JOB_STATES",
    "MISSING_DRIVER",
    "SCALE",
    "Article",
    "Batch",
    "BatchItem",
    "Claim",
    "ClaimedJob",
    "Generation",
    "Job",
    "Member",
    "OutcomeRow",
    "Price",
    "RegenerateFilter",
    "Run",
    "RunTotals",
    "beat",
    "claimed_job",
    "close_run",
    "delete_members",
    "head_revision",
    "host_id",
    "is_sqlite",
    "jobs",
    "leases",
    "make_engine",
    "open_run",
    "output_history",
    "owner_alive",
    "parent_outputs",
    "peek_queued",
    "pid_alive",
    "prune_members",
    "queue",
    "queued_by_task_section",
    "queued_count",
    "read_members",
    "record_outcomes",
    "regenerate",
    "require_migrated",
    "run_totals",
    "session_factory",
    "sync_prices",
    "upgrade",
    "upsert_members",
    "utcnow",
]
