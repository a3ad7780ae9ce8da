"""Batch labels on a real Prefect server: a mistyped one fails the run, the form offers the
labels with queued jobs, and a malformed one is refused in words."""

from __future__ import annotations

import time

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from flows.deployments import ADHOC
from tests.flows.prefect_stack import LABEL_REFRESH_S, PrefectStack, flow_run_artifacts

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]

RUN_TIMEOUT_S = 180


def test_a_mistyped_label_fails_the_run_listing_the_known_labels(
    prefect_stack: PrefectStack,
) -> None:
    """``adhoc-nosuchlabel`` fails, naming the labels jobs carry; it publishes nothing."""
    prefect_stack.enqueue("known-batch", articles=1, tasks=["headline"])
    flow_run = run_deployment(
        ADHOC,
        parameters={"batch": {"batch_label": "nosuchlabel"}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert flow_run.state is not None
    assert flow_run.state.is_failed(), f"{flow_run.state}\n{prefect_stack.diagnostics()}"
    assert flow_run.name == "adhoc-nosuchlabel"
    message = str(flow_run.state.message)
    assert "no job has ever carried the batch label 'nosuchlabel'; the known labels are" in message
    assert "known-batch" in message
    # Only Prefect's own keyless result record (the exception); none of the run's reports.
    assert [key for key in flow_run_artifacts(flow_run.id) if key] == []


def test_a_label_whose_jobs_are_done_completes_saying_nothing_queued(
    prefect_stack: PrefectStack,
) -> None:
    """A second run of a finished label completes with 'nothing queued for batch label'."""
    prefect_stack.enqueue("twice-batch", articles=1, tasks=["headline"])
    params = {"batch": {"batch_label": "twice-batch", "tasks": ["headline"]}}
    first = run_deployment(ADHOC, parameters=params, timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert first.state is not None and first.state.is_completed(), prefect_stack.diagnostics()
    again = run_deployment(ADHOC, parameters=params, timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert again.state is not None
    assert again.state.is_completed(), f"{again.state}\n{prefect_stack.diagnostics()}"
    assert again.state.message == "nothing queued for batch label 'twice-batch'"


def test_the_form_offers_a_label_enqueued_while_serving(prefect_stack: PrefectStack) -> None:
    """Enqueued after `contentgen serve` started, a label shows up in the ad-hoc form's
    schema (description and examples) within a few refreshes."""
    prefect_stack.enqueue("offered-batch", articles=1, tasks=["summary"])
    deadline = time.monotonic() + 30 * LABEL_REFRESH_S + 10
    field: dict[str, object] = {}
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            schema = client.read_deployment_by_name(ADHOC).parameter_openapi_schema or {}
            field = schema["definitions"]["BatchParameters"]["properties"]["batch_label"]
            if "offered-batch" in list(field.get("examples") or []):  # type: ignore[call-overload]
                break
            time.sleep(0.5)
    assert "offered-batch" in list(field.get("examples") or []), prefect_stack.diagnostics()  # type: ignore[call-overload]
    assert "`offered-batch`" in str(field["description"])
    assert "pattern" not in field


def test_a_malformed_label_fails_the_run_in_words(prefect_stack: PrefectStack) -> None:
    """The schema has no regex, so the rule is checked by the flow's parameters: the run fails
    before anything is claimed, saying which characters a label may use."""
    flow_run = run_deployment(
        ADHOC,
        parameters={"batch": {"batch_label": "has space"}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert flow_run.state is not None
    assert flow_run.state.is_failed(), f"{flow_run.state}\n{prefect_stack.diagnostics()}"
    assert "letters, digits, '.', '_' and '-'" in str(flow_run.state.message)
