"""``contentgen profiles``: ``check`` (cache regime and shared-prefix advice per profile),
``versions`` (each profile's versions and what they made) and ``version`` (one version's
texts and settings: the exact prompt an output came from)."""

from __future__ import annotations

import json

import typer
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from pipeline.cli.common import (
    JSON_OPTION,
    console,
    database_errors,
    handle_errors,
    joined_tasks,
    open_db,
    print_json,
    say,
)
from pipeline.db import (
    find_version,
    make_engine,
    queued_by_task_section,
    session_factory,
    stored_versions,
)
from pipeline.errors import InputError, PipelineError
from pipeline.money import load_pricing
from pipeline.planning import check_profiles
from pipeline.prompts import load_profiles, version_label
from pipeline.reports import local_time
from pipeline.run import cache_policies
from pipeline.settings import get_settings

profiles_app = typer.Typer(
    help="Task profiles: check their prompt-cache set-up, list their versions, show one.\n\n"
    "Example: `contentgen profiles versions --tasks summary`",
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


@profiles_app.command("versions")
@handle_errors
def versions_cmd(
    tasks: list[str] = typer.Option([], "--tasks", "-t", help="Only these tasks (a,b)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List each profile's versions: when first used, how many generations name it, and which
    one the config makes now (outputs of the others are stale: `contentgen results --stale`).

    Example: `contentgen profiles versions -t summary`
    """
    settings = get_settings()
    profiles = load_profiles(settings.config_dir)
    current = {p.version for p in profiles.values()}
    engine, sessions = open_db(settings)
    try:
        with sessions() as session, database_errors():
            rows = stored_versions(session, joined_tasks(tasks))
    finally:
        engine.dispose()
    if as_json:
        print_json(
            [
                {
                    "version": version_label(r.task, r.version),
                    "profile_version": r.version,
                    "task": r.task,
                    "model": r.model,
                    "first_seen_at": r.first_seen_at,
                    "generations": r.generations,
                    "current": r.version in current,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        say("no profile versions stored yet: a run or an enqueue stores them")
        return
    table = Table("version", "model", "first seen", "generations", "current")
    for r in rows:
        table.add_row(
            version_label(r.task, r.version),
            r.model,
            local_time(r.first_seen_at),
            f"{r.generations:,}",
            "yes" if r.version in current else "",
        )
    console.print(table)


@profiles_app.command("version")
@handle_errors
def version_cmd(
    label: str = typer.Argument(..., metavar="VERSION", help="e.g. summary@3f2a9c1"),
) -> None:
    """Print one stored version: its instructions, contexts, template, settings and checks,
    as JSON (the exact prompt its outputs came from).

    Example: `contentgen profiles version summary@3f2a9c1 > summary-v1.json`
    """
    task, _, prefix = label.rpartition("@")
    if not prefix or len(prefix) < 4:
        raise InputError(f"{label!r}: name a version as TASK@HASH (at least 4 characters)")
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session, database_errors():
            found = [v for v in find_version(session, prefix) if not task or v.task == task]
            if len(found) != 1:
                what = "no version" if not found else f"{len(found)} versions"
                raise InputError(f"{what} match {label!r} (`contentgen profiles versions`)")
            definition = found[0].definition
    finally:
        engine.dispose()
    print(json.dumps(definition, indent=2, ensure_ascii=False))


def register(app: typer.Typer) -> None:
    """Add ``profiles`` to the CLI."""
    app.add_typer(profiles_app, name="profiles")
