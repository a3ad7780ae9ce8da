"""The deliver deployment on a real Prefect server: a nightly run's end starts it, and it
drops what editors approved into the CMS folder."""

from __future__ import annotations

import json
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.deployments import run_deployment
from sqlalchemy import select

from flows.deployments import DELIVER, NIGHTLY
from pipeline.db import Delivery
from pipeline.db.engine import make_engine, session_factory
from pipeline.review import ReviewFilter, decide, list_outputs
from tests.flows.prefect_stack import PrefectStack

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]

RUN_TIMEOUT_S = 180
TRIGGER_TIMEOUT_S = 120


def _approve(database_url: str, batch_label: str) -> str:
    """Approve the batch's outputs; the webhook id of the (one) version that makes."""
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            outputs = list_outputs(session, ReviewFilter(batch_label=batch_label))
            assert len(outputs) == 1
            decide(session, outputs[0], "approved", editor="ana")
            session.commit()
            row = session.scalars(
                select(Delivery).where(Delivery.generation_id == outputs[0].generation_id)
            ).one()
            return row.webhook_id
    finally:
        engine.dispose()


def test_a_nightly_run_ending_starts_the_delivery_of_what_was_approved(
    prefect_stack: PrefectStack,
) -> None:
    """Generate, approve, let another nightly run end: the deliver deployment runs by itself
    and the approved version lands in the drop folder as ninjs."""
    prefect_stack.enqueue("deliver-batch", articles=1, tasks=["summary"])
    params = {"batch": {"batch_label": "deliver-batch"}}
    first = run_deployment(NIGHTLY, parameters=params, timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert first.state is not None and first.state.is_completed(), prefect_stack.diagnostics()
    message_id = _approve(prefect_stack.database_url, "deliver-batch")
    second = run_deployment(NIGHTLY, parameters=params, timeout=RUN_TIMEOUT_S, poll_interval=1)
    assert second.state is not None and second.state.is_completed()
    dropped = prefect_stack.delivery_folder / f"{message_id}.json"
    deadline = time.monotonic() + TRIGGER_TIMEOUT_S
    while not dropped.exists():
        assert time.monotonic() < deadline, f"not delivered\n{prefect_stack.diagnostics()}"
        time.sleep(0.5)
    item = json.loads(dropped.read_text(encoding="utf-8"))
    assert item["version"] == "1" and item["body_text"] and item["provenance"]["editor"] == "ana"
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DELIVER)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
    assert runs, "no flow run of the deliver deployment"
    assert all(r.parameters == {} for r in runs)  # started by the trigger, not by hand
