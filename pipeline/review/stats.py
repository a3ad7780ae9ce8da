"""The editorial report: review states, approval and edit rates and cost per approved text per
task and profile version, and which checks fail. Read from the views ``v_review_by_version``
and ``v_flags_by_check`` (migration 0007), so SQL clients get the same figures.

Money comes back exact: the views' ``cost_usd_e10`` (an integer of 1e-10 USD) is turned into
``Decimal`` here; cost per approved text divides it by the approved and edited outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, column, func, select, table
from sqlalchemy.orm import Session

from pipeline.db import CURRENT_OUTPUTS, SCALE

_BY_VERSION = table(
    "v_review_by_version",
    column("task", String),
    column("version", String),
    column("outputs", Integer),
    column("pending", Integer),
    column("flagged", Integer),
    column("approved", Integer),
    column("edited", Integer),
    column("rejected", Integer),
    column("auto", Integer),
    column("generations", Integer),
    column("cost_usd_e10", BigInteger),
)
_FLAGS = table(
    "v_flags_by_check",
    column("task", String),
    column("version", String),
    column("check_name", String),
    column("checked", Integer),
    column("failed", Integer),
    column("failed_then_retried", Integer),
    column("failed_share", Float),
)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class VersionReview:
    """Review states of the current outputs of one task and version, and what they cost."""

    task: str
    version: str
    outputs: int
    pending: int
    flagged: int
    approved: int
    edited: int
    rejected: int
    auto: int
    generations: int
    cost_usd: Decimal

    @property
    def approval_rate(self) -> float | None:
        """Approved or edited, of those decided."""
        return _ratio(self.approved + self.edited, self.approved + self.edited + self.rejected)

    @property
    def edit_rate(self) -> float | None:
        """Edited, of those signed off."""
        return _ratio(self.edited, self.approved + self.edited)

    @property
    def cost_per_approved_usd(self) -> Decimal | None:
        """Everything the task's version cost (retries and failures too) per signed-off text."""
        signed = self.approved + self.edited
        return self.cost_usd / signed if signed else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data (money as exact decimal strings once printed)."""
        return {
            "task": self.task,
            "version": self.version,
            "outputs": self.outputs,
            "pending": self.pending,
            "flagged": self.flagged,
            "approved": self.approved,
            "edited": self.edited,
            "rejected": self.rejected,
            "auto": self.auto,
            "approval_rate": self.approval_rate,
            "edit_rate": self.edit_rate,
            "generations": self.generations,
            "cost_usd": self.cost_usd,
            "cost_per_approved_usd": self.cost_per_approved_usd,
        }


@dataclass(frozen=True)
class CheckFlags:
    """How often one check of one task's version failed."""

    task: str
    version: str
    check: str
    checked: int
    failed: int
    failed_then_retried: int

    @property
    def failed_share(self) -> float | None:
        """Failed, of those checked."""
        return _ratio(self.failed, self.checked)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "task": self.task,
            "version": self.version,
            "check": self.check,
            "checked": self.checked,
            "failed": self.failed,
            "failed_then_retried": self.failed_then_retried,
            "failed_share": self.failed_share,
        }


@dataclass(frozen=True)
class ReviewReport:
    """Review by task and version, and flags by check."""

    versions: list[VersionReview]
    checks: list[CheckFlags]


def review_report(session: Session) -> ReviewReport:
    """The editorial report (see the module docstring)."""
    v = _BY_VERSION.c
    versions = [
        VersionReview(*(row[:10]), cost_usd=Decimal(int(row[10] or 0)).scaleb(-SCALE))
        for row in session.execute(
            select(
                v.task,
                v.version,
                v.outputs,
                v.pending,
                v.flagged,
                v.approved,
                v.edited,
                v.rejected,
                v.auto,
                v.generations,
                v.cost_usd_e10,
            ).order_by(v.task, v.version)
        )
    ]
    f = _FLAGS.c
    checks = [
        CheckFlags(task, version, check, int(n), int(failed or 0), int(retried or 0))
        for task, version, check, n, failed, retried in session.execute(
            select(
                f.task, f.version, f.check_name, f.checked, f.failed, f.failed_then_retried
            ).order_by(f.task, f.version, f.check_name)
        )
    ]
    return ReviewReport(versions, checks)


def state_counts(session: Session) -> dict[str, int]:
    """How many current outputs are in each review state (failed jobs' outputs left out)."""
    c = CURRENT_OUTPUTS.c
    rows = session.execute(
        select(c.review_state, func.count()).where(c.status == "completed").group_by(c.review_state)
    )
    return {str(state): int(n) for state, n in rows}
