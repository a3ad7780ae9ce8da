"""``contentgen profiles check``: cache regime and shared-prefix advice per profile."""

from __future__ import annotations

import typer
from sqlalchemy.exc import SQLAlchemyError

from pipeline.cli.common import JSON_OPTION, console, handle_errors, print_json
from pipeline.db import make_engine, queued_by_task_section, session_factory
from pipeline.errors import PipelineError
from pipeline.money import load_pricing
from pipeline.planning import check_profiles
from pipeline.prompts import load_profiles
from pipeline.run import cache_policies
from pipeline.settings import get_settings

profiles_app = typer.Typer(
    help="Task profiles: check their prompt-cache set-up.\n\nExample: `contentgen profiles check`",
    no_args_is_help=True,
)


@profiles_app.command("check")
@handle_errors
def check(
    requests: int = typer.Option(
        0,
        "--requests",
        "-n",
        min=0,
        help="Requests per task and section to judge padding by (default: the queued jobs, "
        "or 100 when the database has none).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate profiles against their models' cache policies and flag short shared prefixes.

    For each profile: the model's cache regime (grid before GPT-5.6, explicit breakpoints with
    paid writes from GPT-5.6), the prompt-cache lifetime requests will ask for, the static
    prefix per section, and every shared prefix under the model's minimum with how many tokens
    it lacks and whether padding it with stable text would pay (advice only).

    Example: `contentgen profiles check --requests 500`
    """
    settings = get_settings()
    profiles = load_profiles(settings.config_dir)
    prices = load_pricing(settings.config_dir / "pricing.toml")
    policies = cache_policies(profiles, prices, str(settings.config_dir / "profiles.toml"))
    counts: dict[tuple[str, str | None], int] = {}
    if not requests:
        try:
            engine = make_engine(settings.database_url)
            try:
                with session_factory(engine)() as session:
                    counts = queued_by_task_section(session)
            finally:
                engine.dispose()
        except (PipelineError, SQLAlchemyError):  # no database yet: the default count
            counts = {}
    checks = check_profiles(profiles, policies, counts, default_requests=requests or 100)
    if as_json:
        print_json({"profiles": [c.as_dict() for c in checks]})
        return
    for c in checks:
        sections = ", ".join(f"{s} {n:,}" for s, n in c.static_tokens.items())
        console.print(
            f"{c.task}: {c.model} ({c.regime}), lifetime {c.lifetime or 'default'}; "
            f"static prefix tokens: {sections}",
            markup=False,
            highlight=False,
        )
        for advice in c.advice:
            console.print(f"  short prefix: {advice.line()}", markup=False, highlight=False)
    if not any(c.advice for c in checks):
        console.print("Every shared prefix reaches its model's cache minimum.")


def register(app: typer.Typer) -> None:
    """Add ``profiles`` to the CLI."""
    app.add_typer(profiles_app, name="profiles")
