"""The delivery flow: send what editors approved to the CMS, after each nightly run.

Thin: one call of the library's ``deliver`` (``contentgen deliver`` does the same), a log line
per send, a Markdown artifact with the outcome. Its deployment (``flows.deployments``) is
triggered when a nightly run ends, so retries due and approvals made since go out then;
``contentgen deliver --watch`` delivers continuously in between.

Without a delivery target in the config the run completes saying so (a newsroom that does
not deliver from ContentGen sees no failed run every night). A run after which versions are
failing (the CMS refused them or did not answer) ends Failed; they stay queued for their
retry.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.client.schemas.objects import State
from prefect.exceptions import MissingContextError
from prefect.states import Completed, Failed
from pydantic import Field

from flows.artifacts import ArtifactPublisher, Publisher
from pipeline.db import make_engine, require_migrated, session_factory
from pipeline.delivery import (
    DeliveryEvent,
    DeliverySummary,
    deliver,
    delivery_counts,
    load_delivery_config,
)
from pipeline.settings import Settings, get_settings


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger in a flow run; this module's logger outside one (``.fn()`` calls)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def waiting_counts(settings: Settings) -> dict[str, int]:
    """The outbox's versions per state (what an unconfigured delivery leaves waiting)."""
    engine = make_engine(settings.database_url)
    try:
        require_migrated(engine)
        with session_factory(engine)() as session:
            return delivery_counts(session)
    finally:
        engine.dispose()


def summary_markdown(summary: DeliverySummary) -> str:
    """The artifact: what this run sent and what the outbox holds now."""
    c = summary.counts
    rows = [
        "| sent now | failed now | pending | failing | sent in all |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {summary.sent:,} | {summary.failed:,} | {c.get('pending', 0):,} | "
        f"{c.get('failing', 0):,} | {c.get('sent', 0):,} |",
    ]
    tail = "Failing versions are retried with backoff: `contentgen deliveries --state failing`."
    return f"# Delivery to {summary.target}\n\n" + "\n".join(rows) + f"\n\n{tail}\n"


def run_delivery(
    settings: Settings, *, limit: int | None, retry_failing_now: bool, publish: Publisher
) -> State[dict[str, Any]]:
    """Deliver what is due and publish the outcome; the flow run's final state."""
    logger = _logger()
    config = load_delivery_config(settings, require_target=False)
    if not config.webhook_url and config.folder is None:
        counts = waiting_counts(settings)
        message = (
            f"delivery not configured: nothing sent ({counts['pending']:,} pending, "
            f"{counts['failing']:,} failing); see docs/delivery.md"
        )
        logger.info(message)
        return Completed(message=message, data={"configured": False, "counts": counts})

    def on_event(event: DeliveryEvent) -> None:
        (logger.info if event.outcome == "sent" else logger.warning)(event.line())

    summary = deliver(settings, limit=limit, retry_failing_now=retry_failing_now, on_event=on_event)
    publish.markdown("delivery-summary", summary_markdown(summary), "Delivery to the CMS")
    data = {"configured": True, **summary.as_dict()}
    if summary.failing:
        return Failed(message=summary.line(), data=data)
    return Completed(message=summary.line(), data=data)


@flow(name="contentgen-deliver", flow_run_name="deliver", persist_result=False)
def deliver_flow(
    limit: Annotated[int | None, Field(ge=1)] = None,
    retry_failing_now: bool = False,
) -> State[dict[str, Any]]:
    """Send approved and edited texts to the CMS (webhook or drop folder), each version once.

    Args:
        limit: Send at most this many versions (default: everything due).
        retry_failing_now: Send failing versions now instead of at their next attempt.
    """
    return run_delivery(
        get_settings(),
        limit=limit,
        retry_failing_now=retry_failing_now,
        publish=ArtifactPublisher(),
    )
