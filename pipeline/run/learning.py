"""What earlier runs taught the next one's plan: output lengths, the bill against the plan per
model and layout, and the cache-key rates this account's keys were seen to carry."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.client import current_cache_scope
from pipeline.db import BillFigures, bill_history, load_key_rates, output_history, queued_count
from pipeline.errors import ConfigError
from pipeline.limits import account_key
from pipeline.planning import BillFactors
from pipeline.run.config import Config, runnable_tasks
from pipeline.run.summary import RunOptions
from pipeline.settings import Settings


@dataclass(frozen=True)
class Learnt:
    """What earlier runs taught the forecast: output lengths, the bill against the plan, and
    the per-key rates of this account."""

    outputs: dict[tuple[str, str], float]
    bills: dict[tuple[str, str], BillFactors]
    key_rates: dict[str, float]

    @classmethod
    def read(cls, settings: Settings, config: Config) -> Learnt:
        """Read from the database (the key rates only when an account can be named)."""
        with config.sessions() as session:
            outputs = output_history(session)
            bills = bill_factors(bill_history(session))
            rates: dict[str, float] = {}
            try:
                account = account_key(current_cache_scope(settings))
            except ConfigError:
                account = None  # no key: no account to have learnt on
            if account is not None:
                rates = load_key_rates(session, account)
        return cls(outputs, bills, rates)


def bill_factors(figures: dict[tuple[str, str], BillFigures]) -> dict[tuple[str, str], BillFactors]:
    """``BillFactors`` per (model, layout) from stored figures."""
    return {
        key: BillFactors.learnt(
            planned_input=f.planned_input_tokens,
            planned_cached=f.planned_cached_tokens,
            planned_write=f.planned_write_tokens,
            billed_input=f.billed_input_tokens,
            billed_cached=f.billed_cached_tokens,
            billed_write=f.billed_write_tokens,
        )
        for key, f in figures.items()
    }


def queued_jobs(settings: Settings, options: RunOptions, config: Config) -> int:
    """The jobs a run with ``options`` would take now."""
    tasks = runnable_tasks(options.tasks, config.profiles)
    with config.sessions() as session:
        queued = queued_count(session, tasks=tasks, batch_label=options.batch_label)
    return queued if options.limit is None else min(queued, options.limit)
