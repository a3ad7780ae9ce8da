"""The nightly deadline check: alert (once) when no nightly run started by the deadline.

Scheduled by ``contentgen serve`` at ``nightly_deadline`` of ``config/alerts.toml`` when one is
set (``flows.deployments``); the same check as ``contentgen alerts check-deadline``.
"""

from __future__ import annotations

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from pipeline.alerts import check_deadline
from pipeline.settings import get_settings


@flow(name="contentgen-deadline-check", persist_result=False)
def deadline_check() -> State[str]:
    """Alert when no nightly run started by alerts.toml's ``nightly_deadline`` today; the flow
    run fails when the deadline was missed, so the Prefect UI shows it too."""
    found = check_deadline(get_settings())
    if found.status in ("alerted", "alerted before", "missed"):
        return Failed(message=found.line, data=found.line)
    return Completed(message=found.line, data=found.line)
