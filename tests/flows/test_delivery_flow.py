"""The delivery flow without a Prefect server, and its deployment: after every nightly run."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import SecretStr

from flows.delivery import run_delivery
from flows.deployments import NIGHTLY_ENDED, build_deployments
from pipeline.settings import Settings
from tests.delivery_support import SECRET, approve_all, generate, receiver
from tests.flows.support import REPO, RecordingPublisher


def test_the_flow_delivers_publishes_and_fails_while_sends_fail(
    database_url: str, tmp_path: Path
) -> None:
    """Unconfigured: Completed, saying so. Configured: the approved versions are sent and the
    artifact says it; a refused send leaves the run Failed with the version queued."""
    settings = generate(database_url, tmp_path, n=2, tasks=("summary",))
    approve_all(database_url)
    bare = settings.model_copy(update={"config_dir": tmp_path / "no-config"})
    state = run_delivery(bare, limit=None, retry_failing_now=False, publish=RecordingPublisher())
    assert state.is_completed() and "not configured" in (state.message or "")
    assert "2 pending" in (state.message or "")
    with receiver() as cms:
        hook = settings.model_copy(
            update={
                "delivery_webhook_url": cms.url,
                "delivery_secret": SecretStr(SECRET),
                "delivery_backoff_s": 60.0,
                "delivery_backoff_max_s": 60.0,
            }
        )
        cms.fail_every = 1  # every id: 500 twice
        publish = RecordingPublisher()
        failed = run_delivery(hook, limit=None, retry_failing_now=False, publish=publish)
        assert failed.is_failed() and "2 failing" in (failed.message or "")
        cms.fail_every = 0
        cms.fail_first.clear()
        done = run_delivery(hook, limit=None, retry_failing_now=True, publish=publish)
    assert done.is_completed(), done.message
    assert len(cms.processed) == 2 and cms.bad_signatures == 0
    assert "Delivery to webhook" in publish.markdowns["delivery-summary"]


def test_the_deliver_deployment_runs_after_every_nightly_run() -> None:
    """Triggered by the nightly flow's end (completed or failed), one at a time, loaded by
    module path, and declared the same way in prefect.yaml."""
    served = {d.name: d for d in build_deployments(Settings())}["deliver"]
    (trigger,) = served.triggers
    assert trigger.expect == set(NIGHTLY_ENDED)
    related = trigger.match_related
    assert isinstance(related, dict) or hasattr(related, "root")
    spec = dict(getattr(related, "root", related))
    assert spec == {"prefect.resource.role": "flow", "prefect.resource.name": "contentgen-nightly"}
    assert served.concurrency_limit == 1 and served.schedules == []
    declared = {
        d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }["deliver"]
    (yaml_trigger,) = declared["triggers"]
    assert set(yaml_trigger["expect"]) == set(NIGHTLY_ENDED)
    assert yaml_trigger["match_related"] == spec
    assert declared["entrypoint"] == served.entrypoint == "flows.delivery.deliver_flow"
