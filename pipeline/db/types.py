"""Column types: exact money on both databases."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

SCALE = 10  # 1e-10 USD: exact for a single cached token of the cheapest model


class ExactDecimal(TypeDecorator[Decimal]):
    """A ``Decimal`` with 10 places, exact everywhere.

    PostgreSQL stores ``NUMERIC(20, 10)``. SQLite has no decimal type (NUMERIC becomes a
    binary float), so there the value is stored as an integer count of 1e-10 units: sums in
    SQL stay exact integers and are turned back into ``Decimal`` on the way out.
    """

    impl = Numeric(20, SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, SCALE))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            scaled = value.scaleb(SCALE)
            integral = scaled.to_integral_value()
            if scaled != integral:
                raise ValueError(f"{value} has more than {SCALE} decimal places")
            return int(integral)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-SCALE)
        return Decimal(value)
