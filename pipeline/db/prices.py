"""Copying ``config/pricing.toml`` into the ``prices`` table, which keeps every price ever used.

Costs are computed when a generation is written, with the price in effect that day; the table
lets any SQL client see which rates those were. History is never rewritten: a row for a model,
tier and date that is already stored with other numbers is refused (add a row with a new
``effective_date`` instead).

One exception: rows stored before migration 0004 have no cache-write rate (NULL). When every
other rate of such a row equals the config's, the config's write rate is filled in: it is the
same price, now with the part the table could not hold before.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.db.models import Price
from pipeline.errors import PricingError
from pipeline.money import TIERS, PriceTable

_Key = tuple[str, str, dt.date]
# input, cached input, output, cache write (None: no rate of its own)
_Rates = tuple[Decimal, Decimal | None, Decimal, Decimal | None]


def _config_rows(table: PriceTable) -> dict[_Key, _Rates]:
    rows: dict[_Key, _Rates] = {}
    for entry in table.entries:
        for tier in TIERS:
            price = entry.tier(tier)
            if price is not None:
                key = (entry.model, tier, entry.effective_date)
                rows[key] = (price.input, price.cached_input, price.output, price.cache_write)
    return rows


def _describe(rates: _Rates) -> str:
    cached = "none" if rates[1] is None else f"{rates[1].normalize():f}"
    write = "none" if rates[3] is None else f"{rates[3].normalize():f}"
    return (
        f"input {rates[0].normalize():f}, cached input {cached}, "
        f"output {rates[2].normalize():f}, cache write {write}"
    )


def _fills_in(stored: _Rates, wanted: _Rates) -> bool:
    """True when ``stored`` is ``wanted`` without its write rate (a row from before 0004)."""
    return stored[3] is None and wanted[3] is not None and stored[:3] == wanted[:3]


def sync_prices(session: Session, table: PriceTable) -> int:
    """Insert the prices of ``table`` that the database lacks; returns how many were added.

    Raises ``PricingError`` (and adds nothing) when a stored (model, tier, effective_date) has
    different numbers than the config: a price that was used must stay as it was. A stored row
    that only lacks the cache-write rate (stored before migration 0004) gets it filled in.
    """
    wanted = _config_rows(table)
    rows = {(p.model, p.tier, p.effective_date): p for p in session.scalars(select(Price))}
    stored: dict[_Key, _Rates] = {
        key: (
            p.input_usd_per_mtok,
            p.cached_input_usd_per_mtok,
            p.output_usd_per_mtok,
            p.cache_write_usd_per_mtok,
        )
        for key, p in rows.items()
    }
    conflicts = [
        key
        for key, rates in wanted.items()
        if key in stored and stored[key] != rates and not _fills_in(stored[key], rates)
    ]
    if conflicts:
        model, tier, day = conflicts[0]
        session.rollback()
        raise PricingError(
            f"price of {model} ({tier}) effective {day} differs from the stored one "
            f"(stored: {_describe(stored[conflicts[0]])}; config: "
            f"{_describe(wanted[conflicts[0]])}); prices are history: add a row with a new "
            "effective_date instead"
            + (f" ({len(conflicts) - 1} more conflict(s))" if len(conflicts) > 1 else "")
        )
    for key, rates in wanted.items():
        if key in stored and _fills_in(stored[key], rates):
            rows[key].cache_write_usd_per_mtok = rates[3]
    new = [key for key in wanted if key not in stored]
    session.add_all(
        Price(
            model=model,
            tier=tier,
            effective_date=day,
            input_usd_per_mtok=wanted[(model, tier, day)][0],
            cached_input_usd_per_mtok=wanted[(model, tier, day)][1],
            output_usd_per_mtok=wanted[(model, tier, day)][2],
            cache_write_usd_per_mtok=wanted[(model, tier, day)][3],
        )
        for model, tier, day in new
    )
    session.commit()
    return len(new)
