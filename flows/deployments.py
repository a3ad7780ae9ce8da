"""The deployments and ``serve_deployments`` (what ``contentgen serve`` runs).

- ``contentgen-nightly/nightly``: on a ``Cron`` schedule with an explicit time zone, both from
  settings (``CONTENTGEN_NIGHTLY_CRON``, ``CONTENTGEN_TIMEZONE``; a bare cron string would be UTC),
  and a concurrency limit of 1 so a run that overruns is never overlapped by the next one.
- ``contentgen-adhoc/adhoc``: unscheduled, started from the UI's Custom run (or the API).
- ``contentgen-cost-report/cost-report``: unscheduled, the cost report as artifacts.
- ``contentgen-deliver/deliver``: triggered when a nightly run ends (completed or failed: the
  approvals and retries it sends do not depend on the night's generation), one at a time;
  also started from the UI.
- ``contentgen-deadline-check/deadline-check``: only when ``config/alerts.toml`` sets
  ``nightly_deadline``, daily at that time (in its ``timezone``, else ``CONTENTGEN_TIMEZONE``):
  alerts when no nightly run started by then.

The ad-hoc and nightly forms offer the batch labels with queued jobs (``offer_labels``): read
when serving starts and refreshed every ``CONTENTGEN_LABEL_REFRESH_S`` while it runs
(``LabelOffer``), so a label enqueued later shows up without a restart.

Served with ``pause_on_shutdown=False``: by default a stopped ``serve`` pauses its schedules, and
the nightly run would silently stop after a restart. ``prefect.yaml`` declares the same
deployments for work pools and workers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Schedule
from prefect.types.entrypoint import EntrypointType
from prefect.utilities.callables import ParameterSchema
from pydantic import ValidationError

from flows.batch import adhoc_batch, nightly_run
from flows.cost_report import cost_report_flow
from flows.deadline import deadline_check
from flows.delivery import deliver_flow
from flows.parameters import offer_labels
from pipeline.alerts import alerts_config
from pipeline.db import labels_with_queued, make_engine, require_migrated, session_factory
from pipeline.errors import ConfigError, PipelineError
from pipeline.settings import Settings

NIGHTLY = "contentgen-nightly/nightly"
ADHOC = "contentgen-adhoc/adhoc"
COST_REPORT = "contentgen-cost-report/cost-report"
DELIVER = "contentgen-deliver/deliver"
# The nightly flow's end, as Prefect's events name it: the delivery runs after it.
NIGHTLY_ENDED = ("prefect.flow-run.Completed", "prefect.flow-run.Failed")
DEADLINE_CHECK = "contentgen-deadline-check/deadline-check"
TAGS = ["contentgen"]
# The deployments whose form has a batch-label field.
LABEL_FORMS = (ADHOC, NIGHTLY)

log = logging.getLogger(__name__)


def nightly_schedule(settings: Settings) -> Schedule:
    """The nightly ``Cron`` schedule in ``settings.timezone``; ``ConfigError`` when invalid."""
    try:
        CronSchedule(cron=settings.nightly_cron, timezone=settings.timezone)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]) for e in exc.errors())
        raise ConfigError(
            f"CONTENTGEN_NIGHTLY_CRON={settings.nightly_cron!r} / "
            f"CONTENTGEN_TIMEZONE={settings.timezone!r}: {problems}"
        ) from exc
    return Cron(settings.nightly_cron, timezone=settings.timezone)


def after_nightly() -> DeploymentEventTrigger:
    """Start a deployment whenever a run of the nightly flow ends."""
    return DeploymentEventTrigger(
        name="after-nightly",
        expect=set(NIGHTLY_ENDED),
        match_related={
            "prefect.resource.role": "flow",
            "prefect.resource.name": nightly_run.name,
        },
    )


def build_deployments(
    settings: Settings, labels: Sequence[str] | None = None
) -> list[RunnerDeployment]:
    """The deployments (four, five with a nightly deadline), loaded by module path (``flows``
    is installed with the package); the batch forms offer ``labels`` (the labels with queued
    jobs) when given."""
    # Module paths, not file paths: serve and workers then find the flows from any directory.
    module = EntrypointType.MODULE_PATH
    nightly = nightly_run.to_deployment(
        name="nightly",
        schedules=[nightly_schedule(settings)],
        concurrency_limit=1,
        description=(
            f"Every queued job, on {settings.nightly_cron!r} in {settings.timezone}; "
            "never two at once."
        ),
        tags=TAGS,
        entrypoint_type=module,
    )
    adhoc = adhoc_batch.to_deployment(
        name="adhoc",
        description="Ad-hoc batch: use Custom run to pick tasks, batch label, limit and budget.",
        tags=TAGS,
        entrypoint_type=module,
    )
    report = cost_report_flow.to_deployment(
        name="cost-report",
        description="Cost, cache hits and savings over the last days, as artifacts.",
        tags=TAGS,
        entrypoint_type=module,
    )
    delivery = deliver_flow.to_deployment(
        name="deliver",
        triggers=[after_nightly()],
        concurrency_limit=1,
        description="Approved texts to the CMS, after every nightly run (or now, from here).",
        tags=TAGS,
        entrypoint_type=module,
    )
    built = [_built(d) for d in (nightly, adhoc, report, delivery)]
    if labels is not None:
        for deployment in built[:2]:
            offered = offer_labels(deployment._parameter_openapi_schema.model_dump(), labels)
            deployment._parameter_openapi_schema = ParameterSchema(**offered)
    rules = alerts_config(settings).rules
    deadline = rules.deadline()
    if deadline is not None:
        zone = rules.timezone or settings.timezone
        check = deadline_check.to_deployment(
            name="deadline-check",
            schedules=[Cron(f"{deadline.minute} {deadline.hour} * * *", timezone=zone)],
            description=f"Alerts when no nightly run started by {rules.nightly_deadline} ({zone}).",
            tags=TAGS,
            entrypoint_type=module,
        )
        built.append(_built(check))
    return built


def _built(deployment: object) -> RunnerDeployment:
    # to_deployment returns a coroutine only when called from async code; we never are.
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def serve_deployments(settings: Settings, *, limit: int | None = None) -> None:
    """Register the deployments with the Prefect server and run their flow runs until stopped.

    ``limit`` caps the flow runs this process executes at once.
    """
    offer = LabelOffer(settings)
    labels = offer.read()
    offer.offered = labels
    offer.start()
    serve(*build_deployments(settings, labels), pause_on_shutdown=False, limit=limit)


def queued_labels(settings: Settings) -> list[str] | None:
    """The batch labels with queued jobs; ``None`` (offer nothing) when the job database
    cannot say (unreachable, not migrated): serving goes on, a run says what is wrong."""
    try:
        engine = make_engine(settings.database_url)
        try:
            require_migrated(engine)
            with session_factory(engine)() as session:
                return labels_with_queued(session)
        finally:
            engine.dispose()
    except (PipelineError, OSError, ValueError) as exc:
        log.warning("batch labels not offered on the forms: %s", exc)
        return None


def update_label_forms(labels: Sequence[str], names: Sequence[str] = LABEL_FORMS) -> None:
    """Offer ``labels`` on the served deployments ``names`` (their stored schema, patched)."""
    with get_client(sync_client=True) as client:
        for name in names:
            deployment = client.read_deployment_by_name(name)
            offered = offer_labels(deployment.parameter_openapi_schema or {}, labels)
            client.update_deployment(
                deployment.id, DeploymentUpdate(parameter_openapi_schema=offered)
            )


class LabelOffer(threading.Thread):
    """While serving, keeps the forms' offered labels in step with the queue: every
    ``settings.label_refresh_s`` it reads the labels with queued jobs and, when they changed,
    updates the deployments. A daemon: it ends with ``serve``."""

    def __init__(
        self,
        settings: Settings,
        read: Callable[[Settings], list[str] | None] = queued_labels,
        update: Callable[[Sequence[str]], None] = update_label_forms,
    ) -> None:
        super().__init__(name="contentgen-label-offer", daemon=True)
        self.settings = settings
        self._read = read
        self._update = update
        self.offered: list[str] | None = None
        self.stopped = threading.Event()

    def read(self) -> list[str] | None:
        """The labels with queued jobs now (``None`` when the database cannot say)."""
        return self._read(self.settings)

    def refresh(self) -> bool:
        """Offer the labels with queued jobs if they changed; whether the forms were updated.

        Never raises: a database or a Prefect server that is away this minute (restarting,
        a dropped connection) must not end the refreshes; it is logged and tried again.
        """
        try:
            labels = self.read()
            if labels is None or labels == self.offered:
                return False
            self._update(labels)
        except Exception as exc:
            log.warning("could not refresh the batch labels on the forms: %s", exc)
            return False
        self.offered = labels
        return True

    def run(self) -> None:
        """Refresh until stopped."""
        while not self.stopped.wait(self.settings.label_refresh_s):
            self.refresh()
