"""Typed flow parameters: Prefect renders them as the Custom-run form and validates them.

The field descriptions below are what an editor reads in the UI, so they say what a value does
in the editor's words. Validation errors name the field (pydantic), and Prefect refuses a run
whose parameters do not validate before it is scheduled.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

# The configured task names (config/profiles.toml). A Literal, so the UI offers a choice list;
# tests/flows/test_parameters.py checks it stays equal to the profiles that are configured.
TaskName = Literal["summary", "headline", "key_points", "fact_check"]
TASK_NAMES: tuple[str, ...] = get_args(TaskName)

# "realtime" and "flex" (service_tier=flex at half price, falling back to the default tier)
# run inside the chunk tasks. "batch" and "auto" need the Batch API's hours-long polling, which
# a chunk task should not hold: they stay CLI-only (`contentgen run --mode batch|auto`).
Mode = Literal["realtime", "flex"]

# Money is a Decimal in the library. The UI gets a plain number field: pydantic's default schema
# for Decimal is "number or string", which the form renders as a type picker.
UsdAmount = Annotated[Decimal, WithJsonSchema({"type": "number", "exclusiveMinimum": 0})]

DEFAULT_CHUNK_SIZE = 1000


def _all_tasks() -> list[TaskName]:
    return ["summary", "headline", "key_points", "fact_check"]


class BatchParameters(BaseModel):
    """What a run generates and how hard it drives the API (the nightly and ad-hoc flows)."""

    model_config = ConfigDict(extra="forbid", title="Batch")

    tasks: list[TaskName] = Field(
        default_factory=_all_tasks,
        min_length=1,
        title="Tasks",
        description="Which tasks to generate for the queued articles.",
    )
    batch_label: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        title="Batch label",
        description=(
            "Only jobs enqueued with this label (`contentgen enqueue --batch LABEL`). "
            "Empty: every queued job. Letters, digits, '.', '_' and '-'."
        ),
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        title="Limit",
        description="Generate at most this many jobs. Empty: all that match.",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=2048,
        title="Concurrency",
        description="Requests in flight at most. Empty: the worker's CONTENTGEN_CONCURRENCY.",
    )
    dry_run: bool = Field(
        default=False,
        title="Dry run",
        description="Only forecast cost and cache hits; send nothing, change nothing.",
    )
    budget_usd: UsdAmount | None = Field(
        default=None,
        gt=0,
        title="Budget (USD)",
        description="Stop sending before the run's spend would pass this amount.",
    )
    mode: Mode = Field(
        default="realtime",
        title="Mode",
        description=(
            "How requests are sent: 'realtime', or 'flex' (half price, slower; models without "
            "a flex price stay realtime)."
        ),
        # Keep an explicit "enum" so the form shows a choice list.
        json_schema_extra={"enum": list(get_args(Mode))},
    )
    chunk_size: int = Field(
        default=DEFAULT_CHUNK_SIZE,
        ge=1,
        le=50_000,
        title="Chunk size",
        description="Jobs per Prefect task. Each task sends its chunk concurrently.",
    )

    def recorded(self) -> dict[str, Any]:
        """The parameters as plain JSON values, stored on the run row."""
        return self.model_dump(mode="json")
