"""The flows' typed parameters: choices, validation and the form the UI renders."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from pydantic import ValidationError

from flows.batch import adhoc_batch, nightly_run
from flows.cost_report import cost_report_flow
from flows.parameters import TASK_NAMES, BatchParameters
from pipeline.prompts.profiles import load_profiles
from pipeline.settings import Settings
from tests.flows.support import REPO


def test_task_choices_are_the_configured_profiles() -> None:
    """The Literal of task names is the set of profiles in config/profiles.toml."""
    assert set(TASK_NAMES) == set(load_profiles(REPO / "config"))


def test_defaults_run_every_task_in_realtime() -> None:
    """A run with no parameters generates every task, real-time, in the worker's chunks."""
    params = BatchParameters()
    assert params.tasks == list(TASK_NAMES)
    assert params.mode == "realtime"
    assert params.dry_run is False
    assert Settings.model_fields["flow_chunk_size"].default == 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tasks", ["summary", "poem"]),
        ("tasks", []),
        ("batch_label", "has space"),
        ("batch_label", "-starts-with-a-dash"),
        ("limit", 0),
        ("concurrency", 0),
        ("budget_usd", 0),
        ("budget_usd", -1),
        ("mode", "batch"),
        ("chunk_size", 10),  # the worker's CONTENTGEN_FLOW_CHUNK_SIZE, not a form field
        ("surprise", 1),
    ],
)
def test_bad_values_are_rejected_naming_the_field(field: str, value: Any) -> None:
    """Every bad value fails validation with the field's name in the error."""
    with pytest.raises(ValidationError) as info:
        BatchParameters.model_validate({field: value})
    assert field in str(info.value)


def test_budget_from_a_form_number_is_an_exact_decimal() -> None:
    """The UI sends 0.1 as a JSON number; the library gets Decimal('0.1'), not a float."""
    assert BatchParameters.model_validate({"budget_usd": 0.1}).budget_usd == Decimal("0.1")
    assert BatchParameters.model_validate({"budget_usd": "2.50"}).budget_usd == Decimal("2.50")


def test_recorded_parameters_are_plain_json() -> None:
    """What the run row stores is JSON: the budget as a string, tasks as a list."""
    recorded = BatchParameters(budget_usd=Decimal("1.5"), tasks=["summary"]).recorded()
    assert recorded["budget_usd"] == "1.5"
    assert recorded["tasks"] == ["summary"]


def _batch_schema(flow: Any) -> dict[str, Any]:
    schema = parameter_schema(flow).model_dump()
    ref = schema["properties"]["batch"]["$ref"].rsplit("/", 1)[-1]
    return schema["definitions"][ref]


@pytest.mark.parametrize("flow", [adhoc_batch, nightly_run])
def test_the_custom_run_form_has_described_choices(flow: Any) -> None:
    """Every field of the form has a title and a description; tasks and mode are choices."""
    props = _batch_schema(flow)["properties"]
    assert set(props) == set(BatchParameters.model_fields)
    for name, prop in props.items():
        assert prop.get("title"), name
        assert prop.get("description"), name
    assert props["tasks"]["items"]["enum"] == list(TASK_NAMES)
    assert props["mode"]["enum"] == ["realtime", "flex"]
    assert props["budget_usd"]["type"] == "number"
    assert props["budget_usd"]["exclusiveMinimum"] == 0


@pytest.mark.parametrize("flow", [adhoc_batch, nightly_run])
def test_the_form_shows_no_none_choices_and_no_internal_knobs(flow: Any) -> None:
    """No field of the form is "X or None" (the UI's "Property is type None" picker), the
    defaults it starts from hold no None, and neither the token limit's name nor the jobs
    per Prefect task (the worker's CONTENTGEN_FLOW_CHUNK_SIZE) is a parameter."""
    schema = parameter_schema(flow).model_dump()
    assert set(schema["properties"]) == {"batch"}
    assert set(_batch_schema(flow)["properties"]) == {
        "tasks",
        "batch_label",
        "limit",
        "concurrency",
        "dry_run",
        "budget_usd",
        "mode",
        "pace",
    }
    for name, prop in _batch_schema(flow)["properties"].items():
        assert "anyOf" not in prop, name
        assert prop.get("type") in {"string", "integer", "number", "boolean", "array"}, name
    default = schema["properties"]["batch"]["default"]
    assert None not in default.values()
    assert "null" not in json.dumps(schema)


def test_an_empty_batch_label_means_every_job() -> None:
    """The form may send "" once a label was typed and erased: that is no label."""
    assert BatchParameters.model_validate({"batch_label": ""}).batch_label is None
    assert BatchParameters.model_validate({"batch_label": " spring "}).batch_label == "spring"


def test_a_bad_label_says_which_field_and_why() -> None:
    """The message names the field and the characters a label may use."""
    with pytest.raises(ValidationError) as info:
        BatchParameters.model_validate({"batch_label": "has space"})
    message = str(info.value)
    assert "batch_label" in message
    assert "letters, digits, '.', '_' and '-'" in message


def test_flow_parameters_are_validated_by_prefect() -> None:
    """Prefect turns the form's JSON into a BatchParameters and rejects bad values."""
    good = adhoc_batch.validate_parameters({"batch": {"tasks": ["headline"], "limit": 5}})
    assert isinstance(good["batch"], BatchParameters)
    assert good["batch"].limit == 5
    with pytest.raises(Exception, match="limit"):
        adhoc_batch.validate_parameters({"batch": {"limit": -1}})


def test_cost_report_parameters_have_descriptions() -> None:
    """The cost report's form explains its two fields and offers the dimensions as choices."""
    props = parameter_schema(cost_report_flow).model_dump()["properties"]
    assert props["days"]["minimum"] == 1
    assert "task" in props["by"]["enum"]
    assert props["days"]["description"]
    assert props["by"]["description"]
