"""Typed flow parameters: Prefect renders them as the Custom-run form and validates them.

The field descriptions below are what an editor reads in the UI, so they say what a value does
in the editor's words. Validation errors name the field and say why (pydantic), and Prefect
refuses a run whose parameters do not validate before it is scheduled.

The form shows no "Property is type None" choices: a field whose empty value means "the
default" (no label, no limit, no budget) is a plain input in the form's schema (``_plain``), and
``None`` values are left out of the defaults the form starts from (``_omit_none``). Knobs an
editor has no reason to touch are not parameters at all: the shared token limit's name
(``flows.gate``) and the jobs per Prefect task (``CONTENTGEN_FLOW_CHUNK_SIZE`` on the worker).
``concurrency`` stays: an editor may slow a low-priority batch down so it leaves more of the
account's shared rate limit to other runs; left empty, the worker's setting applies.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    field_validator,
    model_serializer,
)

# The configured task names (config/profiles.toml). A Literal, so the UI offers a choice list;
# tests/flows/test_parameters.py checks it stays equal to the profiles that are configured.
TaskName = Literal["summary", "headline", "key_points", "fact_check", "grade_summary"]
TASK_NAMES: tuple[str, ...] = get_args(TaskName)

# "realtime" and "flex" (service_tier=flex at half price, falling back to the default tier)
# run inside the chunk tasks. "batch" and "auto" need the Batch API's hours-long polling, which
# a chunk task should not hold: they stay CLI-only (`contentgen run --mode batch|auto`).
Mode = Literal["realtime", "flex"]

# Pacing: "auto" lets a nightly run pace itself to its deadline when the forecast saving is
# worth it (an ad-hoc run goes at full speed); "on" always paces, "off" never.
Pace = Literal["auto", "on", "off"]
PACE_OPTION: dict[str, bool | None] = {"auto": None, "on": True, "off": False}

# Money is a Decimal in the library. The UI gets a plain number field: pydantic's default schema
# for Decimal is "number or string", which the form renders as a type picker.
UsdAmount = Annotated[Decimal, WithJsonSchema({"type": "number", "exclusiveMinimum": 0})]

LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
LABEL_DESCRIPTION = (
    "Only jobs enqueued with this label (`contentgen enqueue --batch LABEL`). Empty: every "
    "queued job. A label starts with a letter or a digit, then uses only letters, digits, "
    "dots, underscores and hyphens (for example `spring-2026`); a label no job carries fails "
    "the run and lists the known ones."
)
# The labels a form offers (``offer_labels``): enough to pick from, never a wall of text.
OFFERED_LABELS = 20


def _plain(schema: dict[str, Any]) -> None:
    """An optional field as a plain input: its schema without the ``null`` alternative.

    Prefect's form renders ``anyOf [X, null]`` as a type picker whose ``None`` choice reads
    "Property is type None"; an input left empty is simply not sent, and the default applies.
    """
    choices = schema.pop("anyOf", None)
    if choices:
        schema.update(next(c for c in choices if c.get("type") != "null"))
    schema.pop("default", None)


def _all_tasks() -> list[TaskName]:
    # grade_summary is a grader: its jobs exist only where it was enqueued, so offering it
    # claims nothing more by default.
    return ["summary", "headline", "key_points", "fact_check", "grade_summary"]


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
        max_length=100,
        # No JSON-schema "pattern": the server would show the regular expression to the editor.
        # ``_label`` below checks the same rule and says it in words; an empty box (the form
        # may send "" once a label was typed and erased) means every job.
        title="Batch label",
        description=LABEL_DESCRIPTION,
        json_schema_extra=_plain,
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        title="Limit",
        description="Generate at most this many jobs. Empty: all that match.",
        json_schema_extra=_plain,
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=2048,
        title="Concurrency",
        description="Requests in flight at most. Empty: the worker's CONTENTGEN_CONCURRENCY.",
        json_schema_extra=_plain,
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
        description="Stop sending before the run's spend would pass this amount. Empty: no budget.",
        json_schema_extra=_plain,
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

    pace: Pace = Field(
        default="auto",
        title="Pace",
        description=(
            "'auto': the nightly run spreads itself over the deadline (CONTENTGEN_DEADLINE_H) "
            "when that saves money (fewer prompt-cache keys, fewer cold misses); ad-hoc runs "
            "go at full speed. 'on': always paced. 'off': always full speed."
        ),
        json_schema_extra={"enum": list(get_args(Pace))},
    )

    @field_validator("batch_label", mode="before")
    @classmethod
    def _label(cls, value: Any) -> Any:
        """An empty or blank label means every job; a bad one says which characters are allowed."""
        if isinstance(value, str):
            value = value.strip()
            if not value:
                return None
            if not re.match(LABEL_PATTERN, value):
                raise ValueError(
                    f"{value!r} is not a batch label: start with a letter or digit, then use "
                    "only letters, digits, '.', '_' and '-'"
                )
        return value

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave unset optionals out, so the form's defaults hold no ``None`` to show."""
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}

    def recorded(self) -> dict[str, Any]:
        """The parameters as plain JSON values, stored on the run row (unset ones as null)."""
        return {name: None for name in type(self).model_fields} | self.model_dump(mode="json")


def offer_labels(schema: dict[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    """A flow's parameter schema whose batch-label field offers ``labels`` (those with queued
    jobs): listed in its description, which the form shows under the field, and as JSON-schema
    ``examples`` for API clients (Prefect 3.9's form does not show them). Not an ``enum``: the
    server would then refuse a label enqueued after the schema was made, and a finished
    label's quiet run. ``schema`` is left as it is."""
    offered = copy.deepcopy(schema)
    definition = offered.get("definitions", {}).get(BatchParameters.__name__)
    if definition is None:
        return offered
    field = definition["properties"]["batch_label"]
    shown = list(labels[:OFFERED_LABELS])
    more = f" and {len(labels) - len(shown)} more" if len(labels) > len(shown) else ""
    listed = ", ".join(f"`{label}`" for label in shown)
    field["description"] = LABEL_DESCRIPTION + (
        f" Labels with queued jobs: {listed}{more}." if shown else " No label has queued jobs."
    )
    if shown:
        field["examples"] = shown
    else:
        field.pop("examples", None)
    return offered
