"""The database: the schema, its migrations, and the only code that changes a job's state.

- ``models``: SQLAlchemy 2.0 tables (articles, jobs, runs, generations, prices, batches);
- ``engine`` and ``migrate``: engines with SQLite's and PostgreSQL's settings, Alembic from
  code, and the check that a database is at the code's revision;
- ``queue``: enqueue in bulk, requeue failed jobs (by reason, staggered), counts; ``jobs``:
  claims with a lease, completion, release, followers; ``leases``: leases that outlived
  their owner; ``procs``: lease owners as host, pid and run;
- ``failures``: why a job failed for good (``FAILURE_REASONS``, dead letters); ``labels``:
  the batch labels jobs carry, and refusing one no job ever carried;
- ``outcomes``: a run's results recorded in groups; ``runs``: a run's row and totals;
- ``queries``, ``generations``, ``regeneration``, ``prices``, ``limitmembers``, ``articles``:
  what the other wings read and write;
- ``versions``: profile versions and their texts; ``reviews``: editors' decisions, appended;
  ``views``: the editorial views of migration 0007 (``v_outputs``, ``v_current_outputs``);
  ``learning``: what a run learns for the next one (the cache-key rate per account and model,
  its plan against its bill per model and layout);
- ``outbox``: the delivery outbox (``deliveries``): each version of an (article, task) item an
  editor's decision makes for the CMS, added in the decision's transaction, claimed with a
  lease by the deliverer, recorded sent or failing; ``deliverylog``: the outbox as
  ``contentgen deliveries`` lists it.
- ``budgets``: recurring budgets' spend per period and grants to running runs; ``alertlog``:
  the alerts sent, one per event.

``jobs``, ``queue`` and ``leases`` are exported as modules: their functions read best with
their namespace (``jobs.claim``, ``queue.enqueue``).
"""

from __future__ import annotations

from pipeline.db import jobs, leases, queue
from pipeline.db.alertlog import (
    alerts_sent,
    claim_alert,
    note_alert_outcome,
    runs_started_since,
)
from pipeline.db.budgets import (
    BudgetUse,
    Grant,
    budget_use,
    budget_uses,
    grant,
    release_grants,
)
from pipeline.db.deliverylog import (
    DeliveryRow,
    delivery_counts,
    list_deliveries,
    next_due_at,
    retry_now,
)
from pipeline.db.engine import MISSING_DRIVER, is_sqlite, make_engine, session_factory
from pipeline.db.failures import FAILURE_REASONS, REASON_FILTERS, check_reason, reason_of
from pipeline.db.jobs import Claim, ClaimedJob
from pipeline.db.labels import check_label, has_jobs, known_labels, labels_with_queued
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
    AlertSent,
    Article,
    Batch,
    BatchItem,
    DeskSession,
    Editor,
    Generation,
    Job,
    Price,
    ProfileVersion,
    Review,
    Run,
    utcnow,
)
from pipeline.db.outbox import (
    DELIVERY_STATES,
    Delivery,
    DeliveryFacts,
    add_delivery,
    claim_deliveries,
    deliverer_owner,
    item_uri,
    mark_failed,
    mark_sent,
    release_dead,
    release_leases,
    webhook_id,
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
    "DELIVERY_STATES",
    "FAILURE_REASONS",
    "GENERATION_STATUSES",
    "JOB_STATES",
    "MISSING_DRIVER",
    "OUTPUTS",
    "REASON_FILTERS",
    "REVIEW_STATES",
    "SCALE",
    "AlertSent",
    "Article",
    "Batch",
    "BatchItem",
    "BillFigures",
    "BudgetUse",
    "Claim",
    "ClaimedJob",
    "Delivery",
    "DeliveryFacts",
    "DeliveryRow",
    "DeskSession",
    "Editor",
    "Generation",
    "Grant",
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
    "add_delivery",
    "add_review",
    "alerts_sent",
    "beat",
    "bill_history",
    "budget_use",
    "budget_uses",
    "check_label",
    "check_reason",
    "claim_alert",
    "claim_deliveries",
    "claimed_job",
    "close_run",
    "delete_members",
    "deliverer_owner",
    "delivery_counts",
    "find_version",
    "grant",
    "has_jobs",
    "head_revision",
    "host_id",
    "insert_unseen",
    "is_sqlite",
    "item_uri",
    "jobs",
    "known_labels",
    "labels_with_queued",
    "leases",
    "list_deliveries",
    "load_key_rates",
    "make_engine",
    "mark_failed",
    "mark_sent",
    "next_due_at",
    "note_alert_outcome",
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
    "reason_of",
    "recent_key_sends",
    "record_bill_figures",
    "record_outcomes",
    "record_versions",
    "regenerate",
    "rejection_notes",
    "release_dead",
    "release_grants",
    "release_leases",
    "require_migrated",
    "retry_now",
    "run_totals",
    "runs_started_since",
    "save_key_rates",
    "session_factory",
    "stale_condition",
    "stored_versions",
    "sync_prices",
    "upgrade",
    "upsert_members",
    "utcnow",
    "webhook_id",
]
