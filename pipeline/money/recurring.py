"""Recurring budgets: daily and monthly spending limits per batch label, task or section.

``config/budgets.toml`` (optional; no file, no recurring budget) lists them::

    timezone = "Europe/Berlin"   # when a day or month starts (default UTC)

    [[budgets]]
    scope = "section"            # batch_label | task | section | all
    match = "local"              # the label, task or section it covers (not for "all")
    period = "daily"             # daily | monthly
    limit_usd = "25.00"
    soft_share = 0.8             # alert at 80% of the limit (optional)

A hard limit stops claiming before a request would pass it (the run's ``--budget-usd`` stop:
exit 3, unsent jobs queued); the soft share only alerts. Values in, values out: the spend is
summed by ``pipeline.db`` and enforced by ``pipeline.run``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.tomlfile import known_zone, load_model

Scope = Literal["batch_label", "task", "section", "all"]
Period = Literal["daily", "monthly"]
BUDGETS_FILE = "budgets.toml"


class BudgetSpec(BaseModel):
    """One recurring limit: what it covers, over which period, how much."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope
    match: str | None = Field(default=None, min_length=1, max_length=128)
    period: Period
    limit_usd: Decimal = Field(gt=0)
    soft_share: float | None = Field(default=None, gt=0, lt=1)
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _match_given(self) -> BudgetSpec:
        if self.scope == "all" and self.match is not None:
            raise ValueError('scope "all" takes no match')
        if self.scope != "all" and self.match is None:
            raise ValueError(f'scope "{self.scope}" needs a match (the {self.scope} it covers)')
        return self

    @property
    def key(self) -> str:
        """The budget's name: given, else ``section=local/daily``."""
        if self.name:
            return self.name
        where = "all" if self.scope == "all" else f"{self.scope}={self.match}"
        return f"{where}/{self.period}"

    def covers(self, batch_label: str | None, task: str, section: str | None) -> bool:
        """Whether a job with these fields spends from this budget."""
        if self.scope == "all":
            return True
        value = {"batch_label": batch_label, "task": task, "section": section}[self.scope]
        return value == self.match


class BudgetFile(BaseModel):
    """``budgets.toml``: the time zone of the periods and the budgets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    budgets: tuple[BudgetSpec, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return known_zone(value)

    @model_validator(mode="after")
    def _unique_names(self) -> BudgetFile:
        keys = [b.key for b in self.budgets]
        doubles = sorted({k for k in keys if keys.count(k) > 1})
        if doubles:
            raise ValueError(f"two budgets named {doubles[0]!r}: give one a different name")
        return self


def load_budgets(config_dir: Path) -> BudgetFile:
    """``config_dir/budgets.toml``, or no budgets when there is no such file."""
    path = config_dir / BUDGETS_FILE
    if not path.exists():
        return BudgetFile()
    return load_model(path, BudgetFile)


def period_bounds(
    period: Period, now: dt.datetime, timezone: str
) -> tuple[dt.datetime, dt.datetime]:
    """The period containing ``now`` (aware, or naive UTC) as naive UTC ``[start, end)``, the
    database's time: a day or a month starting at midnight in ``timezone``."""
    zone = ZoneInfo(timezone)
    aware = now if now.tzinfo is not None else now.replace(tzinfo=dt.UTC)
    local = aware.astimezone(zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        start = start.replace(day=1)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = start.replace(year=year, month=month)
    else:
        end = (start + dt.timedelta(days=1)).replace(tzinfo=None).replace(tzinfo=zone)
    # A local midnight across a DST change still converts exactly (zoneinfo folds).
    return (
        start.astimezone(dt.UTC).replace(tzinfo=None),
        end.astimezone(dt.UTC).replace(tzinfo=None),
    )
