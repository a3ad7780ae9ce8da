"""Money for people: one way to print a dollar amount (the CLI, the flows' artifacts)."""

from __future__ import annotations

from decimal import Decimal


def format_usd(value: Decimal | str) -> str:
    """Money for people: ``$1,234.5678``, ``$0.2964``, ``$0.000123`` (four decimals, six below
    a cent, as the live panel shows it), ``$0.00`` for nothing. Stored and JSON figures stay
    exact; reports that must add up to the bill print them with ``reports.usd_text``."""
    amount = Decimal(value)
    if not amount:
        return "$0.00"
    places = 6 if abs(amount) < Decimal("0.01") else 4
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"
