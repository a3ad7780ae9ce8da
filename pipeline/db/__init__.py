"""The database: the schema, its migrations, and the only code that changes a job's state.

- ``models``: SQLAlchemy 2.0 tables (articles, jobs, runs, generations, prices, batches);
- ``engine`` and ``migrate``: engines with SQLite's and PostgreSQL's settings, Alembic from
  code, and the check that a database is at the code's revision;
- ``queue``: enqueue in bulk, requeue failed jobs, counts; ``labels``: the batch labels jobs
  carry, and refusing one no job ever carried; ``jobs``: claims with a lease,
  completion, release, followers; ``leases``: leases that outlived their owner; ``procs``:
  lease owners as host, pid and run;
- ``outcomes``: a run's results recorded in groups; ``runs``: a run's row and totals;
- ``queries``, ``generations``, ``regeneration``, ``prices``, ``limitmembers``, ``articles``:
  what the other wings read and write;
- ``versions``: profile versions and their texts; ``reviews``: editors' decisions, appended;
  ``views``: the editorial views of migration 0007 (``v_outputs``, ``v_current_outputs``);
  ``learning``: what a run learns for the next one (the cache-key rate per account and model,
  its plan against its bill per model and layout).

``jobs``, ``queue`` and ``leases`` are exported as modules: their functions read best with
their namespace (``jobs.claim``, ``queue.enqueue``).
"""

from __future__ import annotations

from pipeline.db import jobs, leases, queue
from pipeline.db.engine import MISSING_DRIVER, is_sqlite, make_engine, session_factory
from pipeline.db.jobs import Claim, ClaimedJob
from pipeline.db.labels import check_label, known_labels, labels_with_queued
from pipeline.db.learning import (
    BillFigures,
    bill_history,
    load_key_rates,
    recent_key_sends,
    record_bill_figures,
    save_key_rates,
)
from pipeline.db.limitmembers import (
    Member,
    delete_members,
    prune_members,
    read_members,
    upsert_members,
)
from pipeline.db.migrate import head_revision, require_migrated, upgrade
from pipeline.db.models import (
    DECISIONS,
    GENERATION_STATUSES,
    JOB_STATES,
    REVIEW_STATES,
    Article,
    Batch,
    BatchItem,
    Generation,
    Job,
    Price,
    ProfileVersion,
    Review,
    Run,
    utcnow,
)
from pipeline.db.outcomes import OutcomeRow, insert_unseen, record_outcomes
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
from pipeline.db.regeneration import RegenerateFilter, regenerate, stale_condition
from pipeline.db.reviews import RejectionNote, add_review, rejection_notes
from pipeline.db.runs import RunTotals, beat, close_run, open_run, run_totals
from pipeline.db.types import SCALE
from pipeline.db.versions import (
    StoredVersion,
    VersionRow,
    find_version,
    record_versions,
    stored_versions,
)
from pipeline.db.views import AI_EDITED, AI_GENERATED, CURRENT_OUTPUTS, OUTPUTS

__all__ = [
    "AI_EDITED",
    "AI_GENERATED",
    "CURRENT_OUTPUTS",
    "DECISIONS",
    "GENERATION_STATUSES",
    "JOB_STATES",
    "MISSING_DRIVER",
    "OUTPUTS",
    "REVIEW_STATES",
    "SCALE",
    "Article",
    "Batch",
    "BatchItem",
    "BillFigures",
    "Claim",
    "ClaimedJob",
    "Generation",
    "Job",
    "Member",
    "OutcomeRow",
    "Price",
    "ProfileVersion",
    "RegenerateFilter",
    "RejectionNote",
    "Review",
    "Run",
    "RunTotals",
    "StoredVersion",
    "VersionRow",
    "add_review",
    "beat",
    "bill_history",
    "check_label",
    "claimed_job",
    "close_run",
    "delete_members",
    "find_version",
    "head_revision",
    "host_id",
    "insert_unseen",
    "is_sqlite",
    "jobs",
    "known_labels",
    "labels_with_queued",
    "leases",
    "load_key_rates",
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
    "recent_key_sends",
    "record_bill_figures",
    "record_outcomes",
    "record_versions",
    "regenerate",
    "rejection_notes",
    "require_migrated",
    "run_totals",
    "save_key_rates",
    "session_factory",
    "stale_condition",
    "stored_versions",
    "sync_prices",
    "upgrade",
    "upsert_members",
    "utcnow",
]
