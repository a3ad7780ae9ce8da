"""``contentgen prices``: copy ``config/pricing.toml`` into the database and list stored prices."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import func, select

from pipeline.cli.common import JSON_OPTION, console, handle_errors, open_db, print_json
from pipeline.db import Price, sync_prices
from pipeline.money import load_pricing
from pipeline.reports import usd_places, usd_text
from pipeline.settings import get_settings

prices_app = typer.Typer(
    help="Prices per model and tier, with history: load them from config, list them.\n\n"
    "Example: `contentgen prices load && contentgen prices list`",
    no_args_is_help=True,
)


@prices_app.command("load")
@handle_errors
def load(
    file: Path | None = typer.Option(
        None,
        "--file",
        help="Pricing TOML to load (default: pricing.toml in CONTENTGEN_CONFIG_DIR).",
        dir_okay=False,
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Add the prices of pricing.toml that the database does not have yet.

    Running it again adds nothing. A stored price (model, tier, effective
    date) is never changed: a file that disagrees with it is refused;
    a new price needs a new effective_date.

    Example: `contentgen prices load --file config/pricing.toml`
    """
    settings = get_settings()
    path = file or settings.config_dir / "pricing.toml"
    table = load_pricing(path)
    engine, sessions = open_db(settings)
    try:
        with sessions() as session:
            added = sync_prices(session, table)
            stored = session.scalar(select(func.count()).select_from(Price)) or 0
    finally:
        engine.dispose()
    if as_json:
        print_json({"file": str(path), "added": added, "stored": stored})
    else:
        console.print(
            f"{added} price row(s) added from {path}; {stored} stored in total.",
            markup=False,
            highlight=False,
        )


@prices_app.command("list")
@handle_errors
def list_prices(
    model: str | None = typer.Option(None, "--model", help="Only this model."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The prices stored in the database (USD per 1M tokens), with history.

    "cached" is the rate of input read from the prompt cache, "cache write"
    that of input written to it (GPT-5.6+); "-" means the input rate.

    Example: `contentgen prices list --model gpt-4.1-mini --json`
    """
    query = select(Price).order_by(Price.model, Price.tier, Price.effective_date)
    if model is not None:
        query = query.where(Price.model == model)
    engine, sessions = open_db(get_settings())
    try:
        with sessions() as session:
            rows = list(session.scalars(query))
    finally:
        engine.dispose()
    if as_json:
        print_json(
            [
                {
                    "model": p.model,
                    "tier": p.tier,
                    "effective_date": p.effective_date,
                    "input_usd_per_mtok": p.input_usd_per_mtok,
                    "cached_input_usd_per_mtok": p.cached_input_usd_per_mtok,
                    "output_usd_per_mtok": p.output_usd_per_mtok,
                    "cache_write_usd_per_mtok": p.cache_write_usd_per_mtok,
                }
                for p in rows
            ]
        )
        return
    table = Table(title="Prices (USD per 1M tokens)")
    table.add_column("model", no_wrap=True)
    table.add_column("tier")
    table.add_column("effective")
    for name in ("input", "cached", "cache write", "output"):
        table.add_column(name, justify="right")
    places = usd_places(
        rate
        for p in rows
        for rate in (
            p.input_usd_per_mtok,
            p.cached_input_usd_per_mtok,
            p.cache_write_usd_per_mtok,
            p.output_usd_per_mtok,
        )
        if rate is not None
    )
    for p in rows:
        cached, write = p.cached_input_usd_per_mtok, p.cache_write_usd_per_mtok
        table.add_row(
            p.model,
            p.tier,
            p.effective_date.isoformat(),
            usd_text(p.input_usd_per_mtok, places),
            "-" if cached is None else usd_text(cached, places),
            "-" if write is None else usd_text(write, places),
            usd_text(p.output_usd_per_mtok, places),
        )
    console.print(table)
    if not rows:
        console.print(
            "No prices stored: run `contentgen prices load`.", markup=False, highlight=False
        )


def register(app: typer.Typer) -> None:
    """Add the ``prices`` command group to ``app``."""
    app.add_typer(prices_app, name="prices")
