"""``contentgen serve``: serve the Prefect deployments (nightly, ad-hoc, cost report, deliver).

Prefect and ``flows`` are imported inside the command, so the rest of the CLI starts fast and
works without a Prefect server.
"""

from __future__ import annotations

import typer

from pipeline.cli.common import console, handle_errors
from pipeline.errors import ConfigError
from pipeline.settings import get_settings


def register(app: typer.Typer) -> None:
    """Add ``serve`` to ``app``."""

    @app.command("serve")
    @handle_errors
    def serve(
        limit: int | None = typer.Option(
            None, "--limit", min=1, help="Flow runs this process executes at once (default: any)."
        ),
    ) -> None:
        """Serve the nightly, ad-hoc, cost-report and deliver deployments on a Prefect server.

        Needs a running Prefect server (`prefect server start`) and PREFECT_API_URL pointing at
        it. The nightly schedule comes from CONTENTGEN_NIGHTLY_CRON in CONTENTGEN_TIMEZONE.
        Stopping this command does not pause the schedule. Start ad-hoc batches from the UI:
        Deployments -> contentgen-adhoc/adhoc -> Run -> Custom run. The deliver deployment
        runs whenever a nightly run ends and sends approved texts to the CMS.

        Example: PREFECT_API_URL=http://127.0.0.1:4200/api contentgen serve
        """
        from prefect.settings import get_current_settings

        from flows.deployments import nightly_schedule, serve_deployments

        settings = get_settings()
        api_url = get_current_settings().api.url
        if not api_url:
            raise ConfigError(
                "PREFECT_API_URL is not set: start a server with `prefect server start`, then "
                "`prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api`"
            )
        nightly_schedule(settings)  # a bad cron or time zone fails here, before anything prints
        console.print(
            f"Serving ContentGen deployments on {api_url}: nightly at "
            f"{settings.nightly_cron!r} ({settings.timezone}), delivery after each nightly run, "
            "ad-hoc and cost report on demand."
        )
        serve_deployments(settings, limit=limit)
