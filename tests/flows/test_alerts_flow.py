"""Issue 22's nights nobody watched, on a real Prefect server through `contentgen serve`: a
nightly flow that fails (a key the API refuses) and one that hits a daily budget each send
exactly one alert to a local webhook receiver, signed, and leave the database telling the
truth: the run row says why it stopped, and the jobs not sent are still queued, untouched.

Its own stack (server, simulator, serve), because serve reads config/alerts.toml and
config/budgets.toml from a config folder of this test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from prefect.deployments import run_deployment
from sqlalchemy import select

from flows.deployments import NIGHTLY
from pipeline.alerts import SIGNATURE_HEADER, verify_signature
from pipeline.db.engine import make_engine, session_factory
from pipeline.db.models import Job, Run
from tests.alerts_support import Received, WebhookReceiver, webhook_receiver, write_config
from tests.flows.prefect_stack import PrefectStack
from tests.flows.support import REPO

pytestmark = [pytest.mark.prefect_server, pytest.mark.slow]

RUN_TIMEOUT_S = 180
SECRET = "whsec-flow-test"
BUDGET_LABEL = "budget-night"
BAD_KEY_LABEL = "badkey-night"
ALERTS = '[alerts]\n[alerts.webhook]\nformat = "generic"\n'
BUDGETS = (
    f'[[budgets]]\nname = "budget-night daily"\nscope = "batch_label"\nmatch = "{BUDGET_LABEL}"\n'
    'period = "daily"\nlimit_usd = "0.003"\n'
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    """The local webhook receiver the served flows alert."""
    with webhook_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def alert_stack(
    receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectStack]:
    """A Prefect server, the simulator and `contentgen serve` with alerts and a budget."""
    root = tmp_path_factory.mktemp("alert-stack")
    config = write_config(root, alerts=ALERTS, budgets=BUDGETS)
    stack = PrefectStack(
        root,
        extra_env={
            "CONTENTGEN_CONFIG_DIR": str(config),
            "CONTENTGEN_ALERT_WEBHOOK_URL": receiver.url,
            "CONTENTGEN_ALERT_WEBHOOK_SECRET": SECRET,
        },
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.close()


def alerts_about(receiver: WebhookReceiver, run_ids: list[int]) -> list[Received]:
    """The alerts the receiver got about ``run_ids``."""
    return [r for r in receiver.received if r.json().get("figures", {}).get("run_id") in run_ids]


def rows(stack: PrefectStack, flow_run_id: str, label: str) -> tuple[list[Run], list[Job]]:
    """The flow run's run rows and the jobs of ``label``."""
    engine = make_engine(stack.database_url)
    try:
        with session_factory(engine)() as session:
            runs = list(
                session.scalars(select(Run).where(Run.flow_run_id == flow_run_id).order_by(Run.id))
            )
            jobs = list(session.scalars(select(Job).where(Job.batch_label == label)))
    finally:
        engine.dispose()
    return runs, jobs


def test_the_documented_prefect_automations_are_accepted(
    alert_stack: PrefectStack, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """docs/prefect-automations.yaml, with a webhook block pointing at the receiver, is taken
    by `prefect automation create` on the real server (the next test sees it fire)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name="contentgen-test",
        url=receiver.url,
        json_data={"prefect": True, "subject": "{{subject}}", "body": "{{body}}"},
        allow_private_urls=True,
    )
    block_id = block.save("contentgen-alerts", overwrite=True)
    text = (REPO / "docs" / "prefect-automations.yaml").read_text()
    path = tmp_path / "automations.yaml"
    path.write_text(text.replace("BLOCK_DOCUMENT_ID", str(block_id)))
    env = {**os.environ, "PREFECT_API_URL": alert_stack.api_url, "COLUMNS": "250"}
    prefect = str(Path(sys.executable).with_name("prefect"))
    created = subprocess.run(
        [prefect, "automation", "create", "--from-file", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stdout + created.stderr
    listed = subprocess.run(
        [prefect, "automation", "ls"], env=env, capture_output=True, text=True, timeout=60
    )
    assert "contentgen-flow-run-failed" in listed.stdout
    assert "contentgen-nightly-late" in listed.stdout


def test_a_nightly_run_with_a_refused_key_fails_and_alerts_once(
    alert_stack: PrefectStack, receiver: WebhookReceiver
) -> None:
    """401 from the API: the flow run fails, the run row says `failed` (`fatal auth`), every
    job is still queued with no attempt counted, and one signed alert names the run, the cause
    and the command to look closer."""
    assert alert_stack.simulator is not None
    faults = f"{alert_stack.simulator.root_url}/_sim/faults"
    alert_stack.enqueue(BAD_KEY_LABEL, articles=6, tasks=["summary"])
    httpx.post(faults, json={"api_keys": ["sk-another-key"]}, timeout=10).raise_for_status()
    try:
        flow_run = run_deployment(
            NIGHTLY,
            parameters={"batch": {"batch_label": BAD_KEY_LABEL}},
            timeout=RUN_TIMEOUT_S,
            poll_interval=1,
        )
    finally:
        httpx.post(faults, json={"api_keys": []}, timeout=10).raise_for_status()
    assert flow_run.state is not None and flow_run.state.is_failed(), (
        f"{flow_run.state}\n{alert_stack.diagnostics()}"
    )
    runs, jobs = rows(alert_stack, str(flow_run.id), BAD_KEY_LABEL)
    assert [(r.state, r.stop_reason) for r in runs] == [("failed", "fatal auth")]
    assert {(j.state, j.attempts, j.lease_owner) for j in jobs} == {("queued", 0, None)}
    assert len(jobs) == 6

    (alert,) = alerts_about(receiver, [r.id for r in runs])
    assert verify_signature(SECRET, alert.headers[SIGNATURE_HEADER], alert.body)
    body = alert.json()
    assert body["event"] == "fatal"
    assert body["figures"]["stop_reason"] == "fatal auth"
    assert "401" in body["figures"]["detail"] or "key" in body["figures"]["detail"].lower()
    assert body["figures"]["command"] == f"contentgen report --run {runs[0].id}"

    # The documented Prefect automation saw the failed flow run too, and said so.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        told = [r.json() for r in receiver.received if r.json().get("prefect")]
        if any(flow_run.name in t["subject"] and "Failed" in t["subject"] for t in told):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no Prefect notification: {told}\n{alert_stack.diagnostics()}")


def test_a_nightly_run_that_hits_its_daily_budget_stops_and_alerts_once(
    alert_stack: PrefectStack, receiver: WebhookReceiver
) -> None:
    """A $0.003 daily budget on the batch label: the flow stops claiming, the last run row
    ends in state `budget`, the unsent jobs are queued untouched, and exactly one alert says so."""
    alert_stack.enqueue(BUDGET_LABEL, articles=12, tasks=["summary"])
    flow_run = run_deployment(
        NIGHTLY,
        parameters={"batch": {"batch_label": BUDGET_LABEL}},
        timeout=RUN_TIMEOUT_S,
        poll_interval=1,
    )
    assert flow_run.state is not None and flow_run.state.is_final(), alert_stack.diagnostics()
    runs, jobs = rows(alert_stack, str(flow_run.id), BUDGET_LABEL)
    assert runs and (runs[-1].state, runs[-1].stop_reason) == ("budget", "budget"), [
        (r.state, r.stop_reason) for r in runs
    ]
    assert all(r.state == "finished" for r in runs[:-1])
    spent = sum((r.cost_usd for r in runs), Decimal(0))
    assert 0 < spent <= Decimal("0.003")
    done = [j for j in jobs if j.state == "succeeded"]
    queued = [j for j in jobs if j.state == "queued"]
    assert done and queued and len(done) + len(queued) == 12
    assert all(j.attempts == 0 and j.lease_owner is None for j in queued)

    alerts = alerts_about(receiver, [r.id for r in runs])
    assert [a.json()["event"] for a in alerts] == ["budget"], [a.json() for a in alerts]
    text = alerts[0].json()["text"]
    assert "Budget budget-night daily:" in text and "of $0.0030" in text
    assert f"contentgen report --run {runs[-1].id}" in text


def test_a_cancelled_ad_hoc_run_alerts_once(
    alert_stack: PrefectStack, receiver: WebhookReceiver
) -> None:
    """A Prefect Cancel mid-chunk: the run row ends `cancelled` and one `cancelled` alert is
    sent from the flow's own process before it ends."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    from flows.deployments import ADHOC

    assert alert_stack.simulator is not None
    faults = f"{alert_stack.simulator.root_url}/_sim/faults"
    label = "cancel-night"
    alert_stack.enqueue(label, articles=12, tasks=["summary", "headline"])
    httpx.post(faults, json={"latency_scale": 1.0}, timeout=10).raise_for_status()
    try:
        flow_run = run_deployment(
            ADHOC, parameters={"batch": {"batch_label": label, "concurrency": 2}}, timeout=0
        )
        deadline = time.monotonic() + 120
        while True:  # mid-chunk: a run row is open
            runs, _ = rows(alert_stack, str(flow_run.id), label)
            if runs and runs[-1].state == "running":
                break
            assert time.monotonic() < deadline, alert_stack.diagnostics()
            time.sleep(0.2)
        time.sleep(1.0)
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(flow_run.id, Cancelling(), force=True)
        deadline = time.monotonic() + 60
        while True:
            runs, _ = rows(alert_stack, str(flow_run.id), label)
            found = alerts_about(receiver, [r.id for r in runs])
            if found:
                break
            assert time.monotonic() < deadline, (
                [(r.state, r.stop_reason) for r in runs],
                alert_stack.diagnostics(),
            )
            time.sleep(0.5)
    finally:
        httpx.post(faults, json={"latency_scale": 0.0}, timeout=10)
    time.sleep(2)  # nothing more comes
    found = alerts_about(receiver, [r.id for r in runs])
    assert runs[-1].state == "cancelled"
    assert [a.json()["event"] for a in found] == ["cancelled"], [a.json() for a in found]
