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

Served with ``pause_on_shutdown=False``: by default a stopped ``serve`` pauses its schedules, and
the nightly run would silently stop after a restart. ``prefect.yaml`` declares the same
deployments for work pools and workers.
"""

from __future__ import annotations

from prefect import serve
from prefect.client.schemas.schedules import CronSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Schedule
from prefect.types.entrypoint import EntrypointType
from pydantic import ValidationError

from flows.batch import adhoc_batch, nightly_run
from flows.cost_report import cost_report_flow
from flows.deadline import deadline_check
from flows.delivery import deliver_flow
from pipeline.alerts import alerts_config
from pipeline.errors import ConfigError
from pipeline.settings import Settings

NIGHTLY = "contentgen-nightly/nightly"
ADHOC = "contentgen-adhoc/adhoc"
COST_REPORT = "contentgen-cost-report/cost-report"
DELIVER = "contentgen-deliver/deliver"
# The nightly flow's end, as Prefect's events name it: the delivery runs after it.
NIGHTLY_ENDED = ("prefect.flow-run.Completed", "prefect.flow-run.Failed")
DEADLINE_CHECK = "contentgen-deadline-check/deadline-check"
TAGS = ["contentgen"]


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


def build_deployments(settings: Settings) -> list[RunnerDeployment]:
    """The deployments (four, five with a nightly deadline), loaded by module path (``flows``
    is installed with the package)."""
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
    serve(*build_deployments(settings), pause_on_shutdown=False, limit=limit)
